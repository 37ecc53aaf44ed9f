"""Serving a run's model over HTTP and gRPC (TensorFlow Serving's protocols): not built yet."""
