"""The run record (``run.json``): what ran, where, on what data, from which commit.

No TensorFlow here; ``versions()`` imports it lazily.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nettrain import __version__
from nettrain.config.schema import Config


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"nettrain": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "python": platform.python_version()}


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


def start(config: Config, data_sha256: dict[str, str]) -> dict[str, Any]:
    """The record of a run that starts now; ``data_sha256`` is its data's fingerprint
    (:func:`nettrain.data.fingerprint.data_files`)."""
    record: dict[str, Any] = {
        "status": "running", "started": now(), "ended": None, "command": sys.argv,
        "host": socket.gethostname(), "versions": versions(), "seed": config.seed,
        "deterministic": config.deterministic, "data_sha256": data_sha256,
        "data_config": config.data.model_dump(mode="json", exclude_none=True)}
    git = git_commit(getattr(config, "_source", None))
    if git:
        record["git"] = git
    return record
