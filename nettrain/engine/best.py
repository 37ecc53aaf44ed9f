"""The best epoch of a run: one rule, from its config's callbacks and its ``history.csv``.

fit's final table, its live "* best" marker, best.keras and ``runs compare`` all ask
:func:`monitor` (and :func:`best_epoch`), so they never disagree about a run.

The rule: the monitor of the first EarlyStopping or ModelCheckpoint in ``fit.callbacks``
(Keras's default for both is ``val_loss``) with its ``mode``; ``auto`` takes the direction
Keras gives the metric (recorded at fit time: :mod:`nettrain.model.direction`). Without one,
``val_loss`` when the history has it, else ``loss``, lowest best. The best epoch is the first
row with the best finite value. No TensorFlow here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from nettrain.model import direction
from nettrain.run import directory as rundir
from nettrain.run import history


class Monitor(NamedTuple):
    """The value that decides the best epoch: its name, ``'min'`` or ``'max'`` (None where
    Keras cannot tell: then no epoch is best), and where it comes from (``"EarlyStopping's
    monitor"``, or ``''`` for the default)."""

    name: str
    mode: str | None
    source: str

    def better(self, value: Any, than: float | None) -> bool:
        """Whether ``value`` is finite and better than ``than`` (None: nothing yet); a tie is
        not better, so the first of equal values stays the best."""
        if self.mode is None or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
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


def monitor(config: Any, names: list[str], directions: dict[str, str]) -> Monitor:
    """The monitor of a run (see the module's rule). ``names`` are the history's columns.

    Args:
        config: the run's config: a validated Config, or its config.yaml read as a mapping
            (``runs compare`` reads old and edited runs without validating them; a callback
            that is not a Keras spec there is passed over).
        directions: which way each value improves, as Keras said for the run's model
            (:func:`nettrain.model.direction.of_run`, or ``of_model`` while fit runs).
    """
    from nettrain.config.fields import spec_kwargs, spec_name

    for spec in _callbacks(config):
        if not _is_spec(spec):
            continue
        name = spec_name(spec)
        if name.lower().replace("_", "") in ("earlystopping", "modelcheckpoint"):
            kwargs = spec_kwargs(spec)
            value = str(kwargs.get("monitor", "val_loss"))
            mode = kwargs.get("mode", "auto")  # Keras: an explicit min or max wins
            if mode not in (direction.MIN, direction.MAX):
                mode = direction.of(value, directions)
            return Monitor(value, mode, f"{name}'s monitor")
    default = "val_loss" if "val_loss" in names else "loss"
    return Monitor(default, direction.of(default, directions), "")


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


def best_epoch(run: Path, config: Any) -> Best | None:
    """The best row of the run's ``history.csv`` by its :func:`monitor`; None when there is
    no history, it cannot be read, no row has a finite value of the monitor, or Keras cannot
    tell which way the monitor improves.

    Args:
        run: the run directory (its history.csv, and run.json's recorded directions).
        config: the run's config (see :func:`monitor`).

    Example: ``best_epoch(run, config).text()`` -> ``"highest val_accuracy 0.9667
    (EarlyStopping's monitor)"``.
    """
    rows = history.read(run / rundir.HISTORY)
    if rows is None:
        return None
    chosen = monitor(config, rows.with_values(), direction.of_run(run, config))
    best: tuple[int, float] | None = None
    for index, row in enumerate(rows.rows):
        value, epoch = row.get(chosen.name, math.nan), rows.epoch(index)
        if epoch is not None and chosen.better(value, best and best[1]):
            best = (epoch + 1, value)
    return Best(best[0], chosen, best[1]) if best else None


def number(value: Any) -> str:
    """A monitored value as fit shows it: 4 decimals (4 significant digits when huge)."""
    return f"{value:.4f}" if isinstance(value, float) and abs(value) < 1e5 else f"{value:.4g}"
