"""The run directory: created once, written atomically, read back by evaluate and predict.

A run directory holds ``config.yaml`` (the resolved config), ``dataset.json`` (input columns,
class names, learned fills), ``split.csv`` (which source rows went to each split),
``run.json`` (status and versions), ``summary.txt``, ``history.csv``, ``metrics.json`` and
the model in each format of ``save.formats`` (written and read by ``nettrain.model.saving``).
``nettrain.run.lock`` keeps a second process out while one trains in it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nettrain.config.load import validate_config
from nettrain.config.reading import read_yaml
from nettrain.config.schema import Config
from nettrain.errors import ConfigError, Problem, RunError, UsageError
from nettrain.run.writing import replacing
from nettrain.text import command

# File names inside a run directory.
CONFIG = "config.yaml"
DATASET = "dataset.json"
SPLIT = "split.csv"  # which rows of the source went to each split (nettrain.data.dataset)
RUN = "run.json"
SUMMARY = "summary.txt"
HISTORY = "history.csv"
METRICS = "metrics.json"
EVALUATION = "evaluation.json"
KERAS_FILE = "model.keras"
JSON_FILE = "model.json"
WEIGHTS_FILE = "model.weights.h5"
SAVED_MODEL = "saved_model"
# Folders an MLflow store keeps among run directories: the artifacts of a SQLite store
# (nettrain's default store puts them in <runs folder>/mlartifacts) and a file store (MLflow
# names it mlruns). They hold copies of runs' files, never a run: `nettrain runs` skips them.
MLFLOW_ARTIFACTS = "mlartifacts"
NOT_RUNS = (MLFLOW_ARTIFACTS, "mlruns")


def now() -> str:
    """The time now, as the run's files write it: UTC to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def runs_root() -> Path:
    """Where run directories go: $NETTRAIN_RUNS, else ./runs."""
    return Path(os.environ.get("NETTRAIN_RUNS", "runs"))


def check_new_dir(path: Path) -> Path:
    """Refuse an explicit run directory that already holds anything (nothing in it is touched)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--run-dir {path}: expected a new or empty directory; it is a file. "
                         "Choose another path.")
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"--run-dir {path}: expected a new or empty directory; it already "
                         "holds files, which are left untouched. Choose another directory.")
    return path


def create_run_dir(config: Config, run_dir: str | Path | None = None) -> Path:
    """Make a new, empty run directory; never reuse one that holds anything.

    Args:
        config: the run's config (its ``name`` names the folder under ``runs/``).
        run_dir: an explicit directory (default: ``runs/<name>/<date>-<time>``). It may exist
            only if it is empty.
    """
    if run_dir is not None:
        path = check_new_dir(Path(run_dir))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--run-dir {path}: cannot create it ({exc.strerror}).") from None
        return path
    parent = runs_root() / config.name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: fails if another run took this name
            return path
        except FileExistsError:
            continue
    raise RunError(f"Could not create a new run directory under {parent}.")


def write_atomic(path: Path, text: str) -> None:
    """Write a text file so that a crash leaves the old file or the new one, never half."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON, atomically (``run.json`` is written by :mod:`nettrain.run.record`
    only, under the run's lock)."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


class Unreadable(ValueError):
    """A file that is there but holds no JSON object; ``what`` says why in a few words, after
    the file's name (``is not valid JSON (line 1, column 24)``)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, for readers that name what is wrong in a few words (the
    run's record, the runs table). Raises FileNotFoundError when it is missing, and
    :class:`Unreadable` when it cannot be read or holds no JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise Unreadable("is not UTF-8 text") from None
    except (OSError, ValueError) as exc:
        raise Unreadable(f"cannot be read ({' '.join(str(exc).split())[:80]})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"is not valid JSON (line {exc.lineno}, column {exc.colno})") \
            from None
    if not isinstance(data, dict):
        raise Unreadable(f"holds a JSON {type(data).__name__}, not an object")
    return data


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object nettrain wrote; a damaged file raises RunError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise damaged(path, f"expected a JSON object; it holds {type(data).__name__} "
                            f"{json.dumps(data)[:60]}")
    return data


# What each file of a run directory is for, and what to do when it is damaged.
_ADVICE = {
    RUN: "It holds the run's status, data hashes and saved formats. Restore it from a copy "
         "of the run directory, or train again with the run's config.yaml.",
    DATASET: "It holds the columns and class names the model was trained with. Restore it "
             "from a copy of the run directory, or train again with the run's config.yaml.",
    CONFIG: "Restore it from a copy of the run directory (or the config you trained with).",
    EVALUATION: "It only holds earlier evaluations: move it aside and evaluate again.",
    METRICS: "It only holds the final metrics of fit: move it aside; "
             "'nettrain evaluate' measures them again.",
}


def damaged(path: Path, why: str, advice: str | None = None) -> RunError:
    """The error for a damaged file of a run directory: which file, what is wrong, what to do.

    Example: ``raise damaged(run / "run.json", "not valid JSON: ...")``.
    """
    advice = advice or _ADVICE.get(path.name, "Restore it from a copy of the run directory, "
                                              "or train again.")
    why = " ".join(why.split())
    why = why if len(why) <= 200 else why[:200].rsplit(" ", 1)[0] + " ..."
    return RunError(f"{path} is damaged ({why}). {advice}")


@dataclass
class Run:
    """A finished run read back from its directory."""

    path: Path
    config: Config
    dataset: dict[str, Any]


def open_run(path: str | Path) -> Run:
    """Read a run directory's config and dataset description (no model yet)."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"RUN: expected a run directory (made by 'nettrain fit'); received "
                         f"'{path}', which {'is not a directory' if path.exists() else 'does not exist'}.")
    if not (path / CONFIG).is_file():
        raise UsageError(f"RUN: '{path}' has no {CONFIG}; expected a run directory made by "
                         "'nettrain fit' (e.g. runs/<name>/<date>-<time>).")
    try:  # a run's config was valid when fit wrote it: now it is a damaged file, not a typo
        data, _ = read_yaml(path / CONFIG)
        config = validate_config(data, source=str(path / CONFIG))
    except (ConfigError, UnicodeDecodeError, RecursionError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [exc]
        why = "; ".join(str(p if isinstance(p, (str, Exception)) else
                            Problem(p.path.replace(str(path / CONFIG), "").lstrip(":") or
                                    "config", p.expected, p.received)) for p in problems[:3])
        # exit 2 like any config error: the file can be read as text and mended by hand
        raise UsageError(str(damaged(path / CONFIG, f"or edited: {why}"))) from None
    if not (path / DATASET).is_file():  # fit writes it before training: the run is damaged
        raise RunError(f"{path / DATASET} is missing: it holds the columns and class names the "
                       "model was trained with. Restore it from a copy of the run directory, "
                       f"or train again: {command('nettrain', 'fit', path / CONFIG)}")
    dataset = read_json(path / DATASET)
    return Run(path, config, dataset)
