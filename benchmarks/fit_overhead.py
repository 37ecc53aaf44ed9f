"""Benchmark: the cost of nettrain over a hand-written Keras script, same model and data.

Runs, each as its own process, `nettrain fit configs/digits_mlp.yaml` and a plain Keras script
that does the same work by hand (load the digits, split, Rescaling, the same layers and
optimizer, fit with the same epochs and batch size, evaluate, save model.keras, model.json +
weights and a SavedModel). Reports wall time and peak RSS of each and their ratios.

    python benchmarks/fit_overhead.py --repeat 3 --out benchmarks/results/fit_overhead.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from common import time_command, write_record

REPO = Path(__file__).resolve().parents[1]

PLAIN = """\
import json, sys
from pathlib import Path
import numpy as np, keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(42)
d = load_digits()
x, y = d.data.astype("float32"), d.target
idx = np.arange(len(x))
rest, test = train_test_split(idx, test_size=int(round(len(x) * 0.2)), random_state=42)
train, val = train_test_split(rest, test_size=int(round(len(x) * 0.1)), random_state=42)
model = keras.Sequential([keras.Input((64,)), keras.layers.Rescaling(1 / 16),
                          keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.2),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(keras.optimizers.Adam(0.001), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(x[train], y[train], batch_size=32, epochs=60, verbose=2,
          validation_data=(x[val], y[val]),
          callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=8,
                                                   restore_best_weights=True),
                     keras.callbacks.CSVLogger(str(out / "history.csv"))])
metrics = {s: model.evaluate(x[i], y[i], verbose=0, return_dict=True)
           for s, i in (("train", train), ("validation", val), ("test", test))}
model.save(out / "model.keras")
model.save_weights(out / "model.weights.h5")
(out / "model.json").write_text(model.to_json())
model.export(str(out / "saved_model"), verbose=False)
(out / "metrics.json").write_text(json.dumps(metrics, default=float))
"""


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    rc, seconds, peak = time_command(command, env=env, cwd=REPO)
    if rc != 0:
        raise SystemExit(f"{command} failed with exit {rc}")
    return {"seconds": seconds, "peak_rss_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nettrain-overhead-",
                                     ignore_cleanup_errors=True) as scratch:  # removed after
        folder = Path(scratch)
        (folder / "plain.py").write_text(PLAIN)
        env = {**os.environ, "NETTRAIN_RUNS": str(folder / "runs"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        runs: dict[str, list[dict[str, float]]] = {"nettrain": [], "plain_keras": []}
        for i in range(args.repeat):  # interleaved, so drifts in machine load hit both alike
            runs["nettrain"].append(measure([sys.executable, "-m", "nettrain", "fit",
                                             "configs/digits_mlp.yaml"], env))
            runs["plain_keras"].append(measure([sys.executable, str(folder / "plain.py"),
                                                str(folder / f"plain-{i}")], env))
        median = {k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "peak_rss_mib")}
                  for k, v in runs.items()}
        record = {
            "benchmark": "fit_overhead", "config": "configs/digits_mlp.yaml",
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "runs": runs, "median": median,
            "ratio_seconds": median["nettrain"]["seconds"] / median["plain_keras"]["seconds"],
            "ratio_peak_rss": median["nettrain"]["peak_rss_mib"]
            / median["plain_keras"]["peak_rss_mib"],
        }
        write_record(record, args.out)


if __name__ == "__main__":
    main()
