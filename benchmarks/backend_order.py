"""Samples/s of plain ``model.fit`` on each installed Keras backend, for the order ``backend:
auto`` tries them in (nettrain/backends/select.py ORDER).

Each backend runs in a process of its own (the backend is fixed per process): the seed MLP
(784-500 sigmoid-10 softmax, SGD 0.5, batch 128) on 60,000 random rows, and a small CNN (two
Conv2D 16/32 + pooling, on 28x28x1, batch 128) on 12,000; samples/s of the epochs after the
first (which compiles). ``steps_per_execution`` as given (default 1, nettrain's default).

    python benchmarks/backend_order.py [--epochs 3] [--steps-per-execution 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

BACKENDS = ("tensorflow", "jax", "torch")

CHILD = r"""
import json, sys, time
import numpy as np
import keras

epochs, spe = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
out = {}
for name, n, shape, layers in (
        ("mlp", 60000, (784,), [keras.layers.Dense(500, activation="sigmoid")]),
        ("cnn", 12000, (28, 28, 1), [keras.layers.Conv2D(16, 3, activation="relu"),
                                     keras.layers.MaxPooling2D(),
                                     keras.layers.Conv2D(32, 3, activation="relu"),
                                     keras.layers.MaxPooling2D(), keras.layers.Flatten()])):
    x = rng.random((n, *shape), dtype="float32")
    y = rng.integers(0, 10, n)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape), *layers,
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy",
                  steps_per_execution=spe)
    times = []
    stamp = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0, callbacks=[stamp])
    later = [times[i + 1] - times[i] for i in range(2, len(times), 2)]
    out[name] = round(n * len(later) / sum(later))
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    args = parser.parse_args()
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", CHILD, str(args.epochs),
                               str(args.steps_per_execution)], env=env, capture_output=True,
                              text=True)
        line = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and \
            done.stdout.strip() else json.dumps({"error": done.stderr.strip()[-300:]})
        print(f"{backend:10} {line}", flush=True)


if __name__ == "__main__":
    main()
