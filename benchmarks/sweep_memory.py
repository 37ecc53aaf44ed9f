"""Benchmark: a sweep's peak memory should stay flat in the number of trials.

Runs ``nettrain sweep`` of a tiny config (the iris classifier of tests/test_sweep.py, one
epoch a trial, a random search of the learning rate) for each --trials N (default 10 and 40),
each in a fresh sweep directory and its own process, and records its seconds, the seconds
per trial and the peak RSS of its processes (``ru_maxrss`` of the wrapper's children: the
largest of the sweep's process and the trial processes it waited for). With --baseline-src
(another checkout, e.g. the main branch where each trial trained inside the sweep's process)
the same sweeps run with that code too.

    python benchmarks/sweep_memory.py --baseline-src /work/main --out benchmarks/results/sweep_memory.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from common import machine, time_command, write_record

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
name: tiny
seed: 0
data: {dataset: iris, validation_split: 0.2, test_split: 0.2}
model:
  layers:
    - Dense: {units: 8, activation: relu}
    - Dense: {units: 3, activation: softmax}
compile:
  optimizer: {SGD: {learning_rate: 0.05}}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 1, batch_size: 16, verbose: 0}
save: {formats: [keras]}
sweep:
  metric: val_accuracy
  trials: 1
  sampler: random
  pruner: none
  params:
    compile.optimizer.SGD.learning_rate: {log_uniform: [0.01, 0.1]}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another nettrain checkout to compare with (its repository root)")
    parser.add_argument("--only", choices=["nettrain", "baseline"], default=None,
                        help="run one side only (a long sweep of each in turn takes long)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nettrain-sweep-bench-"))
    (folder / "c.yaml").write_text(CONFIG)
    sources = {"nettrain": REPO}
    if args.baseline_src:
        sources["baseline"] = args.baseline_src.resolve()
    if args.only:
        sources = {args.only: sources[args.only]}
    results: dict[str, dict] = {name: {} for name in sources}
    for trials in args.trials:
        for name, src in sources.items():
            command = [sys.executable, "-m", "nettrain", "sweep", "c.yaml", "--trials",
                       str(trials), "--run-dir", f"{name}-{trials}"]
            env = {**os.environ, "PYTHONPATH": str(src), "NETTRAIN_RUNS": str(folder / "runs")}
            rc, seconds, peak = time_command(command, "all", cwd=folder, env=env)
            results[name][str(trials)] = {
                "exit": rc, "seconds": round(seconds, 1),
                "seconds_per_trial": round(seconds / trials, 2),
                "peak_rss_mib": round(peak, 1)}
            print(name, trials, results[name][str(trials)], flush=True)
            shutil.rmtree(folder / f"{name}-{trials}", ignore_errors=True)
    record = {
        "benchmark": "sweep_memory",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {**machine(), "load_average_end": os.getloadavg()},
        "sources": {name: str(src) for name, src in sources.items()},
        "results": results,
    }
    write_record(record, args.out)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
