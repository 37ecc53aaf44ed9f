"""A text column inside the model: its ``TextVectorization``, adapted on the training split's
texts only and built again with what it learned (vocabulary, IDF weights) as arguments, so
that every save format (json, keras, savedmodel) keeps them and takes raw text."""

from __future__ import annotations

from typing import Any

import numpy as np

from nettrain.config.textcols import TextColumn


def encoder(column: TextColumn, texts: np.ndarray, name: str) -> Any:
    """The ``TextVectorization`` of a text column (input ``name``), adapted on ``texts``: the
    training split's cells of that column, never validation's or test's.

    Example: ``encoder(TextColumn(), np.array([["a b"], ["b c"]], object), "t")
    .get_vocabulary()`` -> ``['[UNK]', 'b', 'a', 'c']``.
    """
    import keras

    kwargs = column.keras_kwargs()
    adapted = keras.layers.TextVectorization(**kwargs)
    adapted.adapt(np.asarray(texts, dtype=object).reshape(-1).astype(str))
    learned: dict[str, Any] = {}
    if column.output_mode == "tf_idf":  # Keras's public record of what it learned
        adapted.save_own_variables(learned)
    return keras.layers.TextVectorization(
        vocabulary=[str(token) for token in adapted.get_vocabulary()],
        idf_weights=learned.get("idf_weights"), name=f"encode_{name}", **kwargs)


def encoded(column: TextColumn, layer: Any, tensor: Any, name: str) -> Any:
    """``tensor`` (a [rows, 1] string input) through ``layer``: token ids [rows,
    sequence_length] for output_mode int, else one vector per text [rows, vocabulary] (Keras
    computes [rows, 1, vocabulary] for a [rows, 1] input, which it returns squeezed: a
    Reshape says so)."""
    import keras

    out = layer(tensor)
    if column.output_mode == "int":
        return out
    return keras.layers.Reshape((int(out.shape[-1]),), name=f"encode_{name}_flat")(out)
