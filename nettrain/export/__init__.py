"""Exporting a run's model to the formats deployment needs (ONNX, TFLite, ...): not built yet."""
