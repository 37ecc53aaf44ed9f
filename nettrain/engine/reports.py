"""What a model gets right and wrong, beyond its Keras metrics: per-class precision, recall, F1
and support and a confusion matrix for a classifier; MAE, RMSE and R² for a regression model.

The numbers come from scikit-learn on the model's predictions for one split (or new labelled
data); the pictures are drawn by :mod:`nettrain.engine.plots`; ``evaluate`` prints :func:`table` and
records :func:`report`'s dict in ``evaluation.json``. No TensorFlow at import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.text import shown

CONFUSION_PNG = "confusion_matrix"  # + "-<split>.png", or "-data-<file stem>.png"
REGRESSION_PNG = "regression"
AVERAGES = ("macro avg", "weighted avg")


def outcomes(model: Any, batches: Any, keep: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The labels and the model's outputs over one pass of ``batches`` (a dataset of
    ``(x, y)`` or ``(x, y, sample_weight)``, as evaluate takes it), in the same order.
    ``keep(labels, outputs)``: what to keep of each batch (a classifier's class indices: 16
    bytes a row however many classes), not the batch itself."""
    labels, outputs = [], []
    for batch in batches:
        y, out = np.asarray(batch[1]), np.asarray(model.predict_on_batch(batch[0]))
        y, out = keep(y, out) if keep else (y, out)
        outputs.append(out)
        labels.append(y)
    if not outputs:
        return np.zeros((0,)), np.zeros((0, 1))
    return np.concatenate(labels), np.concatenate(outputs)


def true_classes(y: np.ndarray) -> np.ndarray:
    """Class indices of labels: integers, or one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return y.reshape(-1).astype("int64")


def predicted_classes(out: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The class a model's outputs pick: the largest of several (softmax, or logits), or for
    one unit (sigmoid) class 1 when the output is at least ``threshold`` (0.5; 0 for logits
    and hinge losses, whose outputs are scores around 0)."""
    out = np.asarray(out).reshape(len(out), -1)
    if out.shape[1] == 1:
        return (out[:, 0] >= threshold).astype("int64")
    return out.argmax(axis=1)


def classification(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support, their macro and weighted averages, the
    accuracy and the confusion matrix (``[true][predicted]`` counts) of class indices.

    A class with no prediction (or no sample) has precision (or recall) 0, not an error.

    Example: ``classification(np.array([0, 1]), np.array([0, 0]), ["a", "b"])["classes"]["a"]``
    -> ``{"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 1}`` (unrounded).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                 zero_division=0)
    rows = {str(name): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                        "support": int(s[i])} for i, name in enumerate(classes)}
    averages = {}
    for name in AVERAGES:
        ap, ar, af, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=name.split()[0], zero_division=0)
        averages[name] = {"precision": float(ap), "recall": float(ar), "f1": float(af),
                          "support": int(s.sum())}
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {"kind": "classification", "samples": int(len(y_true)),
            "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
            "classes": rows, **averages, "confusion_matrix": matrix.tolist()}


def regression(y_true: np.ndarray, y_pred: np.ndarray, names: list[str] | None = None) -> \
        dict[str, Any]:
    """MAE, RMSE and R² per output and over all outputs (R² is None for fewer than 2 samples
    or a constant true value, where it is not defined)."""
    true = np.asarray(y_true, dtype="float64").reshape(len(y_true), -1)
    pred = np.asarray(y_pred, dtype="float64").reshape(len(y_pred), -1)
    names = list(names) if names and len(names) == true.shape[1] else \
        [f"output_{i}" for i in range(true.shape[1])]

    def scores(t: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
        error = p - t
        spread = float(((t - t.mean(axis=0)) ** 2).sum())
        r2 = 1 - float((error ** 2).sum()) / spread if len(t) > 1 and spread > 0 else None
        return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
                "r2": r2}

    outputs = {name: scores(true[:, i], pred[:, i]) for i, name in enumerate(names)}
    overall = scores(true, pred) if true.shape[1] > 1 else next(iter(outputs.values()))
    if true.shape[1] > 1 and outputs:  # R² over outputs: their mean (scikit-learn's default)
        r2s = [o["r2"] for o in outputs.values()]
        overall["r2"] = None if None in r2s else float(np.mean(r2s))
    return {"kind": "regression", "samples": int(len(true)), **overall, "outputs": outputs}


def report(model: Any, batches: Any, classifier: bool, info: dict[str, Any],
           threshold: float = 0.5) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The report of ``model`` on ``batches``: :func:`classification` or :func:`regression`
    (class and target names from the run's ``dataset.json``, ``info``). Returns it with the
    true and predicted values (class indices for a classifier) for the pictures: a pass keeps
    these arrays only (a classifier's outputs become class indices batch by batch)."""
    if classifier:
        units = []
        true, pred = outcomes(model, batches, lambda y, out: (
            true_classes(y), units.append(out.shape[-1]) or predicted_classes(out, threshold)))
        true, pred = true.reshape(-1).astype("int64"), pred.reshape(-1).astype("int64")
        classes = list(info.get("classes") or []) or \
            [str(i) for i in range(max((units or [1])[0], 2))]
        return classification(true, pred, classes), true, pred
    y, out = outcomes(model, batches)
    out = out.reshape(len(out), -1)
    return regression(y, out, info.get("target")), y, out


def png_names(label: str) -> dict[str, str]:
    """The picture files of an evaluation labelled ``label`` (a split, or ``data-<stem>``):
    one name per evaluated set, so evaluations of other data never overwrite them."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "data"
    return {"classification": f"{CONFUSION_PNG}-{label}.png",
            "regression": f"{REGRESSION_PNG}-{label}.png"}


def draw(result: dict[str, Any], true: np.ndarray, pred: np.ndarray, folder: Path, label: str,
         title: str) -> Path:
    """Draw the report's picture into ``folder``: the confusion matrix of a classifier, the
    predicted-against-true and residual plots of a regression model, the names as
    :func:`nettrain.text.shown` shows them. Returns its path."""
    from nettrain.engine import plots

    path = folder / png_names(label)[result["kind"]]
    if result["kind"] == "classification":
        return plots.confusion_png(result["confusion_matrix"],
                                   [shown(c) for c in result["classes"]], path, shown(title))
    note = "  ".join(f"{name} {result[key]:.4g}" for name, key in
                     (("MAE", "mae"), ("RMSE", "rmse"), ("R²", "r2")) if result[key] is not None)
    return plots.regression_png(true, pred, path, shown(title),
                                [shown(n) for n in result["outputs"]], note)


def table(result: dict[str, Any], title: str = "") -> Any:
    """The report as a rich Table: one row per class (precision, recall, F1, support) and the
    averages, or one row per regression output (MAE, RMSE, R²) and all of them. Class and
    output names are shown as :func:`nettrain.text.shown` shows them, never as markup."""
    from rich.table import Table
    from rich.text import Text

    numbers = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    if result["kind"] == "classification":
        grid = Table(title=title or None, title_justify="left")
        for name, justify in (("class", "left"), ("precision", "right"), ("recall", "right"),
                              ("f1", "right"), ("support", "right")):
            grid.add_column(name, justify=justify)  # type: ignore[arg-type]
        for name, row in result["classes"].items():
            grid.add_row(Text(shown(name)),
                         *(numbers(row[k]) for k in ("precision", "recall", "f1")),
                         str(row["support"]))
        grid.add_section()
        for name in AVERAGES:
            row = result[name]
            grid.add_row(name, *(numbers(row[k]) for k in ("precision", "recall", "f1")),
                         str(row["support"]))
        grid.add_row("accuracy", "", "", numbers(result["accuracy"]), str(result["samples"]))
        return grid
    grid = Table(title=title or None, title_justify="left")
    for name, justify in (("output", "left"), ("MAE", "right"), ("RMSE", "right"),
                          ("R²", "right"), ("samples", "right")):
        grid.add_column(name, justify=justify)  # type: ignore[arg-type]
    outputs = result["outputs"]
    for name, row in outputs.items():
        grid.add_row(Text(shown(name)), numbers(row["mae"]), numbers(row["rmse"]),
                     numbers(row["r2"]), str(result["samples"]))
    if len(outputs) > 1:
        grid.add_section()
        grid.add_row("all", numbers(result["mae"]), numbers(result["rmse"]),
                     numbers(result["r2"]), str(result["samples"]))
    return grid
