"""nettrain sweep: a search from the config's sweep: section, continued, shared, contained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nettrain.cli import app

from conftest import REPO, tiny_config, write_config


def sweep_config(**sweep) -> dict:
    """The tiny iris classifier, one epoch a trial, with a sweep of the learning rate."""
    config = tiny_config(fit={"epochs": 1, "batch_size": 16, "verbose": 0},
                         save={"formats": ["keras"]},
                         compile={"optimizer": {"SGD": {"learning_rate": 0.05}},
                                  "loss": "sparse_categorical_crossentropy",
                                  "metrics": ["accuracy"]})
    config["sweep"] = {"metric": "val_accuracy", "trials": 3, "sampler": "random",
                       "pruner": "none",
                       "params": {"compile.optimizer.SGD.learning_rate":
                                  {"log_uniform": [0.01, 0.1]}}, **sweep}
    return config


def study_of(path: Path, name: str = "tiny"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{path / 'sweep.db'}")


def states(path: Path) -> list[str]:
    from nettrain.sweep.report import state

    return [state(t) for t in study_of(path).get_trials(deepcopy=False)]


def test_sweep_writes_trials_best_yaml_and_plots_and_contains_a_nan_trial(runner, tmp_path):
    # A grid of two learning rates: the huge one makes the loss NaN; the sweep goes on.
    config = write_config(tmp_path / "c.yaml", sweep_config(
        sampler="grid", params={"compile.optimizer.SGD.learning_rate": [0.1, 1.0e+30],
                                "model.layers.0.Dense.units": [8]}))
    result = runner.invoke(app, ["sweep", str(config)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "runs" / "tiny-sweep"
    assert result.stdout.strip() == str(path)
    assert f"Sweep directory: {path}" in result.stderr.splitlines()[0]
    assert sorted(states(path)) == ["complete", "failed"]
    failed, = [t for t in study_of(path).get_trials() if t.state.name == "FAIL"]
    assert failed.params["learning_rate"] == 1.0e+30
    assert "the loss became NaN or infinite" in failed.user_attrs["failure"]
    assert "failed" in result.stderr and "NaN" in result.stderr
    for trial in study_of(path).get_trials():  # each trial is a run that fit repeats
        run = path / trial.user_attrs["run"]
        assert (run / "config.yaml").is_file()
        assert "sweep" not in (run / "config.yaml").read_text()
    best = path / "best.yaml"
    assert best.is_file() and "sweep" not in best.read_text().split("\n", 2)[2]
    checked = runner.invoke(app, ["validate", str(best)])
    assert checked.exit_code == 0, checked.output
    for png in ("optimization_history.png", "param_importances.png",
                "parallel_coordinate.png"):
        assert (path / png).read_bytes()[:4] == b"\x89PNG"


def test_a_refused_sweep_prints_no_sweep_directory(runner, tmp_path):
    """'Sweep directory: ...' came before the refusal, of a sweep that never started."""
    config = write_config(tmp_path / "c.yaml", sweep_config())
    result = runner.invoke(app, ["sweep", str(config), "--storage", "notaurl"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr.startswith("Error: --storage: expected a database URL"), result.stderr
    assert "Sweep directory" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_bad_search_space_is_refused_before_any_trial(runner, tmp_path):
    config = sweep_config(metric="val_acc", params={
        "model.layers.0.Dense.unitz": [4, 8],
        "model.layers.5.Dense.units": [4, 8],
        "fit.batchsize": [8, 16],
        "model.layers.0.Dense.units": {"int_uniform": [0, 8]}})
    path = write_config(tmp_path / "c.yaml", config)
    lines = path.read_text().splitlines()
    line = {key: next(i for i, text in enumerate(lines, 1) if text.strip().startswith(key))
            for key in config["sweep"]["params"]}
    for command in (["sweep", str(path)], ["validate", str(path)]):
        result = runner.invoke(app, command)
        assert isinstance(result.exception, SystemExit), result.output
        assert result.exit_code == 2, result.output
        text = " ".join(result.stderr.split())
        assert text.count("sweep.params.") == 4
        assert (f"sweep.params.model.layers.0.Dense.unitz (line "
                f"{line['model.layers.0.Dense.unitz']}): expected an argument of Dense") in text
        assert "received unknown argument 'unitz'. Did you mean 'units'?" in text
        assert ("sweep.params.model.layers.5.Dense.units (line "
                f"{line['model.layers.5.Dense.units']}): expected an index below 2 into "
                "model.layers; received '5'") in text
        assert (f"sweep.params.fit.batchsize (line {line['fit.batchsize']}): expected one of "
                "the keys epochs, batch_size") in text
        assert "received unknown key 'batchsize'. Did you mean 'batch_size'?" in text
        assert (f"sweep.params.model.layers.0.Dense.units (line "
                f"{line['model.layers.0.Dense.units']}): expected valid arguments for "
                "keras.layers.Dense") in text
        assert "units=0); received 0, the low end of int_uniform [0, 8]" in text
        assert not (tmp_path / "runs").exists()
    # The space is right; the metric is not: refused too, with the name it means.
    config["sweep"]["params"] = {"model.layers.0.Dense.units": [4, 8]}
    result = runner.invoke(app, ["sweep", str(write_config(path, config))])
    assert result.exit_code == 2, result.output
    assert "sweep.metric (line" in result.stderr
    assert "received 'val_acc'. Did you mean 'val_accuracy'?" in " ".join(result.stderr.split())
    assert not (tmp_path / "runs").exists()


def test_two_workers_share_one_sqlite_study(runner, tmp_path):
    # 3 trials (each a process: 8 CPU s on a loaded machine), not 4: the second worker, a
    # light process, still has the time of two trials to take one.
    config = write_config(tmp_path / "c.yaml", sweep_config(trials=3, pruner="median"))
    result = runner.invoke(app, ["sweep", str(config), "--jobs", "2", "--run-dir", "s"])
    assert result.exit_code == 0, result.output
    trials = study_of(tmp_path / "s").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    runs = sorted(t.user_attrs["run"] for t in trials)
    assert runs == [f"trial-{n:04d}" for n in range(3)]  # each trained once, none twice
    assert sorted(p.name for p in (tmp_path / "s").glob("trial-*")) == runs
    processes = {t.user_attrs["process"] for t in trials}
    assert len(processes) == 2, processes  # this process and the second worker


def test_an_interrupted_sweep_continues_with_the_same_command(runner, tmp_path):
    """SIGINT to `nettrain sweep` while its second trial trains: the study then holds a
    waiting trial with the interrupted one's values (issue 15's guard, once a sweep of its
    own in tests/test_guards.py); taken by a worker that was killed, it is failed and its
    values drawn again, which the same command trains; the finished trial is not trained
    again."""
    import yaml

    config = write_config(tmp_path / "c.yaml", sweep_config(trials=2))
    command = ["sweep", str(config), "--run-dir", str(tmp_path / "s")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "nettrain", *command], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Ctrl-C once a trial finished and the next runs: one worker trains trials in turn, and a
    # trial's log is opened as it starts. (Reading the study instead was too slow to catch a
    # one-epoch trial on a busy machine: the sweep had ended before the Ctrl-C.)
    while time.monotonic() < deadline and not (tmp_path / "s" / "logs" / "trial-0001.log").exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Continue with the same command." in stderr
    before = study_of(tmp_path / "s").get_trials()
    done = [t.number for t in before if t.state.name == "COMPLETE"]
    assert done and "interrupted" in states(tmp_path / "s")
    interrupted, = [t for t in before if t.user_attrs.get("interrupted") == "Ctrl-C"]
    assert interrupted.state.name == "FAIL" and "learning_rate" in interrupted.params
    waiting = [t for t in before if t.state.name == "WAITING"]
    assert [t.user_attrs.get("retry_of") for t in waiting] == [interrupted.number], before
    assert waiting[0].system_attrs["fixed_params"] == interrupted.params
    # A trial left RUNNING by a process that was killed (kill -9) must not block the sweep.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    study = study_of(tmp_path / "s")
    orphan = study.ask()
    orphan.set_user_attr("process", f"{os.uname().nodename}:{dead}:")
    stamp = (tmp_path / "s" / f"trial-{done[0]:04d}" / "run.json").stat().st_mtime_ns

    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    trials = study_of(tmp_path / "s").get_trials()
    from nettrain.sweep.trials import counted

    assert sum(map(counted, trials)) == 2
    assert "Continuing study tiny: 1 of 2 trials finished." in result.stderr
    assert trials[orphan.number].state.name == "FAIL"
    assert "process ended" in trials[orphan.number].user_attrs["interrupted"]
    assert [t.number for t in trials if t.state.name == "COMPLETE"][:len(done)] == done
    assert (tmp_path / "s" / f"trial-{done[0]:04d}" / "run.json").stat().st_mtime_ns == stamp
    assert (tmp_path / "s" / "best.yaml").is_file()
    # the orphan was the waiting trial (ask takes it): its values, the Ctrl-C'd trial's, were
    # drawn again once more and trained
    assert orphan.number == waiting[0].number
    again, = [t for t in trials if t.state.name == "COMPLETE" and t.number not in done]
    assert again.system_attrs["retry_history"] == [interrupted.number, orphan.number]
    assert again.params == interrupted.params
    trained = yaml.safe_load((tmp_path / "s" / again.user_attrs["run"] / "config.yaml")
                             .read_text())  # the rate the retry trained with: the same
    assert trained["compile"]["optimizer"]["SGD"]["learning_rate"] == \
        interrupted.params["learning_rate"]


def test_pruning_stops_a_trial_cleanly_after_the_epoch(tmp_path):
    import optuna

    from nettrain.run import directory as rundir
    from nettrain.engine import train
    from nettrain.config.load import load_config
    from nettrain.sweep.trials import pruning_callback

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=-1.0))
    trial = study.ask()  # every loss is above -1: pruned at the first epoch it may be
    config = load_config(write_config(tmp_path / "c.yaml", tiny_config(
        fit={"epochs": 3, "batch_size": 16, "verbose": 0}, save={"formats": ["keras"]})))
    pruning = pruning_callback(trial, "val_loss")
    path = train.fit(config, tmp_path / "run", echo=lambda text: None,
                     extra_callbacks=(pruning,))
    assert pruning.pruned_after == 1
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [1]
    status = rundir.read_json(path / rundir.RUN)
    assert status["status"] == "completed" and status["epochs_completed"] == 1
    assert (path / "model.keras").is_file()
    assert len((path / "history.csv").read_text().splitlines()) == 2


def test_a_drawn_combination_the_config_refuses_fails_that_trial_only(tmp_path):
    import optuna

    from nettrain.sweep import runner as sweep
    from nettrain.sweep import trials
    from nettrain.config.load import load_config

    # Each split alone is fine (the space check passes); 0.6 + 0.6 is not.
    config = load_config(write_config(tmp_path / "c.yaml", sweep_config(params={
        "data.validation_split": [0.6], "data.test_split": [0.6]})))
    from nettrain.sweep.space import check_space

    check_space(config, keras=False)
    plan = sweep.prepare(config, "c.yaml", tmp_path / "s")
    plan.metric, plan.direction = "val_accuracy", "maximize"
    trial = optuna.create_study().ask()
    with pytest.raises(trials.TrialFailed):
        trials.run_trial(plan, trial)
    failure = trial.storage.get_trial(trial._trial_id).user_attrs["failure"]
    assert failure.startswith("config: the trial's config: data.test_split: expected "
                              "validation_split + test_split below 1; received 1.2")
    assert not (tmp_path / "s" / "trial-0000").exists()


def test_a_ctrl_c_while_a_trial_trains_draws_its_values_again(tmp_path, monkeypatch):
    """In the trial's own process (run_trial): a Ctrl-C while it trains marks the trial
    interrupted and queues its values to be drawn again. (The interrupted sweep above stops a
    trial before its process has begun it, where the sweep's process queues them: removing
    this queueing left the suite green.)"""
    import optuna

    from nettrain.config.load import load_config
    from nettrain.sweep import runner as sweep
    from nettrain.sweep import trials
    from nettrain.sweep.spec import LOGS

    def ctrl_c(*args, **kwargs):  # what a Ctrl-C raises in the trial's fit
        raise KeyboardInterrupt

    plan = sweep.prepare(load_config(write_config(tmp_path / "c.yaml", sweep_config())),
                         "c.yaml", tmp_path / "s")
    plan.metric, plan.direction = "val_accuracy", "maximize"
    (plan.path / LOGS).mkdir(parents=True)
    monkeypatch.setattr(trials, "train_fit", ctrl_c)
    study = optuna.create_study(direction="maximize")
    with pytest.raises(KeyboardInterrupt):
        trials.run_trial(plan, study.ask())
    stopped, waiting = study.get_trials()
    assert stopped.user_attrs["interrupted"] == "Ctrl-C" and "learning_rate" in stopped.params
    assert waiting.state.name == "WAITING" and waiting.user_attrs == {"retry_of": 0}
    assert waiting.system_attrs["fixed_params"] == stopped.params


def test_a_trial_left_running_by_another_machine_is_drawn_again_after_the_grace_period(
        runner, tmp_path, monkeypatch):
    """Its worker (host other-machine) wrote a heartbeat, then went silent: once the grace
    period has passed, the same command fails it, draws its values again and finishes the
    sweep, instead of leaving it running for ever."""
    import optuna

    monkeypatch.setenv("NETTRAIN_SWEEP_GRACE", "3")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1)
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    rate = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
    orphan = study.ask({"learning_rate": rate})
    orphan.set_user_attr("process", "other-machine:4242:99")
    storage.record_heartbeat(orphan._trial_id)  # its last heartbeat: now
    config = write_config(tmp_path / "c.yaml", sweep_config(trials=2))
    result = runner.invoke(app, ["sweep", str(config), "--storage", url, "--run-dir", "s"])
    assert result.exit_code == 0, result.output
    assert "run the same command again" not in result.stderr
    trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert trials[orphan.number].state.name == "FAIL", [t.state.name for t in trials]
    again, = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
    assert again.state.name == "COMPLETE"
    assert again.params == trials[orphan.number].params
    assert again.system_attrs["retry_history"] == [orphan.number]
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]


def test_the_same_command_with_storage_naming_the_default_file_continues(runner, tmp_path):
    config = write_config(tmp_path / "c.yaml", sweep_config(trials=1))
    absolute = f"sqlite:///{tmp_path / 'runs' / 'tiny-sweep' / 'sweep.db'}"
    for url in (absolute, absolute, "sqlite:///runs/tiny-sweep/sweep.db"):
        result = runner.invoke(app, ["sweep", str(config), "--storage", url])
        assert result.exit_code == 0, (url, result.output)
    assert "Continuing study tiny: 1 of 1 trials finished." in result.stderr
    assert states(tmp_path / "runs" / "tiny-sweep") == ["complete"]


def test_only_a_grid_smaller_than_the_trials_asked_says_its_size(runner, tmp_path,
                                                                  monkeypatch):
    """Also: a spare process (the next trial's, importing while one trains) is started only
    when a trial may follow: none for a sweep of one trial, one for two (each spare was
    killed unused at the sweep's end, its import paid for nothing)."""
    from nettrain.sweep import trials

    spares = []
    start = trials.Spare.start
    monkeypatch.setattr(trials.Spare, "start", lambda self: (spares.append(1), start(self)))
    random = write_config(tmp_path / "r.yaml", sweep_config(trials=3))
    result = runner.invoke(app, ["sweep", str(random), "--trials", "1", "--run-dir", "r"])
    assert result.exit_code == 0, result.output
    assert "1 trials of learning_rate" in result.stderr
    assert "the grid has" not in result.stderr
    assert len(spares) == 0
    grid = write_config(tmp_path / "g.yaml", sweep_config(
        trials=1, sampler="grid", params={"compile.optimizer.SGD.learning_rate": [0.02, 0.05]}))
    result = runner.invoke(app, ["sweep", str(grid), "--trials", "3", "--run-dir", "g"])
    assert result.exit_code == 0, result.output
    assert "2 trials of learning_rate, maximize val_accuracy, 1 at once (the grid has 2 " \
           "combinations)" in result.stderr
    assert len(spares) == 1


# What `nettrain sweep` does (prepare, run), in a process of its own, continued from 1 trial to
# 3: the peak RSS of the sweep's own process (VmHWM) after each, and how many fits this process
# ran (none: each trial trains in a process of its own). The metric and its direction are
# given, as runner.check would set them: check imports TensorFlow (5-8 CPU seconds) to build
# the base model once, before the first trial, which no trial's growth depends on.
_GROWTH = """\
import io, sys
from pathlib import Path
from rich.console import Console
from nettrain.config.load import load_config
from nettrain.engine import train
from nettrain.sweep import runner

fits = []
fit = train.fit
train.fit = lambda *args, **kwargs: (fits.append(1), fit(*args, **kwargs))[1]

def peak():
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024

config = load_config(sys.argv[1])
for trials in (1, 3):
    sweep = runner.prepare(config, "c.yaml", Path("s"), trials=trials)
    sweep.metric, sweep.direction = "val_accuracy", "maximize"
    runner.run(sweep, echo=lambda text: None, console=Console(file=io.StringIO()))
    print(trials, peak(), len(fits), flush=True)
"""


def test_the_sweep_process_does_not_grow_with_its_trials(tmp_path):
    """Issue 17: a 200-trial sweep grew by about 4 MB a trial. Each trial now trains in a
    process of its own, so the sweep's process holds no trial's graphs, datasets or models:
    it runs no fit of its own, and its peak RSS after 3 trials is that after 1 (4 MiB of
    slack for the study's rows). (3 trials, not 8: the fits counted in the sweep's process
    catch a trial trained there at once; each trial's process costs a TensorFlow import.)"""
    config = write_config(tmp_path / "c.yaml", sweep_config(trials=3))
    out = subprocess.run([sys.executable, "-c", _GROWTH, str(config)], check=False,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    ends = {trials: (peak, fits) for trials, peak, fits in
            (map(int, line.split()) for line in out.stdout.splitlines())}
    assert len(study_of(tmp_path / "s").get_trials()) == 3
    print("peak RSS (MiB) and fits after trials:", ends)  # shown with pytest -s
    assert ends[1][1] == ends[3][1] == 0, ends  # no trial trained in the sweep's process
    # MiB: 820 -> 829 (2 to 8) before, 791 -> 792; 95 -> 97 since this process imports no
    # TensorFlow (a mutant keeping 4 MB a trial: 100 -> 109)
    assert ends[3][0] - ends[1][0] <= 4, ends


def test_direction_auto_is_the_one_keras_gives_the_metric(tmp_path):
    """PearsonCorrelation goes up (Keras's metric says so, not its name), the loss down; a
    metric Keras cannot tell is refused at sweep.direction."""
    from nettrain.config.load import load_config
    from nettrain.engine.train import prepare
    from nettrain.errors import ConfigError
    from nettrain.sweep.space import check_metric

    config = sweep_config(metric="val_pearson_correlation")
    config.update(data={"dataset": "diabetes", "validation_split": 0.2},
                  model={"layers": [{"Dense": {"units": 1}}]})
    config["compile"].update(loss="mse", metrics=[{"PearsonCorrelation": {"axis": 0}},
                                                  {"TruePositives": {"name": "tp"}}])
    loaded = load_config(write_config(tmp_path / "c.yaml", config))
    prepared = prepare(loaded)
    assert check_metric(loaded, prepared.model, prepared.data) == \
        ("val_pearson_correlation", "maximize")
    for metric, way in (("val_loss", "minimize"), ("tp", None)):
        changed = loaded.model_copy(update={"sweep": loaded.sweep.model_copy(
            update={"metric": metric})})
        if way:
            assert check_metric(changed, prepared.model, prepared.data) == (metric, way)
            continue
        with pytest.raises(ConfigError, match="Keras cannot tell whether 'tp' should go up"):
            check_metric(changed, prepared.model, prepared.data)
