"""Resuming a run: which config changes a resume may make, and how far it trains.

No TensorFlow is imported here.

A resumed run must end with the weights an uninterrupted run would have, so its resolved config
must be the run's config except for keys that cannot change the weights computed so far:
how long to train, what to print, what to save, how patient a callback is.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from nettrain.config.fields import _parse_path
from nettrain.config.overrides import flatten
from nettrain.config.schema import Config
from nettrain.errors import ConfigError, Problem, RunError, UsageError
from nettrain.run import directory as rundir
from nettrain.text import command

# Keys (glob patterns over the dotted path, list items as [i]) a resume may change.
SAFE_KEYS = (
    "fit.epochs",
    "fit.verbose",
    "save.formats",
    "fit.callbacks[*].*.patience",
    "fit.callbacks[*].*.min_delta",
    "fit.callbacks[*].*.verbose",
    "fit.callbacks[*].*.cooldown",
    "fit.callbacks[*].*.start_from_epoch",
    "tracking",  # where the run is logged, not how it trains
    "tracking.*",
    "tracking.*.*",
)


def differences(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Every key whose value differs: ``{'fit.epochs': (3, 5)}``; a missing key is None."""
    a = flatten(old.model_dump(mode="json", exclude_none=True))
    b = flatten(new.model_dump(mode="json", exclude_none=True))
    return {key: (a.get(key), b.get(key)) for key in dict.fromkeys([*a, *b])
            if a.get(key) != b.get(key)}


def _pattern(glob: str) -> re.Pattern[str]:
    # '*' stands for one key or one list index; everything else is literal
    return re.compile(re.escape(glob).replace(r"\*", r"[^.\[\]]+") + "$")


_SAFE = [_pattern(glob) for glob in SAFE_KEYS]


def is_safe(key: str) -> bool:
    """Whether a resume may change ``key``: ``fit.callbacks[0].EarlyStopping.patience`` is."""
    return any(pattern.match(key) for pattern in _SAFE)


def check_changes(old: Config, new: Config, run: str) -> dict[str, tuple[Any, Any]]:
    """The allowed changes between a run's config and a resume's; ConfigError for the rest.

    Example: epochs 3 -> 5 is returned as ``{'fit.epochs': (3, 5)}``; a changed layer raises
    ConfigError naming ``model.layers[0].Dense.units``.
    """
    diff = differences(old, new)
    refused = _one_per_value({k: v for k, v in diff.items() if not is_safe(k)}, old, new)
    if refused:
        problems = [Problem(f"{key}", f"the run's value {_show(was)}", _show(now))
                    for key, (was, now) in refused.items()]
        last = problems[-1]
        problems[-1] = Problem(
            last.path, last.expected, last.received,
            f"A resume must train the same model the same way; only these keys may change: "
            f"{', '.join(SAFE_KEYS)}. For anything else start a new run: "
            f"{command('nettrain', 'fit', f'{run}/config.yaml')} KEY=VALUE")
        raise ConfigError(problems, source=f"--resume {run}: the config differs from the run's")
    return diff


def _one_per_value(changes: dict[str, tuple[Any, Any]], old: Config,
                   new: Config) -> dict[str, tuple[Any, Any]]:
    """One change per value the user changed: where a key's value became a mapping or stopped
    being one (``adam`` -> ``{Adam: {learning_rate: 0.1}}``), the keys below it are not
    changes of their own but that one change, shown at that key with both whole values."""
    def under(key: str, top: str) -> bool:
        return key != top and key.startswith((f"{top}.", f"{top}["))

    def at(data: Any, key: str) -> Any:
        for part in _parse_path(key):
            if isinstance(data, dict) and isinstance(part, str) or \
                    isinstance(data, list) and isinstance(part, int) and part < len(data):
                data = data.get(part) if isinstance(data, dict) else data[part]
            else:
                return None
        return data

    tops = {k for k in changes if any(under(o, k) for o in changes)}
    dumps = [c.model_dump(mode="json", exclude_none=True) for c in (old, new)]
    return {k: (at(dumps[0], k), at(dumps[1], k)) if k in tops else v
            for k, v in changes.items() if not any(under(k, t) for t in tops)}


def check_epochs(new: Config, done: int, run: str) -> None:
    """Refuse a resume whose ``fit.epochs`` is below the epochs the run has done: a resume
    continues a run, it cannot undo epochs (the run's record would say 36 of 25).

    Example: ``check_epochs(config_with_epochs_25, 36, "runs/x/1")`` raises ConfigError
    naming ``fit.epochs``: expected at least 36, received 25.
    """
    if new.fit.epochs >= done:
        return
    raise ConfigError(Problem(
        "fit.epochs", f"at least {done} (the epochs this run has done)", str(new.fit.epochs),
        f"A resume continues the run after epoch {done}; leave fit.epochs out to keep the "
        f"run's, or raise it to train longer (fit.epochs={done + 10}). For a shorter run start "
        f"a new one: {command('nettrain', 'fit', f'{run}/config.yaml')} "
        f"fit.epochs={new.fit.epochs}"),
        source=f"--resume {run}")


def _show(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def last_checkpoint(path: Path) -> Path | None:
    """The checkpoint a resume of the run ``path`` continues from; None when the run has
    none (no epoch completed): a resume then starts it again from the beginning."""
    from nettrain.run import checkpoints

    last = path / checkpoints.FOLDER / checkpoints.LAST
    return last if last.is_file() else None


def read_checkpoint(path: Path, last: Path) -> Any:
    from nettrain.run import checkpoints

    try:
        return checkpoints.read_state(last)
    except checkpoints.Damaged as exc:
        raise RunError(damaged_advice(path, exc)) from None


def damaged_advice(path: Path, exc: Any) -> str:
    """What to do about a damaged last.keras: resume from best.keras when it is whole."""
    from nettrain.run import checkpoints

    best = path / checkpoints.FOLDER / checkpoints.BEST
    try:
        best_epoch = checkpoints.read_state(best).epoch if best.is_file() else None
    except checkpoints.Damaged:
        best_epoch = None
    again = f"start the run again as a new run: {command('nettrain', 'fit', path / rundir.CONFIG)}"
    if best_epoch is None or best.read_bytes() == exc.path.read_bytes():
        return f"{exc}. It cannot be resumed from; {again}"
    return (f"{exc}. The checkpoint of the best epoch ({best_epoch}) is whole: resume from it "
            f"(the epochs after it are trained again) with: cp {best} {exc.path} && "
            f"{command('nettrain', 'fit', '--resume', path)}\nOr {again}")


def epochs_to_train(path: Path, old: Config, new: Config, state: Any, status: str | None,
                     changes: dict[str, Any]) -> int:
    """The epoch a resume trains to: ``new.fit.epochs``, or the epochs done when the run's
    training ended (all epochs done, or a callback stopped it and no callback's patience,
    min_delta or start_from_epoch changed). UsageError when the run is completed and there
    is nothing to train."""
    if state is None:
        return new.fit.epochs
    decided = any(key.startswith("fit.callbacks") and
                  key.endswith((".patience", ".min_delta", ".start_from_epoch"))
                  for key in changes)
    if state.stopped and not decided:
        epochs = state.epoch
    else:
        epochs = max(new.fit.epochs, state.epoch)
    if epochs > state.epoch or status != "completed":
        return epochs
    if not state.stopped:
        raise UsageError(f"--resume {path}: the run has completed {state.epoch} of "
                         f"{new.fit.epochs} epochs (status completed); it is finished and "
                         "nothing is left to train. To train longer: nettrain fit --resume "
                         f"{path} fit.epochs={state.epoch + 10}")
    index, name, patience = _stopper(old, state)
    who = f"callback {name} (fit.callbacks.{index})" if name else "a callback"
    advice = (f"{command('nettrain', 'fit', '--resume', path)} "
              f"fit.callbacks.{index}.{name}.patience="
              f"{patience + 10}" if name else "change one of its fit.callbacks")
    raise UsageError(f"--resume {path}: the run stopped early after epoch {state.epoch} of "
                     f"{old.fit.epochs} ({who} stopped it; status completed), so it is "
                     "finished. Raising fit.epochs alone would stop it again at once. To train "
                     f"on, give the callback a new patience: {advice}")


def _stopper(config: Config, state: Any) -> tuple[int, str | None, int]:
    """The callback that stopped a run: its index in fit.callbacks, name and patience."""
    from nettrain.config.fields import spec_kwargs, spec_name
    from nettrain.run.checkpoints import stopper

    index = stopper(state)
    if index is not None and index < len(config.fit.callbacks):
        spec = config.fit.callbacks[index]
        return index, spec_name(spec), int(spec_kwargs(spec).get("patience", 0))
    return 0, None, 0


def remove_leftovers(path: Path) -> None:
    """Temporary files a killed process left (never read: only whole files are renamed in)."""
    from nettrain.run import checkpoints

    for leftover in [*path.glob(".saving-*"), *path.glob(".*.tmp"), *path.glob(".*.old-*"),
                     *(path / checkpoints.FOLDER).glob(".*.keras")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
