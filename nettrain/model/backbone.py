"""keras.applications models as layers of the stack: their arguments checked, built for the
data's input shape with their own preprocessing inside, weights from Keras's cache or a file,
and frozen or (partly) unfrozen for fine-tuning."""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config.applications import APPLICATIONS
from nettrain.config.fields import short_repr, spec_kwargs, spec_name
from nettrain.data.sources import keras_home, not_cached
from nettrain.errors import ConfigError, DataError, Problem, did_you_mean
from nettrain.model.keras_names import ResolveError

# Arguments of an application that nettrain decides: the backbone is the model's body, its
# input comes from the data and the config's next layers are its head.
DECIDED = {
    "include_top": "nettrain builds the backbone without its ImageNet classifier; the "
                   "layers after it in model.layers are the head",
    "input_shape": "the input shape comes from the data (or model.input_shape)",
    "input_tensor": "the input comes from the data",
    "classes": "the classes are the head's (the last Dense layer's units)",
    "classifier_activation": "the backbone has no classifier; the head's last layer has the "
                             "activation",
    "name": "nettrain names the backbone",
}
WEIGHT_SUFFIXES = (".weights.h5", ".h5")
# ImageNet's mean and standard deviation per RGB channel (Keras's imagenet_utils)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass
class Backbone:
    """A keras.applications layer of the config, checked; :meth:`make` builds it once the
    input shape is known."""

    name: str                 # MobileNetV3Small
    kwargs: dict[str, Any]    # the application's own arguments (weights, pooling, alpha, ...)
    trainable: bool
    path: str                 # model.layers[0].MobileNetV3Small, for messages

    @property
    def pretrained(self) -> bool:
        """Weights from ImageNet or a file: then BatchNormalization keeps their statistics."""
        return self.kwargs.get("weights") is not None

    def make(self, shape: tuple[int, ...], index: int) -> Any:
        """The backbone as one layer for inputs of ``shape`` (one image, no batch): gray
        images repeated to 3 channels, images below the application's smallest size scaled up
        (bilinear, by whole factors) to reach it, the application's preprocessing, then the
        application without its top."""
        import keras

        if len(shape) != 3 or shape[-1] not in (1, 3):
            raise ConfigError(Problem(
                self.path, "images of shape (height, width, 1 or 3 channels) before it",
                f"inputs of shape {list(shape)}",
                "Read images with data.images, or give the samples that shape with "
                "data.reshape (e.g. [8, 8, 1] for the digits)."))
        inputs = keras.Input(shape=shape, name=f"{self.name.lower()}_pixels")
        x = inputs
        if shape[-1] == 1:  # gray: the same value in R, G and B (no Lambda: safe to load)
            x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
        app, factor = self._application((*shape[:2], 3))
        if factor is not None:  # not Resizing: its call's default training=True would reach
            # the application's BatchNormalization when a saved model is called (Keras 3.15)
            x = keras.layers.UpSampling2D(factor, interpolation="bilinear",
                                          name="resize_to_minimum")(x)
        for layer in _preprocessing(APPLICATIONS[self.name]):
            x = layer(x)
        outputs = app(x)
        wrapper = keras.Model(inputs, outputs, name=f"backbone_{index}")
        wrapper._nettrain_backbone = self  # noqa: SLF001 (read by find())
        wrapper._nettrain_application = app  # noqa: SLF001
        set_trainable(wrapper, "all" if self.trainable else None)
        return wrapper

    def _application(self, shape: tuple[int, int, int]) -> tuple[Any, tuple | None]:
        """The application for ``shape``; for images below its smallest size, for the images
        made larger by the smallest whole factors that reach it (returned)."""
        try:
            return self._build(shape), None
        except ValueError as exc:
            small = re.search(r"at least (\d+)x(\d+)", str(exc))
            if small is None:
                raise self._refused(exc) from None
        least = max(int(small.group(1)), int(small.group(2)))
        factor = (-(-least // shape[0]), -(-least // shape[1]))
        try:
            return self._build((shape[0] * factor[0], shape[1] * factor[1], 3)), factor
        except ValueError as exc:
            raise self._refused(exc) from None

    def _build(self, shape: tuple[int, int, int]) -> Any:
        import keras

        weights = self.kwargs.get("weights")
        if isinstance(weights, str) and weights != "imagenet" and \
                not Path(weights).expanduser().is_file():
            raise DataError(f"{self.path}.weights: {Path(weights).expanduser()} does not exist. "
                            "(A relative path in a config is read from the folder nettrain "
                            f"runs in, here {Path.cwd()}.)")
        kwargs = {**self.kwargs, "weights": str(Path(weights).expanduser())
                  if isinstance(weights, str) and weights != "imagenet" else weights}
        with warnings.catch_warnings(record=True) as caught, _cache_only(self.path):
            warnings.simplefilter("always")
            app = getattr(keras.applications, self.name)(
                include_top=False, input_shape=shape, **kwargs)
        for warning in caught:
            if "will be loaded as the default" not in str(warning.message):  # size-free
                warnings.warn_explicit(warning.message, warning.category,  # without a top
                                       warning.filename, warning.lineno)
        return app

    def _refused(self, exc: Exception) -> ConfigError:
        text = " ".join(str(exc).split())
        return ConfigError(Problem(self.path, f"arguments keras.applications.{self.name} "
                                   f"takes (Keras says: {text[:300]})",
                                   short_repr(self.kwargs, 120)))


class _MissingWeights(Exception):
    pass


@contextlib.contextmanager
def _cache_only(path: str) -> Any:
    """Keras's downloads of weights replaced by a look in its cache ($KERAS_HOME/models, the
    folder nettrain's datasets use): a missing file is a DataError naming it, never a
    download nor random weights. The file is read as it is (Keras's sha256 check is for
    downloads), so weights copied from another machine load with no network."""
    from keras.src.utils import file_utils

    real = file_utils.get_file

    def cached(fname: str | None = None, origin: str | None = None,
               cache_subdir: str = "datasets", **kwargs: Any) -> str:
        name = fname or Path(str(origin)).name
        target = keras_home() / cache_subdir / name
        if not target.is_file():
            raise not_cached(f"{path}: weights: imagenet needs Keras's file {name}, which is "
                             f"not in {target.parent}", target, str(origin))
        return str(target)

    file_utils.get_file = cached
    try:
        yield
    finally:
        file_utils.get_file = real


def _preprocessing(mode: str) -> list[Any]:
    """Layers doing what the application's ``preprocess_input`` does to 0..255 RGB pixels."""
    import keras
    import numpy as np

    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_input")]
    if mode == "torch":
        return [keras.layers.Normalization(
            mean=[255 * m for m in _MEAN], variance=[(255 * s) ** 2 for s in _STD],
            name="preprocess_input")]
    if mode == "caffe":  # RGB -> BGR and the mean off: one fixed linear map per pixel
        flip = keras.layers.Dense(3, trainable=False, name="preprocess_input")
        flip.build((None, 3))
        flip.set_weights([np.eye(3, dtype="float32")[::-1],
                          -np.asarray(_CAFFE_MEAN_BGR, dtype="float32")])
        return [flip]
    return []


def resolve(spec: Any, path: str) -> Backbone:
    """Check a keras.applications layer entry; raise ResolveError listing every problem.

    Example: ``resolve({'MobileNetV3Small': {'weights': None}}, 'model.layers[0]')``.
    """
    import keras

    name, kwargs = spec_name(spec), dict(spec_kwargs(spec))
    path = f"{path}.{name}"
    params = list(inspect.signature(getattr(keras.applications, name)).parameters)
    allowed = [p for p in params if p not in DECIDED] + ["trainable"]
    problems = []
    for key in kwargs:
        if key in DECIDED:
            problems.append(Problem(f"{path}.{key}", "an argument nettrain leaves to the "
                                    f"application ({', '.join(sorted(allowed))})",
                                    f"{key}: {DECIDED[key]}", "Remove it."))
        elif key not in allowed:
            close = did_you_mean(key, allowed)
            problems.append(Problem(f"{path}.{key}", f"an argument of keras.applications."
                                    f"{name} ({', '.join(sorted(allowed))})",
                                    f"unknown argument '{key}'",
                                    f"Did you mean '{close}'?" if close else None))
    weights = kwargs.setdefault("weights", "imagenet")  # Keras's default
    if not (weights is None or weights == "imagenet" or (
            isinstance(weights, str) and weights.endswith(WEIGHT_SUFFIXES))):
        problems.append(Problem(f"{path}.weights", "imagenet (Keras's cache), null (random) or "
                                "a weights file (.weights.h5 or .h5)", short_repr(weights)))
    trainable = kwargs.pop("trainable", True)
    if not isinstance(trainable, bool):
        problems.append(Problem(f"{path}.trainable", "true or false", short_repr(trainable)))
    if kwargs.get("pooling") not in (None, "avg", "max"):
        problems.append(Problem(f"{path}.pooling", "avg, max or null (the feature map)",
                                short_repr(kwargs["pooling"])))
    if problems:
        raise ResolveError(problems)
    return Backbone(name, {k: v for k, v in kwargs.items() if k not in DECIDED},
                    bool(trainable), path)


def find(model: Any) -> list[Any]:
    """The backbone layers (as :meth:`Backbone.make` built them) of a freshly built model."""
    return [layer for layer in model.layers if hasattr(layer, "_nettrain_backbone")]


def set_trainable(wrapper: Any, unfreeze: str | int | None) -> None:
    """Freeze a backbone (``None``), or make its top ``unfreeze`` layers (``'all'``: every
    layer) trainable. With pretrained weights every BatchNormalization stays frozen, which in
    Keras 3 also keeps it in inference mode (its moving statistics are neither used from the
    batch nor updated): the ImageNet statistics are kept while fine-tuning."""
    import keras

    app = wrapper._nettrain_application  # noqa: SLF001
    for layer in wrapper.layers:  # the fixed preprocessing never trains
        if layer is not app:
            layer.trainable = False
    if unfreeze is None:
        app.trainable = False
        return
    app.trainable = True
    if unfreeze != "all":
        for layer in app.layers[:-int(unfreeze)]:
            layer.trainable = False
    if wrapper._nettrain_backbone.pretrained:  # noqa: SLF001
        for layer in app._flatten_layers():  # noqa: SLF001
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
