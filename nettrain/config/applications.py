"""The keras.applications models a config may name as a layer, and the preprocessing each
expects, as a static table (no Keras import: config validation reads it; tests/test_backbones.py
checks it against keras.applications)."""

from __future__ import annotations

from typing import Any

# How each application's own ``preprocess_input`` turns raw pixels (0..255, RGB) into what the
# network was trained on; the backbone layer does the same inside the model:
# "none": the model does it itself (include_preprocessing, or Rescaling inside);
# "tf": x / 127.5 - 1; "torch": x / 255 then ImageNet's mean and std per channel;
# "caffe": RGB -> BGR, then ImageNet's mean subtracted per channel.
_FAMILIES = {
    "none": ("ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
             *(f"EfficientNetB{i}" for i in range(8)),
             *(f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "L", "M", "S")),
             "MobileNetV3Large", "MobileNetV3Small"),
    "tf": ("InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "NASNetLarge",
           "NASNetMobile", "ResNet101V2", "ResNet152V2", "ResNet50V2", "Xception"),
    "torch": ("DenseNet121", "DenseNet169", "DenseNet201"),
    "caffe": ("ResNet101", "ResNet152", "ResNet50", "VGG16", "VGG19"),
}
APPLICATIONS: dict[str, str] = {name: mode for mode, names in _FAMILIES.items()
                                for name in names}


def is_application(name: object) -> bool:
    """Whether a layer name is a keras.applications model (``MobileNetV3Small``)."""
    return isinstance(name, str) and name in APPLICATIONS


def fine_tune_problems(fit: Any, model: Any) -> list[Any]:
    """What ``fit.fine_tune`` needs of the rest of the config, as :func:`refuse` errors: a
    keras.applications layer that starts frozen (``trainable: false``). An ``after`` of
    ``fit.epochs`` or more trains the head only (``fit.epochs=2`` to try a config out); a
    resume that raises ``fit.epochs`` past it fine-tunes."""
    from nettrain.config.fields import refuse, spec_kwargs, spec_name

    tune = fit.fine_tune
    if tune is None or model is None:
        return []
    problems = []
    backbones = [(i, spec) for i, spec in enumerate(model.layers)
                 if is_application(spec_name(spec))]
    if not backbones:
        problems.append(refuse(
            "a keras.applications layer in model.layers to fine-tune (MobileNetV3Small, "
            "ResNet50, ...)", "no such layer", "Add one, e.g. - MobileNetV3Small: {weights: "
            "imagenet, trainable: false, pooling: avg}; or remove fit.fine_tune",
            field="fine_tune"))
    for i, spec in backbones:
        if spec_kwargs(spec).get("trainable", True) is not False:
            problems.append(refuse(
                f"trainable: false on model.layers[{i}].{spec_name(spec)} with fit.fine_tune "
                "(the head trains first, with the backbone frozen)",
                f"trainable: {str(spec_kwargs(spec).get('trainable', True)).lower()}",
                f"Write - {spec_name(spec)}: {{trainable: false, ...}}", field="fine_tune"))
    return problems
