"""The Keras backends a run trains on (TensorFlow, JAX, PyTorch): :mod:`.select` chooses one
(``backend:``, ``--backend``, ``auto``) and sets it before Keras is first imported."""
