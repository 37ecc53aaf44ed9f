"""nettrain: train Keras models from YAML config files."""

__version__ = "0.1.0"
