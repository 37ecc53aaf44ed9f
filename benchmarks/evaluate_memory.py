"""Benchmark: ``evaluate --data`` on a CSV should hold its peak memory flat in the rows.

Trains predict_memory.py's small MLP (20 numeric features, a class label) on 2,000 rows, then
evaluates labelled CSVs of --rows rows each (default 100,000 and 500,000) with ``nettrain
evaluate RUN --data FILE --json``, each in its own process so its peak RSS is its own. With
--baseline-src (another checkout, e.g. main before evaluate --data read in chunks) the same
evaluations run with that code too, on the same run directory. Usage:

    python benchmarks/evaluate_memory.py --baseline-src /work/main \\
        --out benchmarks/results/evaluate_memory.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import machine, write_record
from predict_memory import FEATURES, REPO, make_csv, measure, trained_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 500_000])
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder, run = trained_run()
    sources = {"nettrain": REPO, **({"baseline": args.baseline_src.resolve()}
                                    if args.baseline_src else {})}
    results: dict[str, dict] = {name: {} for name in sources}
    sizes = {}
    for rows in args.rows:
        csv = folder / f"rows_{rows}.csv"
        make_csv(csv, rows, label=True)
        sizes[rows] = csv.stat().st_size
        for name, src in sources.items():
            results[name][str(rows)] = measure(
                [sys.executable, "-m", "nettrain", "evaluate", run, "--data", str(csv),
                 "--json"], src, folder)
            print(name, rows, results[name][str(rows)], flush=True)
        csv.unlink()
    write_record({
        "benchmark": "evaluate_memory",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "features": FEATURES, "file_bytes": {str(k): v for k, v in sizes.items()},
        "machine": machine(),
        "sources": {name: str(src) for name, src in sources.items()},
        "results": results}, args.out)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
