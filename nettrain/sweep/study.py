"""A sweep's Optuna study: its storage with heartbeats, its sampler and pruner, the check that
a continued study searches the same config, and how an interrupted trial is drawn again.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any

from nettrain.config.reading import yaml_load
from nettrain.config.schema import Config
from nettrain.errors import UsageError
from nettrain.sweep.spec import SQLITE_TIMEOUT, Sweep, grace_period
from nettrain.text import redacted

if TYPE_CHECKING:
    import optuna


def open_storage(url: str) -> Any:
    """Optuna's RDBStorage on ``url`` (any SQLAlchemy URL), with heartbeats: a running trial
    whose worker wrote none for the grace period (:func:`nettrain.sweep.spec.grace_period`)
    is failed by ``optuna.storages.fail_stale_trials`` and drawn again (:func:`draw_again`).
    A SQLite file waits up to SQLITE_TIMEOUT seconds for another writer. Errors: see
    :func:`nettrain.sweep.storage.open_storage`."""
    import optuna

    from nettrain.sweep import storage as sweep_storage

    grace, interval = grace_period()
    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return sweep_storage.open_storage(
            url, engine, heartbeat_interval=interval, grace_period=grace,
            heartbeat_stale_trial_callback=draw_again)


def _samplers(sweep: Sweep) -> tuple[Any, Any]:
    import optuna

    settings = sweep.config.sweep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings.sampler == "grid":
            sampler = optuna.samplers.GridSampler({p.name: p.grid() for p in sweep.params})
        elif settings.sampler == "random":
            sampler = optuna.samplers.RandomSampler()
        else:  # constant_liar: parallel workers do not all draw next to the same good point
            sampler = optuna.samplers.TPESampler(constant_liar=True)
        pruner = {"none": optuna.pruners.NopPruner(),
                  "median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
                  "hyperband": optuna.pruners.HyperbandPruner(
                      min_resource=1, max_resource=sweep.config.fit.epochs)}[settings.pruner]
    return sampler, pruner


def _identity(config: Config) -> str:
    """The config as a study records it: all of it but the number of trials (which a later
    command may raise)."""
    data = yaml_load(config.to_yaml())
    data.get("sweep", {}).pop("trials", None)
    import yaml

    return yaml.safe_dump(data, sort_keys=True)


def load_study(sweep: Sweep, storage: Any, create: bool) -> optuna.Study:
    """Create the sweep's study, or load it and check that it searches the same config."""
    import optuna

    sampler, pruner = _samplers(sweep)
    try:
        if create:
            study = optuna.create_study(storage=storage, study_name=sweep.study,
                                        direction=sweep.direction, sampler=sampler,
                                        pruner=pruner, load_if_exists=True)
        else:
            study = optuna.load_study(storage=storage, study_name=sweep.study,
                                      sampler=sampler, pruner=pruner)
    except KeyError:
        raise UsageError(f"--study {sweep.study}: no such study in "
                         f"{redacted(sweep.storage)}.") from None
    identity = _identity(sweep.config)
    recorded = study.user_attrs.get("config")
    if recorded is None:
        study.set_user_attr("config", identity)
        study.set_user_attr("metric", sweep.metric)
    elif recorded != identity:
        changed = _differences(yaml_load(recorded), yaml_load(identity))
        raise UsageError(
            f"--study {sweep.study} ({redacted(sweep.storage)}) searches another config: "
            f"{', '.join(changed[:5]) or 'its keys'} differ. Its trials would not be "
            f"comparable. Start a new sweep with --study NEW_NAME (and --run-dir), or run "
            f"the config it was started with.")
    return study


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b])
                for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    return [] if a == b else [path or "the config"]


def draw_again(study: Any, trial: Any) -> None:
    """Queue a new trial with the values of ``trial``, which was interrupted (Ctrl-C, its
    worker gone or silent): every interruption comes here, also as the storage's
    heartbeat-stale callback.

    Optuna's RetryHeartbeatStaleTrialCallback makes the new trial (WAITING; the next worker
    to ask takes it), with its system attributes ``failed_trial`` and ``retry_history`` (the
    trials it repeats) and the grid sampler's point. The values are also its
    ``fixed_params``, as ``study.enqueue_trial`` gives them; its only user attribute is
    ``retry_of``, the trial it repeats (not the interrupted trial's run directory, process
    or note). Values not yet drawn when the trial stopped are drawn anew.
    """
    import optuna

    if not isinstance(trial, optuna.trial.FrozenTrial):
        trial = study._storage.get_trial(trial._trial_id)  # a live Trial: its values so far
    repeated = copy.deepcopy(trial)
    repeated.user_attrs = {"retry_of": trial.number}
    repeated.system_attrs = {**repeated.system_attrs, "fixed_params": dict(trial.params)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, repeated)
