"""The PostgreSQL fixture and Optuna's storage on it: two processes share one study."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WORKER = textwrap.dedent("""
    import os, sys, time
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=sys.argv[1], study_name="shared", load_if_exists=True)
    def objective(trial):
        trial.set_user_attr("pid", os.getpid())
        time.sleep(0.05)  # both workers are inside a trial at the same time
        return trial.suggest_float("x", -1.0, 1.0) ** 2
    study.optimize(objective, n_trials=int(sys.argv[2]))
""")


def test_two_processes_share_one_optuna_study(postgres_url):
    import optuna

    workers = [subprocess.Popen([sys.executable, "-c", WORKER, postgres_url, "8"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    trials = optuna.load_study(study_name="shared", storage=postgres_url).trials
    assert len(trials) == 16
    assert sorted(t.number for t in trials) == list(range(16))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["pid"] for t in trials} == {w.pid for w in workers}
