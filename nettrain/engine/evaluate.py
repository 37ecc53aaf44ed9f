"""Evaluation: a run directory (or a saved model) + a split or a labelled file -> metrics and
per-class or regression reports, recorded in ``evaluation.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.config.schema import Config
from nettrain.data import fingerprint
from nettrain.data.dataset import Data
from nettrain.data.loading import load_data
from nettrain.engine import reports
from nettrain.engine.arrays import CHUNK_ROWS
from nettrain.engine.train import _evaluate
from nettrain.errors import DataError, UsageError
from nettrain.model import saving
from nettrain.model.builder import resolve_compiled
from nettrain.run import directory as rundir
from nettrain.run.record import RunRecord
from nettrain.run.record import now as _now
from nettrain.text import command


@dataclass
class Evaluation:
    """One evaluation of a run's model: what was measured, the numbers, the files written."""

    split: str                  # test, validation, train, or "data:<file>" for --data
    metrics: dict[str, float]   # the model's compiled loss and metrics
    format: str                 # the saved format that was loaded
    report: dict[str, Any]      # per-class or regression report (see nettrain.engine.reports)
    files: list[Path]           # the pictures written (none when drawing failed)
    data: dict[str, Any] | None = None  # --data: the file and its sha256
    unrecorded: str | None = None  # why evaluation.json could not be written (None: it was)

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "format": self.format, "metrics": self.metrics,
                "report": self.report, "files": [str(f) for f in self.files],
                **({"data": self.data} if self.data else {})}


def evaluate(run_path: str | Path, split: str | None = None, fmt: str | None = None,
             allow_changed_data: bool = False, echo: Any = print,
             data_path: str | Path | None = None) -> Evaluation:
    """Reload a run's model and data and evaluate one split; record it in the run directory.

    Args:
        run_path: a run directory made by ``fit``.
        split: test, validation or train (default: test if the run has one, else validation,
            else train).
        fmt: the saved format to load (default: the first of keras, json; a SavedModel only
            when named).
        allow_changed_data: evaluate data files whose sha256 differs from the run's record
            (default: refuse them); the evaluation records what changed.
        echo: where warnings and notes go (default ``print``).
        data_path: new labelled data instead of a split of the run's own (a CSV, an .npz, an
            image folder; see :func:`nettrain.data.loading.load_labelled`). Not checked against the
            run's data hashes: its file and sha256 are recorded instead.

    Returns an :class:`Evaluation`: the metrics, the per-class or regression report
    (:mod:`nettrain.engine.reports`) and its picture (``confusion_matrix-<split>.png`` or
    ``regression-<split>.png``; ``-data-<file stem>`` for ``data_path``) in the run directory.
    A run directory that cannot be written (read-only) still gets its numbers: the
    Evaluation says why they were not recorded (``unrecorded``). The result is always about
    the run's own data (or says that it is not) and names the model it measured: a run that did not complete is evaluated with the model of its last
    save, and the record says so.
    """
    run = rundir.open_run(run_path)
    status = RunRecord(run.path).read()
    earlier = rundir.read_json(run.path / rundir.EVALUATION) if \
        (run.path / rundir.EVALUATION).is_file() else {}  # a damaged one fails before the work
    model, used = saving.load_model(run.path, fmt, run.dataset)
    changed: list[str] = []
    source: dict[str, Any] | None = None
    if data_path is not None:
        from nettrain.data.loading import load_labelled

        data = load_labelled(data_path, run.config, run.dataset)
        source = fingerprint.summary(Path(data_path))
        split, label = "test", f"data-{Path(data_path).stem}"
        name = f"data:{source['file']}"
    else:
        changed = fingerprint.check_data(run.config, status.get("data_sha256"), allow_changed_data,
                                    echo, str(run.path / rundir.RUN))
        edits = fingerprint.edited_data_config(run.config, status)
        if edits:
            raise DataError(f"{run.path / rundir.CONFIG} was edited after training: "
                            f"{'; '.join(edits)} (run.json). Its numbers would be about other "
                            "rows; restore the value in config.yaml.")
        data = load_data(run.config, run.dataset)  # read by the run's recorded rule
        if split is None:
            split = next(s for s in ("test", "validation", "train") if s in data.splits)
        if split not in data.splits:
            raise UsageError(f"--split {split}: this run has no {split} part; it has "
                             f"{', '.join(data.splits)}. Set data.{split}_split before "
                             "training to hold one out.")
        _check_dataset(run, data)
        label = name = split
    # Which model: run.json's epochs and save time change with every save (a resume).
    model_id = {"epochs": status.get("epochs_completed"), "saved": status.get("ended")}
    note = _which_model(status, run.config, run.path)
    if note:
        echo(note)
    model.compile(**resolve_compiled(run.config).kwargs(run.config, data.size(split)))
    where = f"--data {data_path}" if data_path is not None else split
    try:
        metrics = _evaluate(model, data, split, run.config)
        result, true, pred = reports.report(model, _parts(data, split),
                                            run.config.is_classifier, run.dataset,
                                            _threshold(run.config))
        if run.dataset.get("timeseries"):  # the baseline on the same rows
            result["naive_last_value"] = reports.naive(_parts(data, split), run.dataset)
    except Exception as exc:
        raise DataError(f"Evaluating {where} failed: {' '.join(str(exc).split())[:500]}") \
            from None
    files = []
    title = f"{run.config.name}: " + (f"{Path(data_path).name}" if data_path is not None
                                      else f"{split} split")
    try:
        files.append(reports.draw(result, true, pred, run.path, label, title))
    except OSError as exc:  # the numbers stand without their picture
        picture = run.path / reports.png_names(label)[result["kind"]]
        echo(f"Warning: the {result['kind']} picture was not drawn ({picture}: "
             f"{exc.strerror or exc}).")
    except Exception as exc:
        echo(f"Warning: the {result['kind']} picture was not drawn ({type(exc).__name__}: "
             f"{' '.join(str(exc).split())[:200]}).")
    # Numbers about an earlier model (before a resume saved again) are kept apart, never
    # beside the new ones.
    splits = {k: v for k, v in earlier.items() if k != "earlier" and isinstance(v, dict)}
    current = {k: v for k, v in splits.items()
               if {key: v.get(key) for key in model_id} == model_id}
    older = [*(earlier.get("earlier") if isinstance(earlier.get("earlier"), list) else []),
             *({"split": k, **v} for k, v in splits.items() if k not in current)]
    entry: dict[str, Any] = {"metrics": metrics, "format": used, "evaluated": _now(),
                             "status": status.get("status"), **model_id, "report": result,
                             "plots": [f.name for f in files]}
    if source:
        entry["data"] = source
    if changed:
        entry["data_changed"] = changed
    try:  # the work is done: a run directory that cannot be written still gets its numbers
        rundir.write_json(run.path / rundir.EVALUATION,
                          {**current, name: entry, **({"earlier": older} if older else {})})
    except OSError as exc:
        return Evaluation(name, metrics, used, result, files, source,
                          unrecorded=f"{run.path / rundir.EVALUATION} could not be written "
                                     f"({exc.strerror or exc})")
    return Evaluation(name, metrics, used, result, files, source)


def _parts(data: Data, split: str, rows: int = CHUNK_ROWS) -> Any:
    """(x, y) of one split, ``rows`` at a time: a streamed file chunk by chunk as read (one
    chunk in memory), arrays in slices. Numpy, not a tf.data pass: iterating one from Python
    grew the process's memory with the batches (issue 26)."""
    from nettrain.data.dataset import take

    if data.stream:
        yield from ((x, y) for x, y, _ in data.stream.arrays(split))
        return
    x, y = data.x[split], data.y[split]
    for start in range(0, len(y), rows):
        index = np.arange(start, min(start + rows, len(y)))
        yield take(x, index), y[index]


def _threshold(config: Config) -> float:
    """Where one output unit's score turns to class 1: 0.5 for a probability (sigmoid), 0 for
    logits (``from_logits``) and hinge losses (scores around 0)."""
    from nettrain.config.fields import spec_kwargs, spec_name

    loss = config.compile.loss
    logits = bool(spec_kwargs(loss).get("from_logits"))
    return 0.0 if logits or "hinge" in str(spec_name(loss)).lower() else 0.5


def _which_model(status: dict[str, Any], config: Config, path: Path) -> str | None:
    """A note on which model a run that did not complete holds (None for a completed run).

    An interrupted run saved the model of its last completed epoch. A failed or killed run
    saved nothing since its last save (a run resumed after completing): that older model is
    what is on disk.
    """
    state, epochs = status.get("status"), status.get("epochs_completed")
    if state in (None, "completed"):
        return None
    if state == "interrupted" and isinstance(epochs, int):
        return (f"Note: this run was interrupted: evaluating the model of epoch {epochs} of "
                f"{config.fit.epochs}, its last completed epoch.")
    which = ("the model of its last save, from before it was resumed; its later epochs are "
             "only in its checkpoint" if status.get("resumed") else
             "the model files it left, though it did not finish its save")
    return (f"Note: this run's status is {state} (run.json): evaluating {which}. To finish the "
            f"run: {command('nettrain', 'fit', '--resume', path)}")


def _check_dataset(run: rundir.Run, data: Data) -> None:
    """Refuse data that loads with other columns or classes than the model was trained on."""
    import json

    if not run.dataset:
        return
    now = json.loads(json.dumps({**data.describe(), "classifier": run.config.is_classifier}))
    differ = [key for key in run.dataset if key != "samples" and now.get(key) != run.dataset[key]]
    if differ:
        key = differ[0]
        raise DataError(f"{run.path / rundir.DATASET} does not match the run's data as it loads "
                        f"now ({', '.join(differ)} differ): {key} {run.dataset.get(key)!r} "
                        f"in {rundir.DATASET}, {now.get(key)!r} now. The model would be scored "
                        "against other labels or columns; restore the run's dataset.json or "
                        "data, or train again.")
