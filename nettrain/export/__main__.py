"""A ``.keras`` file predicted under the Keras backend this process runs (``KERAS_BACKEND``):
``python -m nettrain.export MODEL.keras INPUTS.npz OUTPUTS.npy``, started by ``nettrain
export --format keras`` once per installed backend, since a process has one backend."""

from __future__ import annotations

import sys

import numpy as np


def main(model_path: str, inputs_path: str, outputs_path: str) -> None:
    """Load the model as a user of this backend would (compiled, safe mode) and predict."""
    from nettrain.backends import startup

    with startup.importing(saved_model_only=True):  # as nettrain predict imports it
        import keras

    model = keras.saving.load_model(model_path, safe_mode=True)
    with np.load(inputs_path, allow_pickle=False) as arrays:
        x = {k: arrays[k] for k in arrays.files}
    out = model.predict(x if len(x) > 1 or "inputs" not in x else x["inputs"], verbose=0)
    np.save(outputs_path, np.asarray(out), allow_pickle=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
