"""What a model gets right and wrong, beyond its Keras metrics: per-class precision, recall, F1
and support and a confusion matrix for a classifier; MAE, RMSE and R² for a regression model
(for a series, beside the naive last-value forecast's).

The numbers are counted over one pass of a split (or new labelled data), a batch at a time, so
memory stays flat in the rows (scikit-learn's per-class numbers from the confusion matrix; sums
for a regression; its picture from a bounded sample); the pictures are drawn by :mod:`nettrain.engine.plots`; ``evaluate`` prints :func:`table` and
records :func:`report`'s dict in ``evaluation.json``. No TensorFlow at import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.timeseries import target_index
from nettrain.text import shown

CONFUSION_PNG = "confusion_matrix"  # + "-<split>.png", or "-data-<file stem>.png"
REGRESSION_PNG = "regression"
AVERAGES = ("macro avg", "weighted avg")


SAMPLE_ROWS = 10_000  # the most rows a regression picture draws (a sample of every row)


class Sample:
    """A systematic sample of at most ``size`` rows of a pass, in the file's order: every
    ``stride``-th row, the stride doubling (and half the rows leaving) when it is full. Its
    memory is bounded however many rows pass; it feeds the pictures only, never a number."""

    def __init__(self, size: int):
        self.size, self.stride, self.seen = size, 1, 0
        self.rows: list[np.ndarray] = []
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, *arrays: np.ndarray) -> None:
        index = np.arange(self.seen, self.seen + len(arrays[0]))
        self.seen += len(index)
        keep = index % self.stride == 0
        self.rows.append(index[keep])
        self.parts.append(tuple(a[keep] for a in arrays))
        while sum(len(r) for r in self.rows) > self.size:
            self.stride *= 2
            kept = [r % self.stride == 0 for r in self.rows]
            self.rows = [r[k] for r, k in zip(self.rows, kept)]
            self.parts = [tuple(a[k] for a in p) for p, k in zip(self.parts, kept)]

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(column) for column in zip(*self.parts))


def true_and_predicted(model: Any, parts: Any) -> Any:
    """(labels, outputs) of each batch of ``parts`` (``(x, y)`` arrays: a split's rows, a
    chunk at a time), in the same order: the model called on batches of
    :data:`nettrain.engine.predict.BATCH_SIZE` rows, as predict calls it."""
    from nettrain.data.dataset import size, take
    from nettrain.engine.predict import BATCH_SIZE

    for x, y in parts:
        for start in range(0, size(x), BATCH_SIZE):
            index = np.arange(start, min(start + BATCH_SIZE, size(x)))
            yield np.asarray(y[index]), np.asarray(model.predict_on_batch(take(x, index)))


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
    accuracy and the confusion matrix (``[true][predicted]`` counts) of class indices: the
    numbers of :func:`counted` for their confusion matrix.

    A class with no prediction (or no sample) has precision (or recall) 0, not an error.

    Example: ``classification(np.array([0, 1]), np.array([0, 0]), ["a", "b"])["classes"]["a"]``
    -> ``{"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 1}`` (unrounded).
    """
    from sklearn.metrics import confusion_matrix

    return counted(confusion_matrix(y_true, y_pred, labels=list(range(len(classes)))), classes)


def counted(matrix: Any, classes: list[str]) -> dict[str, Any]:
    """:func:`classification`'s numbers from a confusion matrix alone (``[true][predicted]``
    counts, a pass's rows added up batch by batch): scikit-learn's, on each (true, predicted)
    pair that occurs weighted by its count, which are the numbers of the rows themselves."""
    from sklearn.metrics import precision_recall_fscore_support

    matrix = np.asarray(matrix, dtype="int64")
    labels = list(range(len(classes)))
    true, pred = np.nonzero(matrix)
    weight = matrix[true, pred]
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0,
                                                 sample_weight=weight)
    rows = {str(name): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                        "support": int(s[i])} for i, name in enumerate(classes)}
    averages = {}
    for name in AVERAGES:
        ap, ar, af, _ = precision_recall_fscore_support(
            true, pred, labels=labels, average=name.split()[0], zero_division=0,
            sample_weight=weight)
        averages[name] = {"precision": float(ap), "recall": float(ar), "f1": float(af),
                          "support": int(s.sum())}
    total = int(matrix.sum())
    return {"kind": "classification", "samples": total,
            "accuracy": float(np.trace(matrix) / total) if total else 0.0,
            "classes": rows, **averages, "confusion_matrix": matrix.tolist()}


class Moments:
    """What a regression report needs of a pass, per output, added up batch by batch: the
    rows, the sums of absolute and squared errors, and the true values' mean and sum of
    squared deviations (merged per batch as Chan et al. do, so no second pass is needed)."""

    def __init__(self) -> None:
        self.n = 0
        self.absolute = self.squared = self.mean = self.m2 = np.zeros(0)

    def add(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        true = np.asarray(y_true, dtype="float64").reshape(len(y_true), -1)
        pred = np.asarray(y_pred, dtype="float64").reshape(len(y_pred), -1)
        if not len(true):
            return
        error = pred - true
        mean = true.mean(axis=0)
        m2 = ((true - mean) ** 2).sum(axis=0)
        if not self.n:
            self.absolute, self.squared = np.abs(error).sum(axis=0), (error ** 2).sum(axis=0)
            self.n, self.mean, self.m2 = len(true), mean, m2
            return
        n = self.n + len(true)
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta ** 2 * self.n * len(true) / n
        self.mean = self.mean + delta * len(true) / n
        self.absolute = self.absolute + np.abs(error).sum(axis=0)
        self.squared = self.squared + (error ** 2).sum(axis=0)
        self.n = n


def regression(y_true: np.ndarray, y_pred: np.ndarray, names: list[str] | None = None) -> \
        dict[str, Any]:
    """MAE, RMSE and R² per output and over all outputs (R² is None for fewer than 2 samples
    or a constant true value, where it is not defined): :func:`summed` of the arrays."""
    moments = Moments()
    moments.add(y_true, y_pred)
    return summed(moments, names)


def summed(moments: Moments, names: list[str] | None = None) -> dict[str, Any]:
    """:func:`regression`'s numbers from the :class:`Moments` of a pass."""
    n, outputs_count = moments.n, max(len(moments.mean), 1)
    if not n:  # no rows: one output of nothing
        moments.absolute = moments.squared = moments.mean = moments.m2 = np.zeros(1)
    names = list(names) if names and len(names) == outputs_count else \
        [f"output_{i}" for i in range(outputs_count)]

    def scores(absolute: float, squared: float, spread: float, cells: int) -> dict:
        r2 = 1 - squared / spread if n > 1 and spread > 0 else None
        return {"mae": absolute / cells, "rmse": float(np.sqrt(squared / cells)), "r2": r2}

    outputs = {name: scores(float(moments.absolute[i]), float(moments.squared[i]),
                            float(moments.m2[i]), n) for i, name in enumerate(names)}
    overall = scores(float(moments.absolute.sum()), float(moments.squared.sum()),
                     float(moments.m2.sum()), n * outputs_count) if outputs_count > 1 \
        else next(iter(outputs.values()))
    if outputs_count > 1:  # R² over outputs: their mean (scikit-learn's default)
        r2s = [o["r2"] for o in outputs.values()]
        overall["r2"] = None if None in r2s else float(np.mean(r2s))
    return {"kind": "regression", "samples": int(n), **overall, "outputs": outputs}


def report(model: Any, parts: Any, classifier: bool, info: dict[str, Any],
           threshold: float = 0.5) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The report of ``model`` on ``parts`` (``(x, y)`` arrays of a split, a chunk at a time):
    :func:`classification` or :func:`regression`
    (class and target names from the run's ``dataset.json``, ``info``), in one pass that
    holds one batch at a time: a classifier's rows are counted into its confusion matrix, a
    regression model's into its :class:`Moments`. Returns it with the true and predicted
    values the picture draws: for a regression model a :class:`Sample` of at most
    :data:`SAMPLE_ROWS` rows; none for a classifier (its picture is the matrix)."""
    if classifier:
        classes = list(info.get("classes") or [])
        matrix = np.zeros((len(classes), len(classes)), dtype="int64")
        for y, out in true_and_predicted(model, parts):
            if not classes:  # a run without class names: as many as the output has units
                classes = [str(i) for i in range(max(out.shape[-1], 2))]
                matrix = np.zeros((len(classes), len(classes)), dtype="int64")
            k = len(classes)
            true = true_classes(y).reshape(-1)
            pred = predicted_classes(out, threshold).reshape(-1).astype("int64")
            matrix += np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
        classes = classes or ["0", "1"]
        return counted(matrix, classes), np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    moments, sample = Moments(), Sample(SAMPLE_ROWS)
    for y, out in true_and_predicted(model, parts):
        out = out.reshape(len(out), -1)
        moments.add(y, out)
        sample.add(y, out)
    true, pred = sample.arrays() if sample.parts else (np.zeros((0, 1)), np.zeros((0, 1)))
    return summed(moments, info.get("target")), true, pred


def naive(parts: Any, info: dict[str, Any]) -> dict[str, Any]:
    """MAE, RMSE and R² of the naive forecast of a series on ``parts`` (a split's ``(x, y)`` windows, a
    chunk at a time): each window's last value of the target, the value ``horizon`` steps
    before; the baseline a forecast has to beat (for data.timeseries runs; see :func:`summed`)."""
    index = target_index(info["features"], info["target"])
    moments = Moments()
    for x, y in parts:
        moments.add(y, np.asarray(x)[:, -1, index])
    result = summed(moments, info.get("target"))
    return {key: result[key] for key in ("mae", "rmse", "r2", "samples")}


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
    if len(true) < result["samples"]:  # the numbers are of every row; the dots of a sample
        note += f"\n{len(true):,} of {result['samples']:,} rows drawn"
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
    naive = result.get("naive_last_value")  # a series: the last value as the forecast
    if naive:
        grid.add_section()
        grid.add_row("naive: last value", numbers(naive["mae"]), numbers(naive["rmse"]),
                     numbers(naive["r2"]), str(naive["samples"]))
    return grid
