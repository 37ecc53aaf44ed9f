"""Benchmark: train on a CSV larger than memory should allow; record peak RSS and time.

Makes a CSV of about --gigabytes GB (20 numeric features and a class label), then runs, each
in its own process so peak RSS is its own:

1. ``nettrain fit`` on it (streamed: the file is over data.stream's 256 MiB threshold),
2. the same model in a plain Keras script streaming the file with
   ``tf.data.experimental.make_csv_dataset`` (the idiomatic hand-written way).

Peak RSS comes from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read in a small wrapper
process per run. Usage:

    python benchmarks/stream_csv.py --gigabytes 2 --out benchmarks/results/stream_csv.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import time_command, write_record

FEATURES = 20
CONFIG = """\
name: stream-bench
seed: 0
data:
  csv: {csv}
  target: label
  stream: true               # 'auto' would stream it too: the file is over 256 MiB
  validation_split: 0.05
  test_split: 0.05
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
  epochs: 1
  batch_size: 1024
  verbose: 2
save:
  formats: [keras]
"""

PLAIN = """\
import sys, tensorflow as tf, keras
path = sys.argv[1]
names = [f"f{{i}}" for i in range({features})] + ["label"]
ds = tf.data.experimental.make_csv_dataset(path, batch_size=1024, label_name="label",
                                           num_epochs=1, shuffle=True, shuffle_buffer_size=10000)
ds = ds.map(lambda x, y: (tf.stack([x[n] for n in names[:-1]], axis=1), y))
norm = keras.layers.Normalization()
norm.adapt(ds.map(lambda x, y: x))
model = keras.Sequential([keras.Input(({features},)), norm,
                          keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(ds, epochs=1, verbose=2)
print(model.evaluate(ds, verbose=0, return_dict=True))
"""

def make_csv(path: Path, gigabytes: float) -> int:
    """Write about ``gigabytes`` GB of rows; return the row count."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=FEATURES)
    header = ",".join([f"f{i}" for i in range(FEATURES)] + ["label"]) + "\n"
    rows, target = 0, gigabytes * 1e9
    with open(path, "w") as f:
        f.write(header)
        while f.tell() < target:
            x = rng.normal(size=(200_000, FEATURES))
            y = (x @ weights > 0).astype(int)
            block = np.column_stack([x, y])
            np.savetxt(f, block, fmt=["%.5f"] * FEATURES + ["%d"], delimiter=",")
            rows += len(block)
    return rows


def measure(command: list[str]) -> dict[str, float]:
    rc, seconds, peak = time_command(command, "none")
    return {"exit": rc, "seconds": round(seconds, 1), "peak_rss_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nettrain-bench-"))
    csv = folder / "big.csv"
    start = time.perf_counter()
    rows = make_csv(csv, args.gigabytes)
    made = time.perf_counter() - start
    size = csv.stat().st_size
    print(f"made {csv} ({size / 1e9:.2f} GB, {rows:,} rows) in {made:.0f} s", flush=True)
    (folder / "bench.yaml").write_text(CONFIG.format(csv=csv))
    (folder / "plain.py").write_text(PLAIN.format(features=FEATURES))
    env = {**os.environ, "NETTRAIN_RUNS": str(folder / "runs")}
    os.environ.update(env)
    results = {
        "nettrain": measure([sys.executable, "-m", "nettrain", "fit", str(folder / "bench.yaml")]),
        "plain_keras": measure([sys.executable, str(folder / "plain.py"), str(csv)]),
    }
    record = {
        "benchmark": "stream_csv",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "file_bytes": size, "rows": rows, "features": FEATURES,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "results": results,
        "ratio_seconds": results["nettrain"]["seconds"] / results["plain_keras"]["seconds"],
        "ratio_peak_rss": results["nettrain"]["peak_rss_mib"] / results["plain_keras"]["peak_rss_mib"],
    }
    write_record(record, args.out)
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
