"""Exporting a run's model to the formats deployment needs (``nettrain export``): SavedModel,
ONNX, TFLite and ``.keras``, each file loaded in its own runtime and checked against the
run's model on rows of the run's own data before it is written.

- :mod:`nettrain.export.formats`: each format's converter, its runtime and what it cannot carry.
- :mod:`nettrain.export.exporter`: the command's flow (sample rows, convert to a temporary
  file, compare, rename into place or refuse).
- :mod:`nettrain.export.__main__`: a ``.keras`` file predicted under another Keras backend, in
  a process of its own (the backend is fixed per process).
"""
