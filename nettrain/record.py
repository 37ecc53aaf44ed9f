"""The run record (``run.json``): what ran, where, on what data, from which commit.

No TensorFlow here; ``versions()`` imports it lazily.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nettrain import __version__
from nettrain.config import Config
from nettrain.errors import DataError


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"nettrain": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "python": platform.python_version()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(config: Config) -> dict[str, str]:
    """sha256 of every data file the config names: ``{'data/train.csv': '9f86...'}``.

    The source file (csv, npz) and the explicit validation and test files count; a folder
    (images) counts each file in it.
    """
    found: dict[str, str] = {}
    for value in (config.data.path, config.data.validation, config.data.test):
        if not value:
            continue
        path = Path(value).expanduser()
        try:
            if path.is_file():
                found[value] = sha256(path)
            elif path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    found[str(Path(value) / file.relative_to(path))] = sha256(file)
        except OSError:
            continue
    return found


def changed_data(config: Config, recorded: dict[str, str] | None) -> list[tuple[str, str]]:
    """How the data files differ from the hashes a run recorded (``run.json`` data_sha256).

    Returns ``(file, what)`` pairs, ``what`` one of "sha256 differs", "missing", "added" (a
    file new in an image folder). A run without recorded hashes, or with a built-in dataset,
    has nothing to check. Each file is read once.
    """
    if not isinstance(recorded, dict):
        return []
    now = data_files(config)
    changes = [(file, "missing") for file in recorded if file not in now]
    changes += [(file, "sha256 differs") for file, digest in recorded.items()
                if file in now and now[file] != digest]
    changes += [(file, "added") for file in now if file not in recorded]
    return changes


_CHANGES = {"sha256 differs": "has changed since training (its sha256 differs from the one "
                              "in run.json)",
            "missing": "is missing (training read it)",
            "added": "was added since training (the folder did not hold it)",
            "unrecorded": "holds no data_sha256 (or is missing), so the data cannot be checked "
                          "against training"}


def check_data(config: Config, recorded: dict[str, str] | None, allow: bool,
               echo: Any, where: str = "run.json") -> list[str]:
    """Refuse data files that changed since a run was trained, unless ``allow``.

    Args:
        config: the run's config (its data paths).
        recorded: ``run.json``'s ``data_sha256`` (None: no record, so nothing can be checked).
        allow: go on anyway (``--allow-changed-data``): print a warning instead.
        echo: where the warning goes.
        where: the run.json path, for the message when it holds no hashes.

    Returns what changed, as ``"FILE: what"`` lines to record beside the result.
    Raises DataError naming each changed file.
    """
    if not isinstance(recorded, dict) and config.data.path:  # no record: run.json missing
        changes = [(where, "unrecorded")]
    else:
        changes = changed_data(config, recorded)
    if not changes:
        return []
    lines = "\n".join(f"  - {file} {_CHANGES[what]}" for file, what in changes)
    head = ("This run's data cannot be checked against training" if changes[0][1] == "unrecorded"
            else "The data changed since this run was trained")
    if not allow:
        raise DataError(f"{head}, so the result could be about other data:\n{lines}\n"
                        "Restore the data as it was, or add --allow-changed-data to use it "
                        "as it is now.")
    echo(f"Warning: {head[0].lower()}{head[1:]} (--allow-changed-data given):\n{lines}")
    return [f"{file}: {what}" for file, what in changes]


def edited_data_config(config: Config, recorded: dict[str, Any]) -> list[str]:
    """Keys of the run's config that choose its rows (``data:``, ``seed``) and differ from
    what ``run.json`` recorded in training: ``["data.test_split is 0.5; trained with 0.2"]``.

    A resume cannot change them (see :mod:`nettrain.resume`), so a difference is an edit.
    """
    from nettrain.resume import flatten

    edits = []
    if "seed" in recorded and recorded["seed"] != config.seed:
        edits.append(f"seed is {config.seed}; trained with {recorded['seed']}")
    if isinstance(recorded.get("data_config"), dict):
        was = flatten(recorded["data_config"], ("data",))
        now = flatten(config.data.model_dump(mode="json", exclude_none=True), ("data",))
        edits += [f"{key} is {now.get(key)}; trained with {was.get(key)}"
                  for key in dict.fromkeys([*was, *now]) if was.get(key) != now.get(key)]
    return edits


def git_commit(config_path: str | None) -> dict[str, Any] | None:
    """The commit of the git repository that holds the config file, and whether it is dirty."""
    if not config_path or not Path(config_path).is_file():
        return None
    folder = Path(config_path).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    changed = git("status", "--porcelain", "--", str(Path(config_path).resolve()))
    return {"commit": commit, "config_changed": bool(changed)}


def start(config: Config) -> dict[str, Any]:
    """The record of a run that starts now."""
    record: dict[str, Any] = {
        "status": "running", "started": now(), "ended": None, "command": sys.argv,
        "host": socket.gethostname(), "versions": versions(), "seed": config.seed,
        "deterministic": config.deterministic, "data_sha256": data_files(config),
        "data_config": config.data.model_dump(mode="json", exclude_none=True)}
    git = git_commit(getattr(config, "_source", None))
    if git:
        record["git"] = git
    return record
