"""Pictures of runs, as PNG files (matplotlib's Agg backend: no display needed). No TensorFlow.

Every function takes plain data (pandas frames, arrays), writes one PNG atomically and returns
its path, so ``fit``, ``evaluate`` and ``runs compare`` draw the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.run.directory import replacing
from nettrain.run.history import NOT_METRICS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

HISTORY_PNG = "history.png"


def figure(width: float, height: float) -> Figure:
    """A new matplotlib figure that belongs to no window (safe in threads and without a display)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG so that a crash leaves no half-written picture."""
    with replacing(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def metric_names(history: pd.DataFrame) -> list[str]:
    """The metrics of a Keras history, training names only, loss first: ``loss``, ``accuracy``...

    ``val_`` columns pair with their training metric; ``epoch`` and ``learning_rate`` are not
    metrics (the learning rate gets its own panel when it changed).
    """
    names = [c for c in history.columns
             if c not in NOT_METRICS and not c.startswith("val_")]
    names += [c[4:] for c in history.columns if c.startswith("val_") and c[4:] not in names]
    return sorted(names, key=lambda name: name != "loss")


def history_png(histories: Mapping[str, pd.DataFrame], path: Path, title: str = "") -> Path:
    """Write :func:`history_figure` of ``histories`` to the PNG ``path``."""
    return save(history_figure(histories, title), path)


def history_figure(histories: Mapping[str, pd.DataFrame], title: str = "") -> Figure:
    """Plot loss and each metric per epoch, training (solid) and validation (dashed).

    Args:
        histories: label -> a run's ``history.csv`` as a frame (columns ``epoch``, ``loss``,
            ``val_loss``, ...). One run gives one line per split; several runs (``runs compare``)
            share each panel, one colour per run. A ``val_`` column with no value (an older
            run without validation data wrote NA) draws nothing, and is not in the legend.
        title: a title over all panels (e.g. the run's name).
    """
    import numpy as np

    names: list[str] = []
    for history in histories.values():
        names += [n for n in metric_names(history) if n not in names]
    lr_changed = any(h.get("learning_rate", h.get("lr")) is not None
                     and h.get("learning_rate", h.get("lr")).nunique() > 1
                     for h in histories.values())
    panels = names + (["learning_rate"] if lr_changed else [])
    panels = panels or ["loss"]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    validation = any(_has_values(h, f"val_{n}") for h in histories.values() for n in names)
    legend = _run_legend(list(histories), validation) if len(histories) > 1 else []
    # as many legend entries a row as fit the width (about 6 px a character at small size)
    per_row = max(1, min(len(legend), int(480 * cols // (45 + 6 * max(
        (len(entry.get_label()) for entry in legend), default=0)))))
    fig = figure(4.8 * cols, 3.4 * rows + (0.25 * math.ceil(len(legend) / per_row) + 0.2
                                          if legend else 0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    colours = [f"C{i % 10}" for i in range(len(histories))]
    for ax, name in zip(axes, panels):
        for colour, (label, history) in zip(colours, histories.items()):
            epochs = (history["epoch"] + 1 if "epoch" in history
                      else np.arange(1, len(history) + 1))
            if name == "learning_rate":
                column = "learning_rate" if "learning_rate" in history else "lr"
                if column in history:
                    ax.plot(epochs, history[column], color=colour, label="learning rate")
                ax.set_yscale("log")
                continue
            if name in history:
                ax.plot(epochs, history[name], color=colour, marker="." if len(history) < 30
                        else None, label="training")
            if _has_values(history, f"val_{name}"):
                ax.plot(epochs, history[f"val_{name}"], color=colour, linestyle="--",
                        marker="." if len(history) < 30 else None, label="validation")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines and len(histories) == 1:
            ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if legend:  # one legend under the panels: a colour per run, a line style per split
        fig.legend(handles=legend, loc="outside lower center", ncols=per_row, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _has_values(history: pd.DataFrame, column: str) -> bool:
    """Whether ``history`` has ``column`` with at least one value (not only NA)."""
    return column in history and bool(history[column].notna().any())


def _run_legend(labels: list[str], validation: bool = True) -> list:
    """Legend entries for several runs: each run's colour, then the line style of each split
    (validation only when a run has validation values)."""
    from matplotlib.lines import Line2D

    return [*(Line2D([], [], color=f"C{i % 10}", label=label) for i, label in enumerate(labels)),
            Line2D([], [], color="black", label="training"),
            *([Line2D([], [], color="black", linestyle="--", label="validation")]
              if validation else [])]


def confusion_png(matrix: Any, classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Plot a confusion matrix: true class down, predicted class across.

    Each cell's colour is its share of the true class (a row sums to 1, so a rare class reads
    as clearly as a common one); its count is written in it while the cells are large enough
    to read (up to 30 classes). The names shrink as classes grow, and turn (45 degrees, 90
    beyond 30 classes) when they do not fit side by side; when even the smallest names would
    overlap, only every n-th is shown. The figure grows with the classes, up to 18 inches.

    Args:
        matrix: counts, ``matrix[true, predicted]`` (square, one row per class).
        classes: the class names, in the matrix's order.
        path: the PNG to write.
        title: a title (e.g. the run's name and the split).
    """
    import numpy as np
    from matplotlib.colors import Normalize, PowerNorm

    counts = np.asarray(matrix, dtype="int64")
    n = len(classes)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype="float64"),
                       where=totals > 0)
    names = [str(c) for c in classes]
    longest = max((len(c) for c in names), default=1)
    per_cell = 0.55 if n <= 10 else 0.4 if n <= 30 else 0.16  # inches
    side = min(max(4.0, per_cell * n), 18.0)  # of the matrix
    cell = side * 72 / max(n, 1)  # points per cell
    size = max(4.0, min(10.0, cell * 0.7))  # a name fits in its row
    step = max(1, math.ceil(size * 1.2 / cell))  # beyond that, every n-th name
    room = min(longest * size * 0.6 / 72, 3.0) + 0.4  # inches for the names
    fig = figure(side + room + 1.6, side + room + 0.5)
    ax = fig.subplots()
    # With many classes most shares are small: a square-root scale keeps them visible.
    norm = Normalize(0.0, 1.0) if n <= 30 else PowerNorm(0.5, 0.0, 1.0)
    image = ax.imshow(shares, cmap="Blues", norm=norm, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, shrink=0.8 if n <= 30 else 0.5)
    bar.set_label("share of the true class" + (" (square-root scale)" if n > 30 else ""))
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks, [names[i] for i in ticks], fontsize=size)
    if longest * size * 0.6 > cell * step * 0.9:  # the names do not fit side by side: turn them
        ax.tick_params(axis="x", labelrotation=45 if n <= 30 else 90)
        if n <= 30:
            for label in ax.get_xticklabels():
                label.set(ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 30:
        text_size = max(6.0, min(10.0, cell * 0.35))
        for (row, col), count in np.ndenumerate(counts):
            if count or n <= 10:
                ax.text(col, row, str(count), ha="center", va="center", fontsize=text_size,
                        color="white" if shares[row, col] > 0.5 else "black")
    ax.set_title(title or "confusion matrix", fontsize=11 if side < 8 else 14)
    return save(fig, path)


def regression_png(y_true: Any, y_pred: Any, path: Path, title: str = "",
                   names: Sequence[str] | None = None, note: str = "") -> Path:
    """Plot predicted against true values (with the line y = x) and the residuals.

    Two panels side by side: left, each sample's prediction against its true value; right,
    the residual (predicted - true) against the true value, around a line at 0. Several
    outputs share the panels, one colour each (``names`` in the legend).

    Args:
        y_true, y_pred: arrays of shape ``(samples,)`` or ``(samples, outputs)``.
        path: the PNG to write.
        title: a title over both panels.
        names: the outputs' names (default output_0, ...).
        note: a line written in the scatter's corner (e.g. "MAE 0.12  RMSE 0.2  R² 0.93").
    """
    import numpy as np

    true = np.asarray(y_true, dtype="float64").reshape(len(y_true), -1)
    pred = np.asarray(y_pred, dtype="float64").reshape(len(y_pred), -1)
    outputs = true.shape[1]
    names = list(names or [])[:outputs] if names and len(names) == outputs else \
        [f"output_{i}" for i in range(outputs)]
    fig = figure(10.0, 4.4)
    scatter, residual = fig.subplots(1, 2)
    alpha = 0.7 if len(true) <= 500 else 0.3
    dot = 14 if len(true) <= 500 else 4
    for i, name in enumerate(names):
        label = name if outputs > 1 else None
        scatter.scatter(true[:, i], pred[:, i], s=dot, alpha=alpha, color=f"C{i % 10}",
                        label=label)
        residual.scatter(true[:, i], pred[:, i] - true[:, i], s=dot, alpha=alpha,
                         color=f"C{i % 10}", label=label)
    low = float(min(true.min(), pred.min()))
    high = float(max(true.max(), pred.max()))
    pad = (high - low) * 0.05 or 1.0
    scatter.plot([low - pad, high + pad], [low - pad, high + pad], color="0.3",
                 linestyle="--", linewidth=1, label="y = x")
    scatter.set_xlim(low - pad, high + pad)
    scatter.set_ylim(low - pad, high + pad)
    scatter.set_aspect("equal", adjustable="box")
    what = names[0] if outputs == 1 else "value"
    scatter.set_xlabel(f"true {what}")
    scatter.set_ylabel(f"predicted {what}")
    if note:
        scatter.text(0.97, 0.03, note, transform=scatter.transAxes, ha="right", va="bottom",
                     fontsize="small", bbox={"facecolor": "white", "alpha": 0.8,
                                             "edgecolor": "0.8"})
    scatter.set_title("predicted against true")
    residual.axhline(0.0, color="0.3", linestyle="--", linewidth=1)
    residual.set_xlabel(f"true {what}")
    residual.set_ylabel("residual (predicted - true)")
    residual.set_title("residuals")
    for ax in (scatter, residual):
        ax.grid(alpha=0.3)
    scatter.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save(fig, path)
