"""Benchmark: predict's peak memory should stay flat in the number of input rows.

Trains a small MLP on 2,000 rows (20 numeric features, a class label), then predicts CSVs of
--rows rows each (default 100,000 and 1,000,000) with ``nettrain predict RUN INPUT --output
FILE``, each in its own process so its peak RSS is its own. With --baseline-src (another
checkout of nettrain, e.g. the main branch before streamed predict) the same predictions run
with that code too, on the same run directory.

Peak RSS comes from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read in a small wrapper
process per run. Usage:

    python benchmarks/predict_memory.py --out benchmarks/results/predict_memory.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, run_timed, write_record

FEATURES = 20
REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
name: predict-bench
seed: 0
data:
  csv: {csv}
  target: label
  validation_split: 0.1
  normalize: true
model:
  layers:
    - Dense: {{units: 32, activation: relu}}
    - Dense: {{units: 2, activation: softmax}}
compile:
  optimizer: adam
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
  batch_size: 64
  verbose: 0
save:
  formats: [keras]
"""

def make_csv(path: Path, rows: int, label: bool) -> None:
    """Write ``rows`` rows of FEATURES numbers (and a class label if asked)."""
    rng = np.random.default_rng(rows)
    weights = np.random.default_rng(0).normal(size=FEATURES)
    names = [f"f{i}" for i in range(FEATURES)] + (["label"] if label else [])
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for start in range(0, rows, 200_000):
            x = rng.normal(size=(min(200_000, rows - start), FEATURES))
            block = np.column_stack([x, (x @ weights > 0).astype(int)]) if label else x
            np.savetxt(f, block, fmt=["%.5f"] * FEATURES + (["%d"] if label else []),
                       delimiter=",")


def measure(command: list[str], src: Path, cwd: Path) -> dict[str, float]:
    """Run ``command`` with nettrain from ``src`` (in ``cwd``: ``python -m`` looks in the
    working folder first); its exit status, seconds, CPU seconds and peak RSS."""
    timed = run_timed(command, "stdout", cwd=cwd, env={**os.environ, "PYTHONPATH": str(src)})
    return {"exit": timed["rc"], "seconds": round(timed["seconds"], 1),
            "cpu_seconds": round(timed["cpu_seconds"], 1),
            "peak_rss_mib": round(timed["peak_rss_mib"], 1)}


def trained_run() -> tuple[Path, str]:
    """A new temporary folder and the run directory of the benchmark's model trained in it
    (2,000 rows of :func:`make_csv`), for this benchmark and evaluate_memory.py."""
    folder = Path(tempfile.mkdtemp(prefix="nettrain-bench-"))
    os.environ["NETTRAIN_RUNS"] = str(folder / "runs")
    make_csv(folder / "train.csv", 2_000, label=True)
    (folder / "bench.yaml").write_text(CONFIG.format(csv=folder / "train.csv"))
    fit = subprocess.run([sys.executable, "-m", "nettrain", "fit", str(folder / "bench.yaml")],
                         capture_output=True, text=True, cwd=folder,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    if fit.returncode:
        sys.exit(f"fit failed: {fit.stderr}")
    return folder, fit.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another nettrain checkout to compare with (its repository root)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder, run = trained_run()
    sources = {"nettrain": REPO}
    if args.baseline_src:
        sources["baseline"] = args.baseline_src.resolve()
    results: dict[str, dict] = {name: {} for name in sources}
    sizes = {}
    for rows in args.rows:
        csv = folder / f"rows_{rows}.csv"
        start = time.perf_counter()
        make_csv(csv, rows, label=False)
        sizes[rows] = csv.stat().st_size
        print(f"made {csv} ({sizes[rows] / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s",
              flush=True)
        for name, src in sources.items():
            out = folder / f"out_{name}_{rows}.csv"
            results[name][str(rows)] = measure(
                [sys.executable, "-m", "nettrain", "predict", run, str(csv), "--output",
                 str(out)], src, folder)
            print(name, rows, results[name][str(rows)], flush=True)
        csv.unlink()
    record = {
        "benchmark": "predict_memory",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "features": FEATURES, "file_bytes": {str(k): v for k, v in sizes.items()},
        "machine": machine(),
        "sources": {name: str(src) for name, src in sources.items()},
        "results": results,
    }
    write_record(record, args.out)
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
