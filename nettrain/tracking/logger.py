"""Logging one run to MLflow: :class:`RunLogger` opens the MLflow run when the run directory
exists, sends the epochs' metrics every few seconds as they come, and uploads the rest when
training ends (or later, with ``nettrain track``).

What an MLflow run of nettrain holds: the resolved config as params (the dotted keys of
overrides, ``model.layers.0.Dense.units``); each ``history.csv`` column as a metric
``epoch/<column>`` with step = the epoch (0, 1, ...); ``final/<split metric>`` for
``metrics.json`` (``final/val_loss``, ``final/test_accuracy``, the names ``nettrain runs``
shows); the run directory's files as artifacts (not the model files or checkpoints); and the
model, linked to the run, with its signature and an input example (a model of named columns
takes raw rows: :mod:`nettrain.tracking.pyfunc`; any other is in MLflow's Keras flavour). The
MLflow run id is recorded in ``run.json`` under ``mlflow`` (through
:class:`nettrain.run.record.RunRecord`), so a resume continues the same MLflow run and
``nettrain track`` knows what was uploaded. The MLflow run ends FINISHED, FAILED or KILLED as
the run did; a failed upload ends it FAILED (``nettrain track`` opens it again).

A store that cannot be reached never fails a run: the first failure is one warning, nothing
more is sent, and ``run.json`` says the run is not uploaded (``nettrain track RUN --uri URI``
does it).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from nettrain.config.overrides import flatten
from nettrain.config.schema import Config
from nettrain.errors import RunError
from nettrain.run import directory as rundir
from nettrain.run import history
from nettrain.run.record import RunRecord
from nettrain.text import HIDDEN, command, redacted
from nettrain.tracking import store
from nettrain.tracking.store import Where, one_line

RECORD = "mlflow"  # run.json's key
MODEL = "model"  # the logged model's name in the MLflow run
# Files of the run directory not logged as artifacts: the model (logged as a model) and
# partial or lock files.
_NOT_ARTIFACTS = {rundir.KERAS_FILE, rundir.JSON_FILE, rundir.WEIGHTS_FILE}
# The epochs' metrics go to the store together at most this often (and when the run ends).
FLUSH_SECONDS = 5.0
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED",
          "running": "RUNNING"}


def params(config: Config) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys as overrides write them
    (``model.layers.0.Dense.units``), values as YAML-ish text (lists as JSON), URIs without
    their secrets (as config.yaml has them)."""
    flat = flatten(redacted(config.model_dump(mode="json", exclude_none=True)))
    out = {}
    for key, value in flat.items():
        key = re.sub(r"\[(\d+)\]", r".\1", key)  # model.layers[0] -> model.layers.0
        key = re.sub(r"[^\w.\- /:]", "_", key)  # MLflow's allowed characters
        text = value if isinstance(value, str) else json.dumps(value)
        out[key] = text[:6000]
    return out


class RunLogger:
    """The MLflow run of one nettrain run.

    Args:
        config: the run's config (its ``tracking:`` section, or the defaults).
        uri: a store that replaces the config's (``--track URI``).
        echo: where the one warning goes.
        parent: the MLflow run id of a sweep's parent run (a trial's run is its child).
        tags: more tags for the MLflow run (a trial's number).

    Example (what ``nettrain fit`` does)::

        logger = RunLogger(config)
        path = train.fit(config, extra_callbacks=(logger.callback(),), started=logger.started)
        logger.finish(path)
    """

    def __init__(self, config: Config, uri: str | None = None, echo: Any = print,
                 parent: str | None = None, tags: dict[str, str] | None = None) -> None:
        self.config, self.echo, self.parent = config, echo, parent
        self.place: Where = store.where(config, uri)
        self.tags = dict(tags or {})
        self.client: Any = None
        self.run_id: str | None = None
        self.path: Path | None = None
        self.example: Any = None
        self.broken: str | None = None  # the first failure; nothing is sent after it
        self.pending: list[Any] = []  # the epochs' metrics not sent yet
        self.sent = time.monotonic()  # when they were last sent
        self.experiment_id: str | None = None
        self.model_uri: str | None = None
        self.opening: threading.Thread | None = None  # opens the MLflow run while fit trains
        self.failure: Exception | None = None  # why it could not

    # ------------------------------------------------------------------ the run's life

    def started(self, path: Path, data: Any = None) -> None:
        """The run directory ``path`` exists (fit's hook): open the MLflow run (the one
        run.json names, for a resume) and log the params, in a thread of its own while the
        model trains (``nettrain fit`` does it in a process: :mod:`.sidecar`). ``data`` gives
        the input example."""
        self.path = Path(path)
        if data is not None:
            self.example = sample(data)
        recorded = RunRecord(self.path).read().get(RECORD) or {}
        self.opening = threading.Thread(target=self._open_aside, args=(recorded.get("run_id"),),
                                        name="nettrain-mlflow", daemon=True)
        self.opening.start()
        if redacted(self.place.uri) != self.place.uri:
            self.echo(f"Note: {self.path / rundir.CONFIG} holds the tracking URI without its "
                      f"credentials ({redacted(self.place.uri)}). To repeat the run: "
                      f"{self._repeat()}")

    def callback(self) -> Any:
        """A Keras callback that logs each epoch's metrics (step = the epoch)."""
        import keras

        logger = self

        class MlflowEpochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                logger.epoch(epoch, logs or {})

        return MlflowEpochs()

    def epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        """Keep one epoch's values (those that are finite numbers); they are sent together
        every :data:`FLUSH_SECONDS` and when the run ends (a call a store takes per epoch would
        cost more than an epoch of a small model)."""
        if self.broken is not None:
            return
        stamp = int(time.time() * 1000)
        self.pending += [(store.EPOCH + key, float(value), stamp, epoch)
                         for key, value in logs.items() if _finite(value)]
        if self.opening is not None and not self.opening.is_alive():
            self._opened()
        if self.opening is None and self.run_id is not None and \
                time.monotonic() - self.sent >= FLUSH_SECONDS:
            self._try(self._flush)

    def _flush(self) -> None:
        """Send the epochs' values kept so far (those of a call that failed stay kept)."""
        from mlflow.entities import Metric

        while self.pending:
            batch = self.pending[:1000]  # MLflow takes 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=[Metric(*m) for m in batch])
            del self.pending[:len(batch)]
        self.sent = time.monotonic()

    def _open_aside(self, run_id: str | None) -> None:
        """The opening thread: open the MLflow run; a failure is said by :meth:`_opened`."""
        try:
            self._open(run_id)
        except Exception as exc:  # noqa: BLE001  (fit's thread says it, once)
            self.failure = exc
            return
        warm_requirements()

    def _opened(self) -> None:
        """In fit's thread, once the MLflow run is open (waiting for it): say why it could not
        be, and record its id in run.json (so that a resume or `nettrain track` continues it)."""
        if self.opening is None:
            return
        self.opening.join()
        self.opening = None
        if self.failure is not None and self.broken is None:
            self._failed(self.failure)
        self._record(uploaded=False)

    def finish(self, path: Path | None = None, status: str | None = None) -> bool:
        """Upload what the run directory holds now (the history not yet logged, the final
        metrics, the files, the model) and end the MLflow run with the run's status
        (``status`` overrides it: ``KILLED`` on Ctrl-C). Return whether all of it went."""
        self.path = Path(path) if path is not None else self.path
        if self.path is None:
            return False
        self._opened()
        if self.run_id is None and self.broken is None:
            self._try(self._open, (RunRecord(self.path).read().get(RECORD) or {}).get("run_id"))
        if self.run_id is not None:
            self._try(self._upload, status)
            if self.broken is not None:  # never left RUNNING: `nettrain track` opens it again
                self._end(status or "FAILED")
        self._record(uploaded=self.broken is None and self.run_id is not None)
        return self.broken is None

    # ------------------------------------------------------------------ the parts

    def _open(self, run_id: str | None) -> None:
        self.client = self.client or store.client(self.place.uri)  # opened early: sidecar
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # noqa: BLE001  (another store, or the run was deleted)
                run = None
            if run is not None and run.info.lifecycle_stage == "active":
                self.client.update_run(run_id, status="RUNNING")
                self.run_id, self.experiment_id = run_id, run.info.experiment_id
                return
        experiment = self.experiment_id = store.experiment_id(self.client, self.place)
        assert self.path is not None
        tags = {store.RUN_DIR_TAG: str(self.path.absolute()), "nettrain.name": self.config.name,
                "mlflow.source.name": "nettrain", **self.tags}
        if self.parent:
            tags[store.PARENT_TAG] = self.parent
        run = self.client.create_run(experiment, run_name=self._run_name(), tags=tags)
        self.run_id = run.info.run_id
        items = list(params(self.config).items())
        from mlflow.entities import Param

        for start in range(0, len(items), 100):  # MLflow takes 100 params a call
            self.client.log_batch(self.run_id, params=[Param(k, v)
                                                       for k, v in items[start:start + 100]])

    def _repeat(self) -> str:
        """The command that repeats this run with its tracking URI's credentials."""
        assert self.path is not None
        words = ("nettrain", "fit", self.path / rundir.CONFIG)
        line = store.again(self.place.uri, *words, *store.naming(self.place.uri))
        if line == command(*words, *store.naming(self.place.uri)):  # a query's token
            return f"{command(*words)} --track URI, with its credentials in the URI"
        return line

    def _run_name(self) -> str:
        """``tiny 20261201-120000``: the config's name and the run directory's (a trial's
        directory is its name: ``trial-0003``)."""
        assert self.path is not None
        return self.path.name if self.parent else f"{self.config.name} {self.path.name}"

    def _upload(self, status: str | None) -> None:
        """Send what the run directory holds now and end the MLflow run; Ctrl-C on the way
        ends it KILLED (a failure: :meth:`finish` ends it FAILED)."""
        try:
            self._send()
        except KeyboardInterrupt:
            self._end("KILLED")
            raise
        record = RunRecord(self.path).read() if self.path else {}
        self.client.set_terminated(self.run_id, status or STATUS.get(
            str(record.get("status")), "FINISHED"))

    def _send(self) -> None:
        from mlflow.entities import Metric

        assert self.path is not None and self.run_id is not None
        self._flush()
        record = RunRecord(self.path).read()
        self._history()
        stamp = int(time.time() * 1000)
        final = []
        metrics = _read(self.path / rundir.METRICS) if record.get("status") == "completed" \
            else {}
        step = max(0, int(record.get("epochs_completed") or 0) - 1)
        prefixes = {"train": "train_", "validation": "val_", "test": "test_"}
        for split, values in metrics.items():
            for name, value in (values.items() if isinstance(values, dict) else ()):
                if _finite(value):
                    final.append(Metric(f"{store.FINAL}{prefixes.get(split, split + '_')}{name}",
                                        float(value), stamp, step))
        if final:
            self.client.log_batch(self.run_id, metrics=final)
        for file in sorted(self.path.iterdir()):
            if file.is_file() and file.name not in _NOT_ARTIFACTS and \
                    not file.name.startswith("."):
                self.client.log_artifact(self.run_id, str(file))
        tags = {store.STATUS_TAG: str(record.get("status", "unknown")),
                store.EPOCHS_TAG: str(record.get("epochs_completed", 0)),
                store.PLANNED_TAG: str(self.config.fit.epochs), **self.tags}
        if isinstance(record.get("directions"), dict):  # what `runs --from` sorts by
            tags[store.DIRECTIONS_TAG] = json.dumps(record["directions"], sort_keys=True)
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)
        if record.get("saved") and record.get("status") in ("completed", "interrupted"):
            self._log_model(step)

    def _end(self, status: str) -> None:
        """End the MLflow run as ``status`` if the store answers (else `nettrain track` will)."""
        with contextlib.suppress(Exception):  # the store is away: the one warning said so
            self.client.set_terminated(self.run_id, status)

    def _history(self) -> None:
        """Log the rows of history.csv whose epochs the MLflow run does not have yet (those
        of a run uploaded later, or sent while the store was away)."""
        from mlflow.entities import Metric

        rows = history.read(self.path / rundir.HISTORY) if self.path else None
        if not rows:  # none, unreadable, or no epoch yet
            return
        stamp, metrics = int(time.time() * 1000), []
        for key in rows.columns:
            if key == "epoch":
                continue
            name = store.EPOCH + key
            have = {m.step for m in self.client.get_metric_history(self.run_id, name)}
            for index, row in enumerate(rows.rows):
                value, epoch = row[key], rows.epoch(index)
                if epoch is not None and epoch not in have and math.isfinite(value):
                    metrics.append(Metric(name, value, stamp, epoch))
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def _log_model(self, step: int) -> None:
        """The saved model, linked to the run (its "Logged models"), with a signature and an
        input example of the run's training data (none when the data cannot be read now): a
        model of named columns as a nettrain pyfunc model that takes raw rows
        (:mod:`nettrain.tracking.pyfunc`), any other in MLflow's Keras flavour."""
        from importlib.metadata import version

        import keras
        import mlflow
        from mlflow.entities import LoggedModelOutput
        from mlflow.models import Model

        import nettrain
        from nettrain.model import saving

        assert self.path is not None and self.run_id is not None
        run = rundir.open_run(self.path)
        if self.example is None:
            try:
                from nettrain.data.loading import load_data

                self.example = sample(load_data(run.config, run.dataset))
            except Exception:  # noqa: BLE001  (the data moved: the model goes without one)
                self.example = None
        # the backend it runs on (its version from the installed package: importing
        # TensorFlow for its version alone costs seconds when the run trained on JAX)
        backend = keras.backend.backend()
        requirements = [f"keras=={keras.__version__}", f"{backend}=={version(backend)}"]
        experiment = self.experiment_id or self.client.get_run(self.run_id).info.experiment_id
        logged = mlflow.initialize_logged_model(name=MODEL, source_run_id=self.run_id,
                                                experiment_id=experiment)
        described = Model(artifact_path=logged.artifact_location, run_id=self.run_id,
                          model_id=logged.model_id, model_uuid=logged.model_id)
        # mlflow.keras.log_model with an input example fails on a folder it has not made yet
        # (mlflow/mlflow#16183, MLflow 2.22 to 3.x, leaving a FAILED logged model): the model is
        # saved into a folder made here, then its files are logged as the logged model's.
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / MODEL
                if run.dataset.get("columns"):  # named inputs: raw rows in
                    from nettrain.tracking import pyfunc

                    example = pyfunc.raw_rows(self.example, run.dataset) \
                        if isinstance(self.example, dict) else None
                    pyfunc.save(folder, self.path, example,
                                [f"nettrain=={nettrain.__version__}", *requirements], described)
                else:
                    model, _ = saving.load_model(self.path, None, run.dataset)
                    signature = None
                    if self.example is not None:
                        from mlflow.models import infer_signature

                        signature = infer_signature(self.example,
                                                    model.predict(self.example, verbose=0))
                    folder.mkdir()
                    mlflow.keras.save_model(model, str(folder), signature=signature,
                                            input_example=self.example,
                                            pip_requirements=requirements,
                                            mlflow_model=described)
                self.client.log_model_artifacts(logged.model_id, str(folder))
        except BaseException:
            mlflow.finalize_logged_model(logged.model_id, "FAILED")
            raise
        mlflow.finalize_logged_model(logged.model_id, "READY")
        # the run's "Logged models" (MLflow 3 links a model to a run by the run's outputs)
        self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step)])
        self.model_uri = f"models:/{logged.model_id}"

    # ------------------------------------------------------------------ failures, run.json

    def _try(self, action: Any, *args: Any, **kwargs: Any) -> None:
        """Call ``action``; the first failure is one warning, and nothing is sent after."""
        if self.broken is not None:
            return
        try:
            action(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001  (the store's failures never fail a run)
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """The first failure: one warning; nothing is sent after it."""
        self.broken = one_line(exc)
        later = store.again(self.place.uri, "nettrain", "track", self.path or "RUN",
                            *store.naming(self.place.uri, "--uri"))
        self.echo(f"Warning: MLflow ({self.place.shown}) failed: {self.broken}. The run goes "
                  f"on and its directory is complete; upload it later with: {later}")

    def _record(self, uploaded: bool) -> None:
        write_note(self.path, self.note(uploaded), self.echo)

    def note(self, uploaded: bool) -> dict[str, Any]:
        """What run.json says about the MLflow run: its place, its id, whether it is all up."""
        note: dict[str, Any] = {"uri": redacted(self.place.uri),
                                "experiment": self.place.experiment, "run_id": self.run_id,
                                "uploaded": uploaded}
        if self.model_uri:
            note["model_uri"] = self.model_uri
        if self.broken:
            note["error"] = self.broken
        return note


def write_note(path: Path | None, note: dict[str, Any], echo: Any) -> None:
    """Write the MLflow run's :meth:`RunLogger.note` into run.json (skipped while another
    process holds the run)."""
    if path is None or not (path / rundir.RUN).is_file():
        return
    try:
        RunRecord(path).annotate(**{RECORD: note})
    except Exception as exc:  # noqa: BLE001  (the MLflow run exists; only the note is lost)
        echo(f"Warning: run.json of {path} does not say where the run is in "
             f"MLflow ({one_line(exc)}).")


def warm_requirements() -> None:
    """Have MLflow build now the map of installed packages it checks a logged model's
    requirements against (once a process: 1-2 s), so that the model's upload does not wait."""
    with contextlib.suppress(Exception):  # another MLflow: the upload builds it, as before
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        warn_dependency_requirement_mismatches(["mlflow"])  # met: no warning, the map built


def sample(data: Any) -> Any:
    """A few training inputs of ``data`` (numpy), for the input example."""
    import numpy as np

    x = data.sample(5)[0]
    if isinstance(x, dict):
        return {k: np.asarray(v) for k, v in x.items()}
    return np.asarray(x)


def _read(file: Path) -> dict[str, Any]:
    with contextlib.suppress(Exception):
        return rundir.read_json(file)
    return {}


def _finite(value: Any) -> bool:
    with contextlib.suppress(TypeError, ValueError):
        return math.isfinite(float(value))
    return False


def recorded(path: Path) -> dict[str, Any]:
    """What run.json says about the run's MLflow run (``{}`` when it was never tracked, or
    run.json cannot be read: evaluate has its own say about a damaged run)."""
    try:
        note = RunRecord(Path(path)).read().get(RECORD)
    except Exception:  # noqa: BLE001
        return {}
    return note if isinstance(note, dict) else {}


def log_evaluation(path: Path, name: str, metrics: dict[str, float], files: list[Path],
                   echo: Any = print) -> str | None:
    """Log an evaluation (``nettrain evaluate``) to the MLflow run of the run directory
    ``path``, when run.json names one: ``eval/<name>_<metric>`` metrics (``eval/test_loss``,
    ``eval/data-new_accuracy``), evaluation.json with the per-class or regression report, and
    the pictures. Return the MLflow run id (None: the run is not tracked, or the store
    failed, which is one warning)."""
    note = recorded(path)
    if not note.get("run_id"):
        return None
    label = re.sub(r"[^\w.\-]+", "_", name.replace("data:", "data-"))
    uri = note.get("uri") or ""
    try:
        if HIDDEN in uri:  # the config has it (an older nettrain's), or MLflow's variables
            uri = store.where(rundir.open_run(path).config).uri
        refused = store.refusal(uri, f"{path / rundir.RUN}: mlflow.uri", ())  # a file's store
        if refused is not None:
            raise RunError(str(refused))
        client = store.client(uri)
        stamp = int(time.time() * 1000)
        from mlflow.entities import Metric

        client.log_batch(note["run_id"], metrics=[
            Metric(f"eval/{label}_{key}", float(value), stamp, 0)
            for key, value in metrics.items() if _finite(value)])
        for file in [path / rundir.EVALUATION, *files]:
            if Path(file).is_file():
                client.log_artifact(note["run_id"], str(file))
    except Exception as exc:  # noqa: BLE001  (the evaluation stands without MLflow)
        echo(f"Warning: the evaluation was not logged to MLflow ({redacted(uri)}, run "
             f"{note['run_id']}): {one_line(exc)}")
        return None
    return str(note["run_id"])
