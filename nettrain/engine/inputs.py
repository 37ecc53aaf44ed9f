"""What a run's model takes and returns, in words: the lines ``nettrain validate`` prints.

The input ``nettrain predict`` reads (for columns, the exact CSV header line), the inputs a
caller from Python gives ``model.predict`` or the SavedModel, and what the output means.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from nettrain.config.fields import spec_kwargs
from nettrain.config.schema import Config
from nettrain.data.columns import model_inputs, names_of
from nettrain.data.dataset import IMAGE_SUFFIXES


def input_lines(config: Config, info: dict[str, Any], output_shape: Any = None) -> list[str]:
    """What the model of ``config`` takes, for ``validate`` to print: the input ``nettrain
    predict`` reads (for columns, the exact CSV header line), the inputs a caller from Python
    gives ``model.predict`` or the SavedModel's ``signatures["serve"]``, and what it returns.

    ``info`` is the data's description (dataset.json); ``output_shape`` the model's.
    """
    cfg = config.data
    features, columns, images = info.get("features"), info.get("columns"), info.get("images")
    shape = [int(d) for d in info.get("input_shape") or []]
    rows = f"[rows, {', '.join(map(str, shape))}]"
    arrays = f"a .npy or .npz (array x) of shape {rows}"
    targets = info.get("target") or []
    lines = []
    series = info.get("timeseries")
    if series:
        header = io.StringIO()
        csv.writer(header, delimiter=cfg.delimiter, lineterminator="").writerow(
            [series["time"], *features])
        steps = f"{series['horizon']} step{'s' if series['horizon'] > 1 else ''}"
        lines += [f"predict takes a CSV of a series' recent rows (at least {series['window']}, "
                  "in any order: they are sorted by time) with a header row holding the time "
                  "and these columns, the target's past included:", header.getvalue(),
                  f"It forecasts from each window of {series['window']} rows the value "
                  f"{steps} after the window's last row; the last row's forecast (next_step "
                  "true) is the one after the file's last row."]
    elif images:
        size = "x".join(map(str, images["image_size"]))
        lines.append(f"predict takes an image file ({', '.join(IMAGE_SUFFIXES)}) or a folder of "
                     f"images, each resized to {size} ({images['color_mode']}) as in training, "
                     f"or {arrays}.")
    elif features:
        header = io.StringIO()
        csv.writer(header, delimiter=cfg.delimiter, lineterminator="").writerow(features)
        others = f", such as the target {', '.join(map(repr, targets))}" if targets else ""
        held = "this column" if len(features) == 1 else f"these {len(features)} columns"
        lines += [f"predict takes a CSV with a header row holding {held}"
                  f"{'' if columns else (' of numbers' if len(features) > 1 else ' of a number')}"
                  f"{', in any order' if len(features) > 1 else ''} (other columns{others}, "
                  "are ignored; --keep COLUMN copies one into the output):", header.getvalue()]
        if not columns:
            lines.append(f"or {arrays}, the columns in that order.")
    else:
        lines.append(f"predict takes {arrays} (or a CSV of {int(np.prod(shape))} columns of "
                     "numbers, in the array's order).")
    inside = [what for what, on in (("encodes them", bool(columns)),
                                    ("flattens them", cfg.flatten),
                                    ("reshapes them", bool(cfg.reshape)),
                                    (f"divides them by {cfg.scale or 1:g}", bool(cfg.scale)),
                                    ("normalizes them", cfg.normalize),
                                    ("standardises them on the training part and gives its "
                                     "output in the series' units", bool(series))) if on]
    raw = "(raw values" + (", pixels 0..255 resized with tf.image.resize" if images else "") \
        + (f"; the model itself {_and(inside)}" if inside else "") + ")"
    if columns:
        lines.append("From Python: model.predict(inputs), or the SavedModel's "
                     "signatures['serve'](**inputs), inputs a dict of one tensor of shape "
                     f"[rows, 1] per column {raw}:")
        kinds = {"numeric": "numbers", "integer": "whole-number categories",
                 "string": "categories", "text": "raw text"}
        lines += [f"  {name}: {spec['dtype']} (column '{spec['column']}', "
                  f"{kinds[columns[spec['column']]]})"
                  for name, spec in model_inputs(shape, columns, names_of(info)).items()]
    else:
        lines.append("From Python: model.predict(x), or the SavedModel's "
                     f"signatures['serve'](inputs=x), x float32 of shape {rows} {raw}.")
    if output_shape is not None:
        lines.append(f"The model's output (output_0 of the SavedModel): shape "
                     f"[rows, {', '.join(map(str, output_shape[1:]))}], "
                     f"{_output_meaning(config, info, output_shape)}.")
    return lines


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def _output_meaning(config: Config, info: dict[str, Any], output_shape: Any) -> str:
    classes = info.get("classes") or []
    units = int(np.prod(output_shape[1:]))
    logits = bool(spec_kwargs(config.compile.loss).get("from_logits"))
    if not config.is_classifier:
        targets = info.get("target") or []
        return f"the value{'s' if units > 1 else ''} of " + (
            ", ".join(map(repr, targets)) if len(targets) == units else "the target")
    if units == 1:
        score = "a logit (apply a sigmoid for the probability)" if logits else "the probability"
        name, other = (classes[-1], classes[0]) if len(classes) == 2 else ("1", "0")
        return f"{score} of the class '{name}' (the other: '{other}')"
    score = "logits (apply a softmax for the probabilities)" if logits else "the probabilities"
    order = ", ".join(classes) if 0 < len(classes) <= 20 else \
        "in the order of dataset.json's \"classes\""
    return f"{score} of the classes {order}"
