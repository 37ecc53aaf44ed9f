"""A sweep in MLflow: one parent run for the sweep directory, each trial's run its child.

``nettrain sweep`` opens the parent (:class:`SweepLogger`; the same sweep directory again finds
the same parent, by its tag) and puts its id in the environment (:data:`PARENT_ENV`), which
every worker and trial process inherits; a trial logs its run as a child of it
(:func:`trial_logger`), tagged with its number and how it ended (complete, pruned after an
epoch, failed). When the sweep ends the parent gets the best value, the best trial and the
sweep directory's files (best.yaml, the plots).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nettrain.config.schema import Config
from nettrain.tracking import store
from nettrain.tracking.logger import RunLogger, params
from nettrain.tracking.store import one_line

PARENT_ENV = "NETTRAIN_MLFLOW_PARENT"  # the parent run's id, for the trial processes
SWEEP_DIR_TAG = "nettrain.sweep_dir"
TRIAL_TAG = "nettrain.trial"
STATE_TAG = "nettrain.trial_state"  # complete, pruned or failed
PRUNED_TAG = "nettrain.pruned_after_epoch"


def trial_logger(config: Config, number: int, echo: Any) -> RunLogger | None:
    """The logger of trial ``number``'s run, a child of the sweep's parent run (None when
    the config has no ``tracking:``)."""
    if config.tracking is None:
        return None
    return RunLogger(config, echo=echo, parent=os.environ.get(PARENT_ENV),
                     tags={TRIAL_TAG: str(number)})


def trial_ended(logger: RunLogger | None, path: Path, state: str,
                pruned_after: int | None = None, status: str | None = None) -> None:
    """Mark a trial's MLflow run (``state``: complete, pruned or failed) and upload it."""
    if logger is None:
        return
    logger.tags[STATE_TAG] = state
    if pruned_after is not None:
        logger.tags[PRUNED_TAG] = str(pruned_after)
    logger.finish(path, status=status)


class SweepLogger:
    """The parent MLflow run of a sweep directory.

    Example (what ``nettrain sweep`` does)::

        parent = SweepLogger(config, sweep_dir, study_name, echo)
        parent.start()          # sets NETTRAIN_MLFLOW_PARENT for the trials
        ...                     # run the trials
        parent.finish(best_trial_number, metric, value)
    """

    def __init__(self, config: Config, path: Path, study: str, echo: Any = print,
                 uri: str | None = None) -> None:
        self.config, self.path, self.study, self.echo = config, Path(path), study, echo
        self.place = store.where(config, uri)
        self.run_id: str | None = None
        self.broken: str | None = None
        self.client: Any = None

    def start(self) -> None:
        """Find this sweep directory's parent run (a continued sweep) or create it; log the
        base config and the search space as params."""
        try:
            # also gives the URI's user and password to MLflow's variables: the trials'
            # processes, started next, inherit them (their configs hold the URI without)
            self.client = store.client(self.place.uri)
            experiment = store.experiment_id(self.client, self.place)
            found = self.client.search_runs(
                [experiment], filter_string=f"tags.`{SWEEP_DIR_TAG}` = "
                                            f"'{self._escaped(str(self.path.absolute()))}'",
                max_results=1)
            if found:
                self.run_id = found[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                run = self.client.create_run(experiment, run_name=f"{self.study} sweep", tags={
                    SWEEP_DIR_TAG: str(self.path.absolute()), store.SWEEP_TAG: self.study,
                    "mlflow.source.name": "nettrain sweep"})
                self.run_id = run.info.run_id
                from mlflow.entities import Param

                items = list(params(self.config).items())
                for start in range(0, len(items), 100):
                    self.client.log_batch(self.run_id, params=[
                        Param(k, v) for k, v in items[start:start + 100]])
        except Exception as exc:  # noqa: BLE001  (the sweep goes on without its parent run)
            self._warn(exc)
            return
        os.environ[PARENT_ENV] = self.run_id

    def finish(self, best: Any = None, metric: str | None = None,
               status: str = "FINISHED") -> None:
        """Log the best trial (an Optuna FrozenTrial, or None) and the sweep directory's
        files; end the parent run with ``status``."""
        os.environ.pop(PARENT_ENV, None)
        if self.run_id is None:
            return
        try:
            if best is not None and metric:
                value = best.user_attrs.get("value", best.value)
                if value is not None:
                    self.client.log_metric(self.run_id, f"best/{metric}", float(value))
                self.client.set_tag(self.run_id, "nettrain.best_trial", str(best.number))
                for key, value in best.params.items():
                    self.client.set_tag(self.run_id, f"best.{key}", str(value))
            for file in sorted(self.path.iterdir()):
                if file.is_file() and not file.name.startswith(".") and \
                        file.suffix not in (".db", ".lock"):
                    self.client.log_artifact(self.run_id, str(file))
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = one_line(exc)
            self.echo(f"Warning: MLflow ({self.place.shown}) failed: {self.broken}. The sweep "
                      "goes on; its trials are complete in their directories (upload them "
                      f"later with: {store.again(self.place.uri, 'nettrain', 'track')} "
                      "TRIAL_DIR ...).")

    @staticmethod
    def _escaped(text: str) -> str:
        return text.replace("\\", "\\\\").replace("'", "\\'")
