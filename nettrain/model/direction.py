"""Which way each value a run logs improves, ``'max'`` or ``'min'``: Keras's answer, asked once.

Keras decides it, not the metric's name: EarlyStopping's and ModelCheckpoint's ``mode: auto``
(``MonitorCallback._set_monitor_op``) take ``loss`` as lower-is-better and otherwise ask the
compiled metric object (its ``_direction``: PearsonCorrelation, CosineSimilarity, the IoU
family, AUC, accuracy go up; mse, mae go down), and refuse a metric that says nothing
(``true_positives``). :func:`of_model` asks Keras exactly that for each value a compiled model
logs; fit records the answer in run.json (``RunRecord.decided``), and everything that reads a
run without its model (the best epoch, the live "* best" marker, best.keras, ``runs``, ``runs
compare``, a sweep's ``direction: auto``) reads it back with :func:`of_run` and :func:`of`.
An older run without the record is asked of its config's metric objects (:func:`of_config`).

Keras is imported only inside the functions here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX, MIN = "max", "min"
# The prefixes of one metric's names: Keras's val_ (history.csv), nettrain's test_ and
# train_ (metrics.json as ``runs`` names them).
SPLITS = ("val_", "test_", "train_")


def of_model(model: Any) -> dict[str, str]:
    """Keras's direction of ``loss`` and of each compiled metric of ``model`` (by its name,
    without ``val_``), as ``mode: auto`` decides it; a metric Keras cannot tell is left out.

    Example: a model compiled with ``loss='mse', metrics=[keras.metrics.PearsonCorrelation()]``
    -> ``{'loss': 'min', 'pearson_correlation': 'max'}``.
    """
    names = ["loss", *(m.name for m in _compiled_metrics(model))]
    return {name: way for name in dict.fromkeys(names) if (way := _ask(name, model))}


def of_config(config: Any) -> dict[str, str]:
    """What :func:`of_model` answers for a config's model, from its ``compile.metrics`` and
    ``compile.weighted_metrics`` alone: each made into the metric object ``model.compile``
    makes of it (``keras.metrics.get``; a function wrapped as Keras wraps it), then asked the
    same way. For an older run, whose run.json has no record of them.

    Args:
        config: a validated Config, or a run's config.yaml read as a mapping (a metric that
            cannot be made, in an edited or older config, is passed over).
    """
    import collections

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.trainers import compile_utils

    from nettrain.model.keras_names import METRICS, ResolveError, resolve

    made = []
    # Named as in fit's own process: Keras numbers a second object of a name (io_u_1), so the
    # objects are made with a fresh count, which is put back afterwards.
    uids = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        for spec in _metric_specs(config):
            try:
                identifier = resolve(spec, METRICS, "compile.metrics")
                # the labels only choose among Keras's accuracies, which all go up
                made.append(compile_utils.get_metric(identifier, np.zeros((1, 1)),
                                                     np.zeros((1, 1))))
            except (ResolveError, ValueError, TypeError, KeyError):
                continue
    finally:
        global_state.set_global_attribute("object_name_uids", uids)
    holder = _Compiled([compile_utils.MetricsList(made)] if made else [])
    names = ["loss", *(m.name for m in made)]
    return {name: way for name in dict.fromkeys(names) if (way := _ask(name, holder))}


def of_run(path: Path, config: Any) -> dict[str, str]:
    """The directions of a run: as fit recorded them in its run.json, else (an older run, a
    run.json that cannot be read) what :func:`of_config` makes of ``config``, the run's."""
    from nettrain.run.record import RunRecord

    try:
        recorded = RunRecord(path).read().get("directions")
    except Exception:  # noqa: BLE001  (a damaged run.json: the config still says it)
        recorded = None
    if isinstance(recorded, dict) and all(v in (MAX, MIN) for v in recorded.values()):
        return recorded
    return of_config(config)


def of(name: str, directions: dict[str, str]) -> str | None:
    """The direction of the value ``name`` (``val_pearson_correlation``, ``test_loss``) in
    ``directions`` (what :func:`of_model` or :func:`of_run` gave); None when Keras cannot tell.

    Example: ``of('val_auc', {'loss': 'min', 'auc': 'max'})`` -> ``'max'``.
    """
    if name in directions:
        return directions[name]
    for prefix in SPLITS:
        if name.startswith(prefix) and name[len(prefix):] in directions:
            return directions[name[len(prefix):]]
    return None


def _ask(name: str, model: Any) -> str | None:
    """Keras's own rule (``mode: auto``) for the value ``name`` of ``model``."""
    import keras

    probe = keras.callbacks.EarlyStopping(monitor=name, mode="auto")
    probe.set_model(model)
    try:
        probe._set_monitor_op()
    except ValueError:  # Keras cannot tell which way it improves
        return None
    return MAX if probe.monitor_op is keras.ops.greater else MIN


def _compiled_metrics(model: Any) -> list[Any]:
    """The compiled metric objects of ``model``, as ``_set_monitor_op`` looks them up."""
    from keras.src.trainers import compile_utils

    found = []
    for m in getattr(model, "metrics", []):
        if isinstance(m, (compile_utils.CompileMetrics, compile_utils.MetricsList)):
            found.extend(m.metrics)
    return found


class _Compiled:
    """Stands for a compiled model where only its metrics are asked (:func:`of_config`)."""

    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics


def _metric_specs(config: Any) -> list[Any]:
    """``compile.metrics`` and ``compile.weighted_metrics`` of a Config or a config mapping."""
    compiled = getattr(config, "compile", None)
    if compiled is not None and not isinstance(config, dict):
        return [*compiled.metrics, *compiled.weighted_metrics]
    section = config.get("compile") if isinstance(config, dict) else None
    specs: list[Any] = []
    for key in ("metrics", "weighted_metrics"):
        value = section.get(key) if isinstance(section, dict) else None
        specs += value if isinstance(value, list) else []
    return specs
