"""Pictures of runs, as PNG files (matplotlib's Agg backend: no display needed). No TensorFlow.

Every function takes plain data (pandas frames, arrays), writes one PNG atomically and returns
its path, so ``fit``, ``evaluate`` and ``runs compare`` draw the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nettrain.rundir import replacing

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
             if c not in ("epoch", "learning_rate", "lr") and not c.startswith("val_")]
    names += [c[4:] for c in history.columns if c.startswith("val_") and c[4:] not in names]
    return sorted(names, key=lambda name: name != "loss")


def history_png(histories: Mapping[str, pd.DataFrame], path: Path, title: str = "") -> Path:
    """Plot loss and each metric per epoch, training (solid) and validation (dashed).

    Args:
        histories: label -> a run's ``history.csv`` as a frame (columns ``epoch``, ``loss``,
            ``val_loss``, ...). One run gives one line per split; several runs (``runs compare``)
            share each panel, one colour per run.
        path: the PNG to write.
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
    legend = _run_legend(list(histories)) if len(histories) > 1 else []
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
            if f"val_{name}" in history:
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
    return save(fig, path)


def _run_legend(labels: list[str]) -> list:
    """Legend entries for several runs: each run's colour, then the line style of each split."""
    from matplotlib.lines import Line2D

    return [*(Line2D([], [], color=f"C{i % 10}", label=label) for i, label in enumerate(labels)),
            Line2D([], [], color="black", label="training"),
            Line2D([], [], color="black", linestyle="--", label="validation")]
