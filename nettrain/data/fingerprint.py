"""The data fingerprint: the sha256 of each file a run's data source reads, recorded at
training and checked before evaluate and resume.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nettrain.config.schema import Config
from nettrain.data.sources import image_files, reads_image
from nettrain.errors import DataError


def sha256(path: Path) -> str:
    """The sha256 of one file's bytes (a link: of its target's)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def files_read(value: str) -> dict[str, Path]:
    """The files the loader reads for one data path of a config or of ``--data``, by the name
    the fingerprint shows: the file itself, or for a folder (images), each image that
    :func:`nettrain.data.sources.image_files` lists, as ``FOLDER/CLASS/FILE`` (through a
    class folder that is a link, not its target). Nothing for a path that is neither.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        return {str(Path(value) / file.relative_to(path)): file for file in image_files(path)}
    return {value: path} if path.is_file() else {}  # not a pipe: it could be read for ever


def data_files(config: Config) -> dict[str, str]:
    """sha256 of every data file the config's source reads: ``{'data/train.csv': '9f86...'}``.

    The source file (csv, npz) and the explicit validation and test files count; an image
    folder counts the images the loader reads in it (see :func:`files_read`). A file that
    cannot be read is left out (and so reported missing by :func:`changed_data`).
    """
    found: dict[str, str] = {}
    for value in (config.data.path, config.data.validation, config.data.test):
        if not value:
            continue
        try:
            files = files_read(value)
        except OSError:
            continue
        for name, file in files.items():
            try:
                found[name] = sha256(file)
            except OSError:
                continue
    return found


def summary(path: Path) -> dict[str, Any]:
    """The fingerprint of one data path as ``evaluate --data`` records it: the file (resolved)
    and its sha256; for an image folder, the number of images read and the sha256 of the
    lines ``CLASS/FILE<tab>sha256`` of them (so any added, removed or changed image changes
    it, and nothing else does)."""
    path = path.resolve()
    if path.is_file():
        return {"file": str(path), "sha256": sha256(path)}
    files = files_read(str(path))
    digest = hashlib.sha256()
    for file in files.values():
        digest.update(f"{file.relative_to(path)}\t{sha256(file)}\n".encode())
    return {"file": str(path), "files": len(files), "sha256": digest.hexdigest()}


def changed_data(config: Config, recorded: dict[str, str] | None) -> list[tuple[str, str]]:
    """How the data files differ from the hashes a run recorded (``run.json`` data_sha256).

    Returns ``(file, what)`` pairs, ``what`` one of "sha256 differs", "missing", "added" (a
    file new in an image folder), "link not recorded" (a class folder that is a link, whose
    images a run's record holds none of: nettrain before 2026-12 did not follow it). A run
    without recorded hashes, or with a built-in dataset, has nothing to check. Each file is
    read once. A recorded file that the loader would not read (a README or ``.DS_Store`` of an
    image folder: earlier runs recorded every file of it) is not compared.
    """
    if not isinstance(recorded, dict):
        return []
    now = data_files(config)
    recorded = {file: digest for file, digest in recorded.items()
                if file in now or _readable(config, file)}
    changes = [(file, "missing") for file in recorded if file not in now]
    changes += [(file, "sha256 differs") for file, digest in recorded.items()
                if file in now and now[file] != digest]
    added = [file for file in now if file not in recorded]
    links = _unrecorded_links(config, added, recorded)
    changes += [(link, "link not recorded") for link in links]
    changes += [(file, "added") for file in added
                if not any(Path(file).is_relative_to(link) for link in links)]
    return changes


def _folders(config: Config) -> list[str]:
    """The config's data paths that are image folders."""
    if config.data.source != "images":
        return []
    return [value for value in (config.data.path, config.data.validation, config.data.test)
            if value]


def _readable(config: Config, file: str) -> bool:
    """Whether the loader would read ``file`` (a recorded name) if it were there."""
    for folder in _folders(config):
        if file != folder and Path(file).is_relative_to(folder):
            return reads_image(Path(file).relative_to(folder))
    return True


def _unrecorded_links(config: Config, added: list[str], recorded: dict[str, str]) -> list[str]:
    """The class folders that are links, with images now and none of them recorded."""
    links = []
    for folder in _folders(config):
        for name in {Path(file).relative_to(folder).parts[0] for file in added
                     if Path(file).is_relative_to(folder)}:
            link = str(Path(folder) / name)
            if Path(link).expanduser().is_symlink() and \
                    not any(Path(file).is_relative_to(link) for file in recorded):
                links.append(link)
    return sorted(links)


_CHANGES = {"sha256 differs": "has changed since training (its sha256 differs from the one "
                              "in run.json)",
            "missing": "is missing (training read it)",
            "added": "was added since training (the folder did not hold it)",
            "link not recorded": "is a link to a folder, and this run's record (run.json) holds "
                                 "no sha256 of the {n} images behind it (nettrain hashed no file "
                                 "behind a link before 2026-12), so they cannot be checked "
                                 "against training",
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
    lines = "\n".join(f"  - {file} " + (_CHANGES[what].format(n=_behind(file))
                                        if what == "link not recorded" else _CHANGES[what])
                      for file, what in changes)
    head = ("This run's data cannot be checked against training"
            if all(what in ("unrecorded", "link not recorded") for _, what in changes)
            else "The data changed since this run was trained")
    if not allow:
        raise DataError(f"{head}, so the result could be about other data:\n{lines}\n"
                        "Restore the data as it was, or add --allow-changed-data to use it "
                        "as it is now.")
    echo(f"Warning: {head[0].lower()}{head[1:]} (--allow-changed-data given):\n{lines}")
    return [f"{file}: {what}" for file, what in changes]


def _behind(link: str) -> int:
    """How many images the loader reads through a class folder that is a link."""
    path = Path(link).expanduser()
    return len(image_files(path.parent, [path.name])) if path.is_dir() else 0


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
