"""The data fingerprint: the sha256 of each file a run's data source reads, recorded at
training and checked before evaluate and resume.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nettrain.config.schema import Config
from nettrain.errors import DataError


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

    A resume cannot change them (see :mod:`nettrain.engine.resume`), so a difference is an edit.
    """
    from nettrain.config.overrides import flatten

    edits = []
    if "seed" in recorded and recorded["seed"] != config.seed:
        edits.append(f"seed is {config.seed}; trained with {recorded['seed']}")
    if isinstance(recorded.get("data_config"), dict):
        was = flatten(recorded["data_config"], ("data",))
        now = flatten(config.data.model_dump(mode="json", exclude_none=True), ("data",))
        edits += [f"{key} is {now.get(key)}; trained with {was.get(key)}"
                  for key in dict.fromkeys([*was, *now]) if was.get(key) != now.get(key)]
    return edits
