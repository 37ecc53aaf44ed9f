"""Benchmark: what fit's progress display costs, in one process, display against none.

Trains the MNIST MLP of perf.py (784 -> 500 sigmoid -> 10, SGD, batch 128) on 60,000
synthetic 28x28 images (the speed does not depend on the pixels) with ``nettrain.engine.train.fit``
in three modes, alternated pair after pair so drifts in machine load hit all alike:

- ``none``: ``fit.verbose: 0`` (no progress callback at all),
- ``lines``: a plain line per epoch,
- ``live``: the live bars, drawn 10 times a second into a terminal console (written to
  /dev/null, so the drawing cost is paid as on a screen).

Each epoch is timed by a callback with no batch hooks; the first epoch of each run (tracing)
is left out. Prints and writes the medians of samples/s per mode.

    python benchmarks/progress_display.py --pairs 3 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONFIG = """\
name: mnist-mlp
seed: 0
data: {{npz: {data}, flatten: true, scale: 255, one_hot: true}}
model:
  layers:
    - Dense: {{units: 500, activation: sigmoid}}
    - Dense: {{units: 10, activation: softmax}}
compile:
  optimizer: {{SGD: {{learning_rate: 0.5}}}}
  loss: categorical_crossentropy
  metrics: [accuracy]
fit: {{epochs: {epochs}, batch_size: 128, verbose: {verbose}}}
save: {{formats: [keras]}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    import keras
    import numpy as np
    from rich.console import Console

    from nettrain.engine import progress
    from nettrain.engine import train
    from nettrain.config.load import load_config

    times: list[float] = []

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    fit = keras.Model.fit

    def timed_fit(self, *a, callbacks=None, **kw):
        return fit(self, *a, callbacks=[*(callbacks or []), EpochTimes()], **kw)

    keras.Model.fit = timed_fit
    results: dict[str, list[float]] = {"none": [], "lines": [], "live": []}
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as null:
        rng = np.random.default_rng(0)
        data = Path(tmp) / "mnist.npz"
        np.savez(data, x=rng.integers(0, 256, (args.samples, 28, 28), dtype=np.uint8),
                 y=rng.integers(0, 10, args.samples))
        os.environ["NETTRAIN_RUNS"] = str(Path(tmp) / "runs")
        for pair in range(args.pairs):
            for mode in results:
                path = Path(tmp) / f"{mode}.yaml"
                path.write_text(CONFIG.format(data=data, epochs=args.epochs,
                                              verbose=0 if mode == "none" else "auto"))
                console = Console(file=null, force_terminal=mode == "live", width=110)
                times.clear()
                train.fit(load_config(path, []), echo=lambda text: None,
                          display=progress.Display(console))
                rate = args.samples / statistics.median(times[1:] or times)
                results[mode].append(rate)
                print(f"pair {pair + 1} {mode:>5}: {rate:,.0f} samples/s", flush=True)
    medians = {mode: statistics.median(rates) for mode, rates in results.items()}
    for mode, value in medians.items():
        print(f"median {mode:>5}: {value:,.0f} samples/s "
              f"({value / medians['none']:.3f}x none)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "progress_display.json").write_text(json.dumps(
        {"command": sys.argv, "samples_per_s": results, "medians": medians,
         "cpus": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
