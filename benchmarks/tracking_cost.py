"""Benchmark: what tracking in MLflow adds to a whole ``nettrain fit`` (issue 25: at most 25 %).

Runs ``nettrain fit configs/xor.yaml fit.epochs=200`` as whole processes, alternating a run
without tracking and one with ``tracking: {mlflow: {}}`` (the default store: SQLite in the runs
folder, which needs no server), --pairs times, and records each run's seconds, the medians and
their ratio (tracked / untracked), and the load average before and after. The store is created
by one tracked run first (MLflow builds a new database's tables once: timed and reported apart,
not in the pairs). With --baseline-src (another checkout, e.g. /work/main) its tracked runs are
timed in the same pairs, for a before/after.

    python benchmarks/tracking_cost.py --pairs 3 --out benchmarks/results/tracking_cost.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import machine, time_command, write_record

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

    def fit(source: Path, *extra: str) -> float:
        command = [sys.executable, "-m", "nettrain", "fit", str(REPO / "configs" / "xor.yaml"),
                   f"fit.epochs={args.epochs}", "-q", *extra]
        rc, seconds, _ = time_command(command, cwd=folder,
                                      env={**os.environ, "PYTHONPATH": str(source)})
        if rc != 0:
            raise SystemExit(f"{' '.join(command)} failed with exit status {rc}")
        return seconds

    load_before = os.getloadavg()
    first = fit(REPO, TRACKED)  # a new store: MLflow creates its tables
    times: dict[str, list[float]] = {"untracked": [], "tracked": []}
    if args.baseline_src:
        times["baseline tracked"] = []
    for pair in range(args.pairs):
        sides = list(times)
        for side in (sides if pair % 2 == 0 else sides[::-1]):
            source = sources["baseline" if side.startswith("baseline") else "nettrain"]
            times[side].append(fit(source, *(() if side == "untracked" else (TRACKED,))))
    load_after = os.getloadavg()
    medians = {side: statistics.median(values) for side, values in times.items()}
    record = {
        "name": "tracking_cost",
        "command": "python benchmarks/tracking_cost.py " + " ".join(sys.argv[1:]),
        "work": f"configs/xor.yaml for {args.epochs} epochs, tracked to the default SQLite "
                "store (runs/mlflow.db) or not, whole processes alternated",
        "machine": machine(), "pairs": args.pairs, "first_tracked_new_store_s": first,
        "seconds": times, "medians": medians,
        "ratio": medians["tracked"] / medians["untracked"],
        **({"baseline_ratio": medians["baseline tracked"] / medians["untracked"]}
           if args.baseline_src else {}),
        "load_average_before": load_before, "load_average_after": load_after,
    }
    shutil.rmtree(folder, ignore_errors=True)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
