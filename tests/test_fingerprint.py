"""The data fingerprint covers exactly the files the loader reads: an image folder's images as
Keras reads them (a class folder that is a link included), not the other files beside them;
fit, evaluate, evaluate --data and resume all use it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nettrain.cli import app

from conftest import tiny_config, write_config
from test_data import _images


def _config(folder: Path) -> dict:
    return {"name": "cnn", "seed": 0,
            "data": {"images": str(folder), "image_size": [8, 8], "scale": 255},
            "model": {"layers": ["Flatten", {"Dense": {"units": 2, "activation": "softmax"}}]},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": 1, "verbose": 0}}


def _fit(runner, tmp_path: Path, folder: Path) -> Path:
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", _config(folder))),
                                 "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def _linked(tmp_path: Path) -> Path:
    """photos/cat (3 images) and photos/dog, a link to the folder elsewhere/dog (3 images)."""
    _images(tmp_path / "photos", per_class=3)
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "photos" / "dog", tmp_path / "elsewhere" / "dog")
    (tmp_path / "photos" / "dog").symlink_to(tmp_path / "elsewhere" / "dog",
                                             target_is_directory=True)
    return tmp_path / "photos"


def _litter(folder: Path) -> None:
    """What a file manager or a person leaves in a folder of images."""
    for place in (folder, folder / "cat"):
        (place / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (place / "README.txt").write_text("photos from the garden\n")


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_files_that_are_not_images_added_to_the_folder_are_not_data(runner, tmp_path, command):
    _images(tmp_path / "photos", per_class=3)
    run = _fit(runner, tmp_path, tmp_path / "photos")
    _litter(tmp_path / "photos")
    args = ["evaluate", str(run)] if command == "evaluate" else \
        ["fit", "--resume", str(run), "fit.epochs=2", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == ""


def test_a_class_folder_that_is_a_link_is_fingerprinted(runner, tmp_path):
    photos = _linked(tmp_path)
    run = _fit(runner, tmp_path, photos)
    recorded = json.loads((run / "run.json").read_text())["data_sha256"]
    samples = json.loads((run / "dataset.json").read_text())["samples"]
    assert len(recorded) == sum(samples.values()) == 6
    assert str(photos / "dog" / "1.png") in recorded
    shutil.copy(tmp_path / "elsewhere" / "dog" / "0.png", tmp_path / "elsewhere" / "dog" / "1.png")
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == (
        "Error: The data changed since this run was trained, so the result could be about "
        "other data:\n"
        f"  - {photos / 'dog' / '1.png'} has changed since training (its sha256 differs from "
        "the one in run.json)\n"
        "Restore the data as it was, or add --allow-changed-data to use it as it is now.\n")


def test_evaluate_data_fingerprints_the_images_it_reads(runner, tmp_path):
    _images(tmp_path / "photos", per_class=3)
    run = _fit(runner, tmp_path, tmp_path / "photos")
    shutil.copytree(tmp_path / "photos", tmp_path / "plain")
    litter = _linked(tmp_path / "new")  # the same images, one class folder behind a link
    _litter(litter)
    records = []
    for folder in ("plain", "new/photos"):
        result = runner.invoke(app, ["evaluate", str(run), "--data", folder, "--json"])
        assert result.exit_code == 0, result.output
        records.append(json.loads(result.stdout)["data"])
    assert records[1]["files"] == records[0]["files"] == 6
    assert records[1]["sha256"] == records[0]["sha256"]


def test_an_old_record_of_files_that_are_not_images_is_ignored(runner, tmp_path):
    """Runs before this fingerprint recorded every file of the folder; a file that is not an
    image and is gone since does not stop them."""
    _images(tmp_path / "photos", per_class=3)
    run = _fit(runner, tmp_path, tmp_path / "photos")
    record = json.loads((run / "run.json").read_text())
    for name in (".DS_Store", "cat/README.txt", "notes.png"):  # notes.png: beside the classes
        record["data_sha256"][str(tmp_path / "photos" / name)] = "0" * 64
    (run / "run.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_an_old_record_that_did_not_follow_a_linked_class_folder_says_so(runner, tmp_path):
    """Runs before this fingerprint hashed no image behind a link: those cannot be checked."""
    photos = _linked(tmp_path)
    run = _fit(runner, tmp_path, photos)
    record = json.loads((run / "run.json").read_text())
    record["data_sha256"] = {k: v for k, v in record["data_sha256"].items()
                             if "/dog/" not in k}
    (run / "run.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: This run's data cannot be checked against training, so the result could be "
        "about other data:\n"
        f"  - {photos / 'dog'} is a link to a folder, and this run's record (run.json) holds no "
        "sha256 of the 3 images behind it (nettrain hashed no file behind a link before "
        "2026-12), so they cannot be checked against training\n"
        "Restore the data as it was, or add --allow-changed-data to use it as it is now.\n")
    result = runner.invoke(app, ["evaluate", str(run), "--allow-changed-data"])
    assert result.exit_code == 0, result.output
    entry = json.loads((run / "evaluation.json").read_text())["train"]
    assert entry["data_changed"] == [f"{photos / 'dog'}: link not recorded"]


def test_the_fingerprint_lists_the_files_keras_reads_in_a_tangled_folder(runner, tmp_path):
    """A dot-folder is no class; a class's sub-folder is read, a link to a folder inside a
    class is not, a link to a file is; any case of suffix. Fit refuses a Keras that reads
    other files than the fingerprint lists, so a fit that passes proves them the same."""
    _images(tmp_path / "photos", per_class=3)
    photos = tmp_path / "photos"
    shutil.copytree(photos / "cat", photos / ".ipynb_checkpoints")
    (photos / "cat" / "more").mkdir()
    shutil.copy(photos / "cat" / "0.png", photos / "cat" / "more" / "9.PNG")
    shutil.copytree(photos / "dog", tmp_path / "aside")
    (photos / "cat" / "aside").symlink_to(tmp_path / "aside", target_is_directory=True)
    (photos / "dog" / "7.png").symlink_to(tmp_path / "aside" / "0.png")
    run = _fit(runner, tmp_path, photos)
    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["classes"] == ["cat", "dog"] and dataset["samples"] == {"train": 8}
    recorded = json.loads((run / "run.json").read_text())["data_sha256"]
    assert sorted(Path(f).relative_to(photos).as_posix() for f in recorded) == [
        "cat/0.png", "cat/1.png", "cat/2.png", "cat/more/9.PNG",
        "dog/0.png", "dog/1.png", "dog/2.png", "dog/7.png"]


# ---------------------------------------------------------------- the owner, without a fit
# Each function of nettrain.data.fingerprint on tiny files (no model: the files need only be
# named as data; an image folder's "images" are a few bytes each).


def _owned(**data):
    from nettrain.config.schema import Config

    return Config.model_validate(tiny_config(data=data))


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(folder: Path):
    """A csv config with its own validation and test files."""
    for name in ("train", "validation", "test"):
        (folder / f"{name}.csv").write_text(f"a,y\n1,{name}\n")
    return _owned(csv=str(folder / "train.csv"), target="y",
                  validation=str(folder / "validation.csv"), test=str(folder / "test.csv"))


def _pictures(folder: Path) -> Path:
    """photos/cat/0.png, 1.png and photos/dog/0.png: a few bytes each."""
    for file, content in (("cat/0.png", b"a"), ("cat/1.png", b"b"), ("dog/0.png", b"c")):
        (folder / "photos" / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / "photos" / file).write_bytes(content)
    return folder / "photos"


def test_the_source_validation_and_test_files_are_hashed_by_their_bytes(tmp_path):
    from nettrain.data.fingerprint import data_files

    config = _tables(tmp_path)
    assert data_files(config) == {str(tmp_path / f"{name}.csv"): _digest(tmp_path / f"{name}.csv")
                                  for name in ("train", "validation", "test")}


def test_each_change_since_training_is_named(tmp_path):
    from nettrain.data.fingerprint import changed_data, data_files

    config = _tables(tmp_path)
    recorded = data_files(config)
    assert changed_data(config, recorded) == []
    (tmp_path / "validation.csv").unlink()
    (tmp_path / "test.csv").write_text("a,y\n2,test\n")
    assert changed_data(config, recorded) == [(str(tmp_path / "validation.csv"), "missing"),
                                              (str(tmp_path / "test.csv"), "sha256 differs")]
    photos = _pictures(tmp_path)
    config = _owned(images=str(photos))
    recorded = data_files(config)
    (photos / "dog" / "1.png").write_bytes(b"d")
    assert changed_data(config, recorded) == [(str(photos / "dog" / "1.png"), "added")]


def test_the_summary_of_a_folder_is_its_images_names_and_bytes(tmp_path, monkeypatch):
    """evaluate --data: the sha256 of the lines CLASS/FILE<tab>sha256, in the loader's order;
    an image moved to another class (another label) or changed changes it."""
    import hashlib

    from nettrain.data.fingerprint import summary

    photos = _pictures(tmp_path)
    lines = "".join(f"{name}\t{_digest(photos / name)}\n"
                    for name in ("cat/0.png", "cat/1.png", "dog/0.png"))
    first = summary(photos)
    assert first == {"file": str(photos), "files": 3,
                     "sha256": hashlib.sha256(lines.encode()).hexdigest()}
    (photos / "cat" / "1.png").rename(photos / "dog" / "1.png")  # relabelled, same bytes
    moved = summary(photos)
    (photos / "dog" / "1.png").write_bytes(b"e")  # same names, other bytes
    assert len({first["sha256"], moved["sha256"], summary(photos)["sha256"]}) == 3
    (tmp_path / "rows.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)  # a file given relative to where nettrain runs: resolved
    assert summary(Path("rows.csv")) == {"file": str(tmp_path / "rows.csv"),
                                         "sha256": _digest(tmp_path / "rows.csv")}


def test_a_run_without_a_record_cannot_be_checked_unless_allowed(tmp_path):
    from nettrain.data.fingerprint import check_data
    from nettrain.errors import DataError

    config = _tables(tmp_path)
    with pytest.raises(DataError, match=r"^This run's data cannot be checked against "
                                        r"training.*\n  - RUN/run.json holds no data_sha256"):
        check_data(config, None, False, print, "RUN/run.json")
    warned: list[str] = []
    assert check_data(config, None, True, warned.append, "RUN/run.json") == [
        "RUN/run.json: unrecorded"]
    assert warned[0].startswith("Warning: this run's data cannot be checked against training "
                                "(--allow-changed-data given):")


def test_an_edit_of_the_seed_or_of_a_data_key_is_named(tmp_path):
    from nettrain.data.fingerprint import edited_data_config

    config = _tables(tmp_path)
    recorded = {"seed": config.seed,
                "data_config": config.data.model_dump(mode="json", exclude_none=True)}
    assert edited_data_config(config, recorded) == []
    edited = config.model_copy(update={"seed": 7, "data": config.data.model_copy(
        update={"test_split": 0.5, "features": ["a"]})})
    assert edited_data_config(edited, recorded) == [
        f"seed is 7; trained with {config.seed}", "data.test_split is 0.5; trained with 0.0",
        "data.features is ['a']; trained with None"]
