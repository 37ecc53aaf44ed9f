"""The best epoch of a run: one rule, from its config's callbacks and its ``history.csv``.

fit's final table, its live "* best" marker and ``runs compare`` all ask :func:`best_epoch`
(or :func:`monitor` for the value that decides it), so they never disagree about a run.

The rule: the monitor of the first EarlyStopping or ModelCheckpoint in ``fit.callbacks``
(Keras's default for both is ``val_loss``) with its ``mode`` (``auto``: higher is better for
accuracy-like names, else lower); without one, ``val_loss`` when the history has it, else
``loss``, lowest best. The best epoch is the first row with the best finite value.
No TensorFlow here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

# Metric names whose larger values are better, when a callback's mode is 'auto' (Keras decides
# from the metric object; the run's history has only names).
_HIGHER = ("acc", "auc", "precision", "recall", "f1", "iou", "r2")


class Monitor(NamedTuple):
    """The value that decides the best epoch: its name, ``'min'`` or ``'max'``, and where it
    comes from (``"EarlyStopping's monitor"``, or ``''`` for the default)."""

    name: str
    mode: str
    source: str

    def better(self, value: Any, than: float | None) -> bool:
        """Whether ``value`` is finite and better than ``than`` (None: nothing yet)."""
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return than is None or (value > than if self.mode == "max" else value < than)


@dataclass(frozen=True)
class Best:
    """A run's best epoch (from 1), the monitor that chose it and its value there."""

    epoch: int
    monitor: Monitor
    value: float

    def text(self) -> str:
        """``'highest val_accuracy 0.9667 (EarlyStopping's monitor)'``."""
        said = (f"{'highest' if self.monitor.mode == 'max' else 'lowest'} {self.monitor.name} "
                f"{number(self.value)}")
        return said + (f" ({self.monitor.source})" if self.monitor.source else "")

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "monitor": self.monitor.name, "value": self.value}


def monitor(config: Any, names: list[str]) -> Monitor:
    """The monitor of a run (see the module's rule). ``names`` are the history's columns.

    Args:
        config: the run's config: a validated Config, or its config.yaml read as a mapping
            (``runs compare`` reads old and edited runs without validating them; a callback
            that is not a Keras spec there is passed over).
    """
    from nettrain.config.fields import spec_kwargs, spec_name

    for spec in _callbacks(config):
        if not _is_spec(spec):
            continue
        name = spec_name(spec)
        if name.lower().replace("_", "") in ("earlystopping", "modelcheckpoint"):
            kwargs = spec_kwargs(spec)
            value = str(kwargs.get("monitor", "val_loss"))
            mode = kwargs.get("mode", "auto")
            if mode not in ("min", "max"):
                higher = "loss" not in value and any(h in value.lower() for h in _HIGHER)
                mode = "max" if higher else "min"
            return Monitor(value, mode, f"{name}'s monitor")
    return Monitor("val_loss" if "val_loss" in names else "loss", "min", "")


def _is_spec(spec: Any) -> bool:
    """A Keras spec as the schema normalizes it: a name, or ``{name: {arguments} or None}``."""
    if isinstance(spec, str):
        return True
    return isinstance(spec, dict) and len(spec) == 1 and isinstance(next(iter(spec)), str) \
        and isinstance(next(iter(spec.values())), (dict, type(None)))


def _callbacks(config: Any) -> list[Any]:
    """``fit.callbacks`` of a Config or of a config mapping (empty when it has none)."""
    fit = getattr(config, "fit", None)
    if fit is not None:
        return list(fit.callbacks)
    fit = config.get("fit") if isinstance(config, dict) else None
    callbacks = fit.get("callbacks") if isinstance(fit, dict) else None
    return callbacks if isinstance(callbacks, list) else []


def best_epoch(history: Path, config: Any) -> Best | None:
    """The best row of ``history.csv`` by the run's :func:`monitor`; None when there is no
    history, it cannot be read, or no row has a finite value of the monitor.

    Example: ``best_epoch(run / "history.csv", config).text()`` -> ``"highest val_accuracy
    0.9667 (EarlyStopping's monitor)"``.
    """
    try:
        with history.open(newline="", encoding="utf-8") as f:
            rows = [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, ValueError, csv.Error):  # missing, not UTF-8, not CSV: no best epoch
        return None
    # a column of NA only (val_loss of a run without validation) is not a monitor
    names = [k for k in (rows[0] if rows else {}) if isinstance(k, str) and
             any(math.isfinite(r.get(k, math.nan)) for r in rows)]
    chosen = monitor(config, names)
    best: tuple[int, float] | None = None
    for index, row in enumerate(rows):
        value, epoch = row.get(chosen.name, math.nan), row.get("epoch", float(index))
        if math.isfinite(epoch) and chosen.better(value, best and best[1]):
            best = (int(epoch) + 1, value)
    return Best(best[0], chosen, best[1]) if best else None


def _float(text: Any) -> float:
    """A number of history.csv; NaN for NA, an empty cell or anything else."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def number(value: Any) -> str:
    """A monitored value as fit shows it: 4 decimals (4 significant digits when huge)."""
    return f"{value:.4f}" if isinstance(value, float) and abs(value) < 1e5 else f"{value:.4g}"
