"""Benchmark: nettrain against the plain Keras script a user would write, target by target.

Each comparison runs nettrain and the plain script as separate processes, alternating the two
sides pair after pair (so drifts in machine load hit both alike), and reports the medians and
the ratio nettrain / plain. Both sides run under the same wrapper, which times every epoch with
a callback that has no batch hooks (so it costs neither side anything).

    python benchmarks/perf.py all     --pairs 3   # every comparison below, then BENCHMARKS.md
    python benchmarks/perf.py mnist   --pairs 3   # 1: seed MNIST MLP, 8 epochs on 60,000,
                                      [--variants] #    and the machine's float32 matmul limit
    python benchmarks/perf.py cnn     --pairs 3   # 2: small CNN on 28x28x1
    python benchmarks/perf.py xor     --pairs 3   # 3: XOR for 1,000 epochs
    python benchmarks/perf.py digits  --pairs 3   # 3: configs/digits_mlp.yaml
    python benchmarks/perf.py startup             # 4: nettrain --help, validate's imports
    python benchmarks/perf.py predict --pairs 3   # 5: predict on a 100,000-row CSV, and the
                                                  #    peak RSS on 1,000,000 rows
    python benchmarks/perf.py matmul              # the matmul limit alone
    python benchmarks/perf.py report              # BENCHMARKS.md from the records, no run

Each writes ``benchmarks/results/<name>.json`` (``--out DIR`` for another folder) with the
machine (CPU model, cores, memory, versions), the load average and the exact command; ``all``
then writes ``benchmarks/BENCHMARKS.md`` from those records (``--report PATH`` elsewhere).
``--small`` runs a tiny size of the same work (what the test suite does, so the script cannot
rot), with ``--jobs N`` benchmarks side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import run_timed
from report import read_records, write_report

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# Runs a command (``-m module args`` or ``script args``) with Model.fit patched to time each
# epoch; the times go to the file named by NETTRAIN_BENCH_EPOCHS.
WRAPPER = """\
import json, os, runpy, sys, time

times = []

def install():
    import keras

    class _EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    _fit = keras.Model.fit

    def fit(self, *args, callbacks=None, **kwargs):
        return _fit(self, *args, callbacks=[*(callbacks or []), _EpochTimes()], **kwargs)

    keras.Model.fit = fit
    if keras.backend.backend() == "jax":  # nettrain's fused path calls no Model.fit
        try:
            from nettrain.backends import jax_fused
        except ImportError:  # another checkout, without it
            jax_fused = None
        if jax_fused is not None:
            _fused = jax_fused.fit

            def fused(*args, callbacks=(), **kwargs):
                return _fused(*args, callbacks=[*callbacks, _EpochTimes()], **kwargs)

            jax_fused.fit = fused

if sys.argv[1:3] == ["-m", "nettrain"]:  # Keras is imported once nettrain chose the
    from nettrain.backends import select  # backend (auto); patched right after

    _settle = select.settle
    installed = []

    def settle():
        _settle()
        if not installed:
            installed.append(install())

    select.settle = settle
else:
    install()
try:
    if sys.argv[1] == "-m":
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    with open(os.environ["NETTRAIN_BENCH_EPOCHS"], "w") as f:
        json.dump(times, f)
"""

MNIST_CONFIG = """\
name: mnist-mlp
data: {npz: DATA, flatten: true, scale: 255, one_hot: true}
model:
  layers:
    - Dense: {units: 500, activation: sigmoid}
    - Dense: {units: 10, activation: softmax}
compile:
  optimizer: {SGD: {learning_rate: 0.5}}
  loss: categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: EPOCHS, batch_size: 128}
"""

# As tutorials write it: arrays in, model.fit with the default verbose, model.save.
MNIST_PLAIN = """\
import sys
import numpy as np, keras
data = np.load(sys.argv[1])
x = data["x"].reshape(len(data["x"]), -1).astype("float32") / 255
y = keras.utils.to_categorical(data["y"], 10)
model = keras.Sequential([keras.Input((784,)),
                          keras.layers.Dense(500, activation="sigmoid"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(keras.optimizers.SGD(0.5), "categorical_crossentropy", metrics=["accuracy"],
              steps_per_execution=int(sys.argv[4]) if len(sys.argv) > 4 else 1)
model.fit(x, y, epochs=int(sys.argv[2]), batch_size=128)
model.save(sys.argv[3] + "/model.keras")
"""

CNN_CONFIG = """\
name: small-cnn
data: {npz: DATA, scale: 255}
model:
  layers:
    - Conv2D: {filters: 32, kernel_size: 3, activation: relu}
    - MaxPooling2D: {pool_size: 2}
    - Conv2D: {filters: 64, kernel_size: 3, activation: relu}
    - MaxPooling2D: {pool_size: 2}
    - Flatten: {}
    - Dense: {units: 10, activation: softmax}
compile:
  optimizer: adam
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: EPOCHS, batch_size: 128}
"""

CNN_PLAIN = """\
import sys
import numpy as np, keras
data = np.load(sys.argv[1])
x, y = data["x"].astype("float32") / 255, data["y"]
model = keras.Sequential([keras.Input((28, 28, 1)),
                          keras.layers.Conv2D(32, 3, activation="relu"),
                          keras.layers.MaxPooling2D(2),
                          keras.layers.Conv2D(64, 3, activation="relu"),
                          keras.layers.MaxPooling2D(2),
                          keras.layers.Flatten(),
                          keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=int(sys.argv[2]), batch_size=128)
model.save(sys.argv[3] + "/model.keras")
"""

# configs/xor.yaml by hand: same layers, optimizer, batch, verbose, and its two save formats.
XOR_PLAIN = """\
import sys
import numpy as np, keras
keras.utils.set_random_seed(1)
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
y = np.array([0, 1, 1, 0], dtype="float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, activation="tanh"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=int(sys.argv[1]), batch_size=1, verbose=0)
model.evaluate(x, y, verbose=0)
model.save(sys.argv[2] + "/model.keras")
model.save_weights(sys.argv[2] + "/model.weights.h5")
open(sys.argv[2] + "/model.json", "w").write(model.to_json())
"""

# As the issue has it: pandas.read_csv, load_model, model.predict(batch_size=4096), to_csv, with
# the class beside the probabilities (what nettrain writes).
PREDICT_PLAIN = """\
import sys
import pandas as pd, keras
model = keras.models.load_model(sys.argv[1])
x = pd.read_csv(sys.argv[2]).to_numpy("float32")
p = model.predict(x, batch_size=4096, verbose=0)
out = pd.DataFrame(p, columns=[f"prob_{i}" for i in range(p.shape[1])])
out.insert(0, "class", p.argmax(1))
out.to_csv(sys.argv[3], index=False)
"""

def machine() -> dict[str, Any]:
    """CPU model, cores, memory, the versions that matter and the load average now."""
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) / 2**20 for line in
                   Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), None)
    flags = Path("/proc/cpuinfo").read_text()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory or 0, 1),
            "avx512": "avx512f" in flags, "platform": platform.platform(),
            "python": platform.python_version(),
            **{name: version(name) for name in ("keras", "tensorflow", "numpy", "jax")}}


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), **extra}


def measure(command: list[str], folder: Path, timed: bool = True,
            backend: str | None = None) -> dict[str, Any]:
    """Run ``command`` (arguments after ``python``) in its own process, under the epoch-timing
    wrapper when ``timed`` and on the Keras ``backend`` given (default: Keras's own choice,
    TensorFlow); its wall time, peak RSS and epoch times. A JAX run compiles as a first run
    of its job does: its compile cache (:mod:`nettrain.backends.compile_cache`) is an empty
    folder of its own."""
    stamp = f"{time.monotonic_ns()}-{threading.get_ident()}"
    epochs = folder / f"epochs-{stamp}.json"
    wrapper = folder / "wrapper.py"
    full = [sys.executable, *([str(wrapper)] if timed else []), *command]
    env = _env(NETTRAIN_RUNS=str(folder / "runs"), NETTRAIN_BENCH_EPOCHS=str(epochs),
               JAX_COMPILATION_CACHE_DIR=str(folder / f"jax-cache-{stamp}"),
               **({"KERAS_BACKEND": backend} if backend else {}))
    timed = run_timed(full, env=env, cwd=folder)
    shutil.rmtree(env["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
    if timed["rc"] != 0:
        subprocess.run(full, env=env, cwd=folder)  # again, showing what it printed
        raise SystemExit(f"{command} failed with exit {timed['rc']}")
    result: dict[str, Any] = {"seconds": timed["seconds"], "cpu_seconds": timed["cpu_seconds"],
                              "peak_rss_mib": round(timed["peak_rss_mib"])}
    if timed and epochs.is_file():
        result["epoch_seconds"] = [round(t, 4) for t in json.loads(epochs.read_text())]
    return result


def pairs(sides: dict[str, Any], n: int, folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Run each side ``n`` times, alternating (nettrain first in even pairs, plain in odd).
    A side gives its command, or (command, Keras backend)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(n):
        for name in (names if i % 2 == 0 else names[::-1]):
            spec = sides[name](i)
            command, backend = spec if isinstance(spec, tuple) else (spec, None)
            runs[name].append(measure(command, folder, backend=backend))
            print(name, runs[name][-1]["seconds"], file=sys.stderr, flush=True)
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]], samples: int | None = None) -> \
        dict[str, Any]:
    """Medians per side, the ratios nettrain / plain and (given ``samples`` per epoch) the
    samples per second of the epochs after the first (the warm-up)."""
    median: dict[str, Any] = {}
    for name, results in runs.items():
        median[name] = {"seconds": statistics.median(r["seconds"] for r in results),
                        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results)}
        if all("cpu_seconds" in r for r in results):
            median[name]["cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in results)
        if samples and all(len(r.get("epoch_seconds", [])) > 1 for r in results):
            per_run = [samples / statistics.median(r["epoch_seconds"][1:]) for r in results]
            median[name]["samples_per_second"] = round(statistics.median(per_run))
    nt, plain = median["nettrain"], median["plain_keras"]
    out = {"median": median,
           "ratio_seconds": round(nt["seconds"] / plain["seconds"], 3),
           "speedup_whole_process": round(plain["seconds"] / nt["seconds"], 3),
           "spread_seconds": {name: [min(r["seconds"] for r in rs), max(r["seconds"] for r in rs)]
                              for name, rs in runs.items()}}
    if "cpu_seconds" in nt and "cpu_seconds" in plain:
        out["ratio_cpu_seconds"] = round(nt["cpu_seconds"] / plain["cpu_seconds"], 3)
    if len(median) > 2:  # variants
        out["ratio_seconds_by_side"] = {name: round(m["seconds"] / plain["seconds"], 3)
                                        for name, m in median.items()}
    if "samples_per_second" in nt and "samples_per_second" in plain:
        out["speedup_samples_per_second"] = round(
            nt["samples_per_second"] / plain["samples_per_second"], 3)
    return out


def _images(folder: Path, n: int, shape: tuple[int, ...]) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / f"images-{n}-{'x'.join(map(str, shape))}.npz"
    if not path.is_file():
        np.savez(path, x=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                 y=rng.integers(0, 10, n))
    return path


def _fit_sides(folder: Path, name: str, config_text: str, plain_text: str, data: Path,
               epochs: int) -> tuple[Path, dict[str, Any]]:
    """Write ``name``'s nettrain config and plain script for ``data`` and ``epochs``; return
    the config and both sides' commands (for :func:`pairs`)."""
    config = folder / f"{name}.yaml"
    config.write_text(config_text.replace("DATA", str(data)).replace("EPOCHS", str(epochs)))
    plain = folder / f"{name}_plain.py"
    plain.write_text(plain_text)
    return config, {"nettrain": lambda i: ["-m", "nettrain", "fit", str(config)],
                    "plain_keras": lambda i: [str(plain), str(data), str(epochs),
                                              str(_out(folder, name, i))]}


def bench_mnist(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    n, epochs = (1_000, 2) if args.small else (60_000, 8)
    data = _images(folder, n, (28, 28))
    config, sides = _fit_sides(folder, "mnist", MNIST_CONFIG, MNIST_PLAIN, data, epochs)
    if args.variants:  # each lever of nettrain's defaults turned back, one at a time
        for name, override in VARIANTS.items():
            sides[f"nettrain_{name}"] = lambda i, o=override: ["-m", "nettrain", "fit",
                                                               str(config), o]
    runs = pairs(sides, args.pairs, folder)
    result = {"work": f"784-500 sigmoid-10 softmax MLP, SGD 0.5, batch 128, {epochs} epochs "
                      f"on {n:,} random uint8 28x28 samples (flatten, scale 255, one_hot)",
              "runs": runs, **summarise(runs, n)}
    # The machine's limit: flops a sample costs, forward 2*784*500 + 2*500*10; backward the
    # weight gradients (the same again) and the hidden layer's input gradient 2*500*10 (none
    # for the input), at the best GEMM rate measured on any of the shapes: an upper bound
    # (the sigmoid, softmax, loss and update cost more, never less).
    limit = result["matmul"] = bench_matmul(args, folder)
    per_sample = MLP_FLOPS_PER_SAMPLE
    result["samples_per_second_limit"] = round(limit["gflops"] * 1e9 / per_sample)
    result["samples_per_second_limit_batch_128"] = round(
        limit["gflops_batch_128"] * 1e9 / per_sample)
    nt = result["median"]["nettrain"].get("samples_per_second")
    if nt:
        result["fraction_of_limit"] = round(nt / result["samples_per_second_limit"], 3)
        result["fraction_of_limit_batch_128"] = round(
            nt / result["samples_per_second_limit_batch_128"], 3)
    return result


MLP_FLOPS_PER_SAMPLE = 4 * 784 * 500 + 6 * 500 * 10

VARIANTS = {"verbose_1": "fit.verbose=1", "steps_per_execution_1": "compile.steps_per_execution=1",
            "jit_compile_true": "compile.jit_compile=true"}


def bench_cnn(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    n, epochs = (512, 2) if args.small else (10_000, 3)
    data = _images(folder, n, (28, 28, 1))
    _, sides = _fit_sides(folder, "cnn", CNN_CONFIG, CNN_PLAIN, data, epochs)
    runs = pairs(sides, args.pairs, folder)
    return {"work": f"Conv2D 32 - MaxPooling - Conv2D 64 - MaxPooling - Flatten - Dense 10, "
                    f"adam, batch 128, {epochs} epochs on {n:,} random uint8 28x28x1 samples",
            "runs": runs, **summarise(runs, n)}


def bench_xor(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    epochs = 3 if args.small else 1_000  # small: its 4 rows at batch 1, 20 epochs were 1.5 s
    (folder / "xor_plain.py").write_text(XOR_PLAIN)
    sides = {"nettrain": lambda i: ["-m", "nettrain", "fit", str(REPO / "configs/xor.yaml"),
                                    f"fit.epochs={epochs}"],
             "plain_keras": lambda i: [str(folder / "xor_plain.py"), str(epochs),
                                       str(_out(folder, "xor", i))]}
    runs = pairs(sides, args.pairs, folder)
    return {"work": f"configs/xor.yaml (2-10-1, SGD 0.1, batch 1) for {epochs} epochs, saved "
                    "as keras and json", "runs": runs, **summarise(runs)}


def bench_digits(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from fit_overhead import PLAIN

    epochs = 3 if args.small else 60
    plain = PLAIN.replace("epochs=60", f"epochs={epochs}")
    (folder / "digits_plain.py").write_text(plain)
    sides = {"nettrain": lambda i: ["-m", "nettrain", "fit", str(REPO / "configs/digits_mlp.yaml"),
                                    f"fit.epochs={epochs}"],
             "plain_keras": lambda i: [str(folder / "digits_plain.py"),
                                       str(_out(folder, "digits", i))]}
    runs = pairs(sides, args.pairs, folder)
    return {"work": "configs/digits_mlp.yaml against benchmarks/fit_overhead.py's plain script "
                    "(same split, layers, EarlyStopping, CSVLogger, evaluation, three formats)",
            "runs": runs, **summarise(runs)}


def bench_backends(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Issue 20: the seed MNIST MLP and the small CNN, nettrain and the plain script on each
    backend (TensorFlow, JAX; Keras's best setting, steps_per_execution 32, for the MLP), all
    sides alternated in one run, and the machine's upper bound of the MLP's samples/s."""
    result: dict[str, Any] = {}
    for name, (n, epochs, shape, config_text, plain_text) in {
            "mnist": ((1_000, 2) if args.small else (60_000, 8)) + ((28, 28), MNIST_CONFIG,
                                                                   MNIST_PLAIN),
            "cnn": ((512, 2) if args.small else (10_000, 3)) + ((28, 28, 1), CNN_CONFIG,
                                                               CNN_PLAIN)}.items():
        data = _images(folder, n, shape)
        config, sides = _fit_sides(folder, name, config_text, plain_text, data, epochs)
        plain = sides["plain_keras"]
        sides["nettrain_jax"] = lambda i, c=config: (["-m", "nettrain", "fit", str(c)], "jax")
        sides["plain_jax"] = lambda i, p=plain: (p(i), "jax")
        if name == "mnist":  # Keras's best setting on each backend
            sides["plain_keras_spe32"] = lambda i, p=plain: [*p(i), "32"]
            sides["plain_jax_spe32"] = lambda i, p=plain: ([*p(i), "32"], "jax")
        runs = pairs(sides, args.pairs, folder)
        result[name] = {"work": f"{name}: {n:,} samples, {epochs} epochs", "runs": runs,
                        **summarise(runs, n)}
    limit = result["matmul"] = bench_matmul(args, folder)
    result["samples_per_second_limit"] = round(limit["gflops"] * 1e9 / MLP_FLOPS_PER_SAMPLE)
    return result


def bench_startup(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """``nettrain --help`` wall time; what ``validate`` imports (python -X importtime)."""
    helps = []
    for _ in range(2 if args.small else 7):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nettrain", "--help"], capture_output=True,
                       env=_env(), cwd=folder, check=True)
        helps.append(round(time.perf_counter() - start, 3))
    imports: dict[str, Any] = {}
    for name, command in (("help", ["--help"]),
                          ("validate", ["validate", str(REPO / "configs/xor.yaml"), "--debug"])):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nettrain", *command],
                              capture_output=True, text=True, env=_env(), cwd=folder)
        top = {}
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if line.startswith("import time:") and len(parts) == 3 and \
                    parts[2].startswith(" ") and not parts[2].startswith("  ") and \
                    parts[1].strip().isdigit():
                package = parts[2].strip().split(".")[0]
                top[package] = top.get(package, 0) + int(parts[1]) / 1e6
        imports[name] = {k: round(v, 3) for k, v in
                         sorted(top.items(), key=lambda kv: -kv[1]) if v >= 0.005}
        imports[name + "_keras_or_tensorflow"] = any(
            k in top for k in ("keras", "tensorflow"))
    return {"help_seconds": helps, "help_median_seconds": statistics.median(helps),
            "imports_seconds_by_top_level_package": imports}


def bench_predict(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Issue 27: ``nettrain predict`` of a CSV of 8 numbers (1,000,000 rows) against the plain
    script (:data:`PREDICT_PLAIN`); then nettrain's peak RSS on a tenth of the rows, which
    streamed predict keeps flat."""
    import numpy as np

    rows, width = (2_000, 8) if args.small else (1_000_000, 8)
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(width)]
    train = folder / "train.csv"
    x = rng.normal(size=(2_000, width)).astype("float32")
    header = ",".join([*columns, "label"])
    np.savetxt(train, np.column_stack([x, (x[:, 0] > 0).astype(int)]), delimiter=",",
               header=header, comments="", fmt=["%.5f"] * width + ["%d"])
    inputs = {}
    for n in (rows // 10, rows):
        inputs[n] = folder / f"predict-{n}.csv"
        with open(inputs[n], "w") as f:
            f.write(",".join(columns) + "\n")
            for start in range(0, n, 200_000):
                np.savetxt(f, rng.normal(size=(min(200_000, n - start), width)), delimiter=",",
                           fmt="%.5f")
    config = folder / "predict.yaml"
    config.write_text(f"name: p\nseed: 0\ndata: {{csv: {train}, target: label, normalize: true}}\n"
                      "model: {layers: [{Dense: {units: 32, activation: relu}}, "
                      "{Dense: {units: 2, activation: softmax}}]}\n"
                      "compile: {optimizer: adam, loss: sparse_categorical_crossentropy}\n"
                      "fit: {epochs: 2, batch_size: 64}\n")
    run = folder / "predict-run"
    subprocess.run([sys.executable, "-m", "nettrain", "fit", str(config), "--run-dir", str(run)],
                   env=_env(NETTRAIN_RUNS=str(folder / "runs")), cwd=folder, check=True,
                   capture_output=True)
    (folder / "predict_plain.py").write_text(PREDICT_PLAIN)
    sides = {"nettrain": lambda i: ["-m", "nettrain", "predict", str(run), str(inputs[rows]),
                                    "--output", str(folder / f"nt-{i}.csv")],
             "plain_keras": lambda i: [str(folder / "predict_plain.py"),
                                       str(run / "model.keras"), str(inputs[rows]),
                                       str(folder / f"plain-{i}.csv")]}
    runs = pairs(sides, args.pairs, folder)
    # Memory: the same predict on a tenth of the rows, once; streamed, the peak RSS stays put.
    fewer = measure(["-m", "nettrain", "predict", str(run), str(inputs[rows // 10]),
                     "--output", str(folder / "nt-fewer.csv")], folder, timed=False)
    for path in inputs.values():
        path.unlink()
    big_rss = statistics.median(r["peak_rss_mib"] for r in runs["nettrain"])
    memory = {"rows": [rows // 10, rows], "peak_rss_mib": [fewer["peak_rss_mib"], big_rss],
              "seconds_fewer": fewer["seconds"],
              "growth": round(big_rss / fewer["peak_rss_mib"] - 1, 3)}
    return {"work": f"predict an {width}-32-2 MLP (with Normalization) on a {rows:,}-row CSV "
                    f"of {width} columns, writing a CSV; plain: load_model, pandas.read_csv, "
                    "model.predict(batch_size=4096), DataFrame.to_csv",
            "runs": runs, **summarise(runs), "memory": memory}


def bench_matmul(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The machine's peak float32 GEMM rate on the MLP's shapes: the best of NumPy's BLAS and
    XLA (JAX), each GEMM of a training step at batch 128 and at 8,192 rows, and a 2048-cube
    (see :data:`matmul.CODE`); the upper bound of samples/s is that peak over the FLOPs of a
    sample's forward and backward passes."""
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "matmul.py"),
                          "small" if args.small else "full"],
                         capture_output=True, text=True, env=_env(), check=True)
    return json.loads(out.stdout)


def _out(folder: Path, name: str, i: int) -> Path:
    path = folder / f"{name}-plain-{i}"
    path.mkdir(exist_ok=True)
    return path


BENCHES = {"mnist": bench_mnist, "cnn": bench_cnn, "xor": bench_xor, "digits": bench_digits,
           "startup": bench_startup, "backends": bench_backends, "predict": bench_predict, "matmul": bench_matmul}
ALL = ("mnist", "cnn", "xor", "digits", "startup", "predict")  # mnist measures matmul too
# backends (issue 20) runs alone: python benchmarks/perf.py backends, then report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=[*BENCHES, "all", "report"],
                        help="one benchmark; all of them and BENCHMARKS.md; or report: "
                             "BENCHMARKS.md from the records in --out, running nothing")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="a tiny size, for the tests")
    parser.add_argument("--variants", action="store_true",
                        help="mnist: also nettrain with fit.verbose=1, with "
                             "compile.steps_per_execution=1 and with compile.jit_compile=true")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the folder of the records")
    parser.add_argument("--report", type=Path, default=None,
                        help="where all and report write BENCHMARKS.md (default "
                             "benchmarks/BENCHMARKS.md; with --small, in --out)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="with --small: run this many benchmarks side by side (their "
                             "timings then mean nothing; for the tests)")
    args = parser.parse_args(argv)
    if args.jobs > 1 and not args.small:
        parser.error("--jobs runs benchmarks side by side, which spoils their timings: "
                     "only with --small")
    command = " ".join(["python", "benchmarks/perf.py", *(argv or sys.argv[1:])])
    report = args.report or (args.out / "BENCHMARKS.md" if args.small else
                             REPO / "benchmarks" / "BENCHMARKS.md")
    if args.bench == "report":
        records = read_records(args.out)
        if not records:
            parser.error(f"no records in {args.out}: run python benchmarks/perf.py all first")
        write_report(records, report, next(iter(records.values()))["command"])
        print(report)
        return records
    # removed afterwards, after a failure or Ctrl-C too: it holds the jobs' data (up to 188 MB)
    with tempfile.TemporaryDirectory(prefix="nettrain-perf-",
                                     ignore_cleanup_errors=True) as folder:
        results = _run(args, command, Path(folder))
    if args.bench == "all":
        write_report(results, report, command)
        print(report, file=sys.stderr)
    return results


def _run(args: argparse.Namespace, command: str, folder: Path) -> dict[str, Any]:
    """Run the benchmarks ``args`` names in the scratch ``folder``; write each one's record."""
    (folder / "wrapper.py").write_text(WRAPPER)
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)

    def run(name: str) -> dict[str, Any]:
        load = os.getloadavg()[0]
        result = BENCHES[name](args, folder)
        record = {"benchmark": name, "machine": info, "command": command, "pairs": args.pairs,
                  "small": args.small, "load_average": [load, os.getloadavg()[0]], **result}
        (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "runs"}, indent=2))
        return record

    names = ALL if args.bench == "all" else [args.bench]
    with ThreadPoolExecutor(args.jobs) as pool:
        return dict(zip(names, pool.map(run, names)))


if __name__ == "__main__":
    main()
