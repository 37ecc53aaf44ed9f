"""``nettrain runs compare``: runs side by side: the config keys that differ, final and best
metrics, and their histories in one picture.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.engine.best import Best, best_epoch
from nettrain.errors import UsageError
from nettrain.run import directory as rundir
from nettrain.run import history
from nettrain.runs.view import _status_text, epochs_text, number
from nettrain.runs.table import (
    MISSING,
    RunRow,
    _config,
    _Damaged,
    _finite,
    direction_of,
    is_run,
    read_run,
)
from nettrain.text import shown

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import RenderableType


# ----------------------------------------------------------------------------- compare


@dataclass
class Comparison:
    """What ``runs compare`` shows: the runs, their labels, the config keys that differ and
    the metrics side by side, and each run's history (for the overlaid plot)."""

    rows: list[RunRow]
    labels: list[str]
    differ: dict[str, list[Any]]
    same: int
    best: list[Best | None]
    histories: dict[str, pd.DataFrame]

    def metric_names(self) -> list[str]:
        names = list(dict.fromkeys(n for row in self.rows for n in row.metrics))
        order = {p: i for i, p in enumerate(("test_", "val_", "train_"))}
        return sorted(names, key=lambda n: (order.get(n[:n.find("_") + 1], 3),
                                            n.endswith("_loss"), names.index(n)))

    def to_json(self, plot: Path | None) -> dict[str, Any]:
        runs = [{"label": label, **row.to_json(), "best_epoch": best and best.to_json()}
                for label, row, best in zip(self.labels, self.rows, self.best)]
        return {"runs": runs,
                "config": {"differ": {k: [None if v is MISSING else v for v in values]
                                      for k, values in self.differ.items()},
                           "same": self.same},
                "metrics": {n: [_finite(r.metrics[n]) if n in r.metrics else None
                                for r in self.rows] for n in self.metric_names()},
                "plot": str(plot) if plot else None}


def compare(paths: list[Path]) -> Comparison:
    """Read the runs ``paths`` for ``runs compare``.

    Raises UsageError naming a path that is not a run directory, a run given twice, or a run
    whose config.yaml cannot be read (there is nothing to compare it by).
    """
    from nettrain.config.overrides import flatten

    if len(paths) < 2:
        raise UsageError("RUN: expected at least two run directories to compare; received "
                         f"{len(paths)}. To see one run: nettrain runs "
                         f"{paths[0] if paths else 'ROOT'}")
    seen: dict[Path, Path] = {}
    for path in paths:
        if not path.is_dir() or not is_run(path):
            why = ("does not exist" if not path.exists() else "is not a folder" if
                   not path.is_dir() else f"has no {rundir.CONFIG} and {rundir.RUN}")
            raise UsageError(f"RUN: expected a run directory (made by 'nettrain fit'); "
                             f"received '{path}', which {why}. List the runs with: nettrain runs")
        if path.resolve() in seen:
            raise UsageError(f"RUN: '{path}' is given twice (as '{seen[path.resolve()]}'); "
                             "compare different runs.")
        seen[path.resolve()] = path
    configs, flats = [], []
    for path in paths:
        try:
            configs.append(_config(path, whole=True))
            flats.append({_dotted(k): v for k, v in flatten(configs[-1]).items()})
        except _Damaged as exc:
            raise UsageError(f"RUN '{path}': {str(exc).rstrip('.')}. Its config cannot be "
                             "compared; restore it from a copy of the run directory.") from None
    rows = [read_run(path) for path in paths]
    labels = _labels(rows)
    keys = _grouped(flats)
    differ = {k: [flat.get(k, MISSING) for flat in flats] for k in keys
              if any(flat.get(k, MISSING) != flats[0].get(k, MISSING)
                     for flat in flats)}
    read = {label: history.read(row.path / rundir.HISTORY) for label, row in zip(labels, rows)}
    histories = {k: v.frame() for k, v in read.items() if v is not None and len(v)}
    # fit's rule (its summary's "Best epoch"): the monitor of the run's callbacks
    best = [best_epoch(row.path, config) for row, config in zip(rows, configs)]
    return Comparison(rows, labels, differ, len(keys) - len(differ), best, histories)


def _grouped(flats: list[dict[str, Any]]) -> list[str]:
    """Every key of the runs, each beside its kin: keys that share a prefix stay together
    (``model.layers.1.Dense.*`` before ``model.layers.1.Dropout.*``, never interleaved), and
    prefixes come in the order the configs first have them."""
    order: dict[str, int] = {}
    for flat in flats:
        for key in flat:
            parts = key.split(".")
            for i in range(1, len(parts) + 1):
                order.setdefault(".".join(parts[:i]), len(order))
    keys = dict.fromkeys(k for flat in flats for k in flat)
    return sorted(keys, key=lambda k: [order[".".join(k.split(".")[:i])]
                                       for i in range(1, k.count(".") + 2)])


def _dotted(key: str) -> str:
    """``model.layers[0].Dense.units`` -> ``model.layers.0.Dense.units`` (an override's form)."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _labels(rows: list[RunRow]) -> list[str]:
    """Each run's name; where names repeat, with the shortest end of its path that tells them
    apart: ``tiny (20261125-101500)``."""
    names = [row.name for row in rows]
    labels = list(names)
    for i, row in enumerate(rows):
        twins = [r for r in rows if r.name == row.name]
        if len(twins) == 1:
            continue
        parts = [r.path.resolve().parts for r in twins]
        for depth in range(1, max(map(len, parts)) + 1):
            tails = ["/".join(p[-depth:]) for p in parts]
            if len(set(tails)) == len(tails):
                break
        labels[i] = f"{row.name} ({'/'.join(row.path.resolve().parts[-depth:])})"
    return labels


def value_text(value: Any) -> str:
    """A config value as a person (and an override) writes it: ``0.01``, ``true``, ``[keras]``."""
    if value is MISSING:
        return "(not set)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def compare_tables(comparison: Comparison) -> list[RenderableType]:
    """The config keys that differ and the metrics, each run a column."""
    from rich.table import Table
    from rich.text import Text

    differ = Table(title=f"Config: {len(comparison.differ)} key"
                         f"{'s differ' if len(comparison.differ) != 1 else ' differs'} "
                         f"({comparison.same} the same)", title_justify="left")
    differ.add_column("key", no_wrap=True)  # a dotted key to copy is never folded
    for label in comparison.labels:  # Text: never read as rich markup
        differ.add_column(Text(shown(label)), overflow="fold")
    for key, values in comparison.differ.items():
        differ.add_row(Text(shown(key)), *(Text(shown(value_text(v))) for v in values))
    if not comparison.differ:
        differ = Text(f"Config: the same in every run ({comparison.same} keys)")
    metrics = Table(title="Metrics", title_justify="left")
    metrics.add_column("")
    for label in comparison.labels:
        metrics.add_column(Text(shown(label)), justify="right", overflow="fold")
    metrics.add_row("status", *(_status_text(r.status) for r in comparison.rows))
    metrics.add_row("epochs", *(epochs_text(r) for r in comparison.rows))
    metrics.add_row("best epoch", *(
        Text(shown(f"{b.epoch} ({b.monitor.name} {number(b.value)})")) if b else "-"
        for b in comparison.best))
    for name in comparison.metric_names():
        values = [r.metrics.get(name) for r in comparison.rows]
        known = [v for v in values if v is not None and math.isfinite(v)]
        way = direction_of(name, comparison.rows) if len(known) > 1 else None
        top = (min if way == "min" else max)(known) if way else None
        metrics.add_row(Text(shown(name)), *(Text(number(v), style="bold" if v == top else "")
                                for v in values))
    return [differ, metrics]


def compare_png(comparison: Comparison, output: Path) -> Path | None:
    """Overlay the runs' histories in one PNG (see :func:`nettrain.engine.plots.history_png`);
    None when no run has a history."""
    from nettrain.engine import plots

    if not comparison.histories:
        return None
    histories = {shown(label): history for label, history in comparison.histories.items()}
    title = " vs ".join(histories)
    if len(histories) > 3 or len(title) > 80:  # the legend names them
        title = f"{len(histories)} runs"
    return plots.history_png(histories, output, title=title)


def check_output(output: Path) -> None:
    """Refuse a --output the plot cannot be written to, before any work."""
    if output.suffix.lower() != ".png":
        raise UsageError(f"--output {output}: expected a .png file name (the plot is a PNG).")
    if output.is_dir():
        raise UsageError(f"--output {output}: expected a file name; it is a folder.")
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: the folder {output.parent} does not exist.")
