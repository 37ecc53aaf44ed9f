"""Choosing the Keras backend (TensorFlow, JAX, PyTorch) a run trains on: not built yet."""
