"""Benchmark: what tracking in MLflow adds to a whole ``nettrain fit`` (issue 25: at most 25 %).

Runs ``nettrain fit configs/xor.yaml fit.epochs=200`` as whole processes, alternating a run
without tracking and one with ``tracking: {mlflow: {}}`` (the default store: SQLite in the runs
folder, which needs no server), --pairs times, and records each run's seconds, the medians and
their ratio (tracked / untracked), wall and CPU seconds (user + system: what a loaded machine
blurs least), and the load average before and after. The store is created
by one tracked run first (MLflow builds a new database's tables once: timed and reported apart,
not in the pairs). With --baseline-src (another checkout, e.g. /work/main) its tracked runs are
timed in the same pairs, for a before/after.

    python benchmarks/tracking_cost.py --pairs 3 --out benchmarks/results/tracking_cost.json
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, write_record

REPO = Path(__file__).resolve().parents[1]
TRACKED = 'tracking={"mlflow": {}}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another nettrain checkout whose tracked runs are timed too")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nettrain-tracking-bench-"))
    sources = {"nettrain": REPO, **({"baseline": args.baseline_src.resolve()}
                                    if args.baseline_src else {})}

    def fit(source: Path, *extra: str) -> tuple[float, float]:
        """One whole process: its wall seconds and CPU seconds (user + system, every thread:
        the figure a loaded machine blurs least)."""
        command = [sys.executable, "-m", "nettrain", "fit", str(REPO / "configs" / "xor.yaml"),
                   f"fit.epochs={args.epochs}", "-q", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        rc = subprocess.call(command, cwd=folder, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env={**os.environ, "PYTHONPATH": str(source)})
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if rc != 0:
            raise SystemExit(f"{' '.join(command)} failed with exit status {rc}")
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return round(wall, 3), round(cpu, 3)

    load_before = os.getloadavg()
    first = fit(REPO, TRACKED)  # a new store: MLflow creates its tables
    sides = ["untracked", "tracked", *(["baseline tracked"] if args.baseline_src else [])]
    runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    for pair in range(args.pairs):
        for side in (sides if pair % 2 == 0 else sides[::-1]):
            source = sources["baseline" if side.startswith("baseline") else "nettrain"]
            runs[side].append(fit(source, *(() if side == "untracked" else (TRACKED,))))
    load_after = os.getloadavg()
    wall = {side: statistics.median(w for w, _ in values) for side, values in runs.items()}
    cpu = {side: statistics.median(c for _, c in values) for side, values in runs.items()}
    record = {
        "name": "tracking_cost",
        "command": "python benchmarks/tracking_cost.py " + " ".join(sys.argv[1:]),
        "work": f"configs/xor.yaml for {args.epochs} epochs, tracked to the default SQLite "
                "store (runs/mlflow.db) or not, whole processes alternated",
        "machine": machine(), "pairs": args.pairs,
        "first_tracked_new_store_wall_cpu_s": first,
        "wall_cpu_s": runs, "median_wall_s": wall, "median_cpu_s": cpu,
        "ratio_wall": wall["tracked"] / wall["untracked"],
        "ratio_cpu": cpu["tracked"] / cpu["untracked"],
        **({"baseline_ratio_wall": wall["baseline tracked"] / wall["untracked"],
            "baseline_ratio_cpu": cpu["baseline tracked"] / cpu["untracked"]}
           if args.baseline_src else {}),
        "load_average_before": load_before, "load_average_after": load_after,
    }
    shutil.rmtree(folder, ignore_errors=True)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
