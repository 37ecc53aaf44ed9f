"""What each Keras backend costs nettrain's jobs, for ``backend: auto``'s rule
(nettrain/backends/select.py): whole processes of ``nettrain fit`` (``--whole``), or the
samples/s of plain ``model.fit`` after the first epoch (the default).

``--whole``: every example in configs/ (and two larger MLP jobs on synthetic data, where the
work grows) as a whole ``nettrain fit CONFIG --backend B -q`` process on each installed backend,
the backends' order rotated config after config and round after round (so drifts in machine
load hit every side alike), with ``auto`` (no ``--backend``) as one more side; each run's wall
seconds, test metrics, epochs, the backend auto picked and the load average.
Writes ``benchmarks/results/backend_auto.json``; ``perf.py report`` puts it in BENCHMARKS.md.

    python benchmarks/backend_order.py --whole [--rounds 2] [--torch-rounds 1] [--auto-rounds 1]
                                       [--only NAME,...]
    python benchmarks/backend_order.py [--epochs 3] [--steps-per-execution 1]

The default mode: the seed MLP (784-500 sigmoid-10 softmax, SGD 0.5, batch 128) on 60,000
random rows and a small CNN (two Conv2D 16/32 + pooling, on 28x28x1, batch 128) on 12,000,
each backend in a process of its own; samples/s of the epochs after the first (which compiles).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine

BACKENDS = ("tensorflow", "jax", "torch")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# Larger jobs than the examples, where the work (rows x epochs x parameters) grows: the seed
# MNIST MLP's shape on random rows.
LARGER = {
    "mlp_784x500_20k_x5": {"rows": 20000, "epochs": 5},
    "mlp_784x500_60k_x8": {"rows": 60000, "epochs": 8},
}

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


def samples_per_second(args: argparse.Namespace) -> None:
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", CHILD, str(args.epochs),
                               str(args.steps_per_execution)], env=env, capture_output=True,
                              text=True)
        line = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and \
            done.stdout.strip() else json.dumps({"error": done.stderr.strip()[-300:]})
        print(f"{backend:10} {line}", flush=True)


def _images(folder: Path, per_class: int = 40, size: int = 64) -> None:
    """Two classes of random PNG images (images_cnn.yaml's ``data.images``)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("cats", "dogs")):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (size, size, 3)) + 120 * c
            Image.fromarray(pixels.astype("uint8")).save(folder / name / f"{i}.png")


def _larger_config(folder: Path, name: str, rows: int, epochs: int) -> Path:
    import yaml

    config = {"name": name, "seed": 0,
              "data": {"synthetic": {"n_samples": rows, "n_features": 784, "n_classes": 10,
                                     "random": True}, "validation_split": 0.1},
              "model": {"layers": [{"Dense": {"units": 500, "activation": "sigmoid"}},
                                   {"Dense": {"units": 10, "activation": "softmax"}}]},
              "compile": {"optimizer": {"SGD": {"learning_rate": 0.5}},
                          "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
              "fit": {"epochs": epochs, "batch_size": 128}, "save": {"formats": ["keras"]}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _jobs(folder: Path, only: list[str] | None) -> dict[str, tuple[Path, list[str]]]:
    """Every job: its config and its overrides."""
    jobs: dict[str, tuple[Path, list[str]]] = {}
    for path in sorted((REPO / "configs").glob("*.yaml")):
        extra = []
        if path.stem == "images_cnn":
            _images(folder / "photos")
            extra = [f"data.images={folder / 'photos'}"]
        jobs[path.stem] = (path, extra)
    for name, size in LARGER.items():
        jobs[name] = (_larger_config(folder, name, **size), [])
    return {k: v for k, v in jobs.items() if not only or k in only}


# Runs the command as its child: wall seconds, CPU seconds (user + system: less sensitive to
# the other processes of a busy machine than wall time) and peak RSS.
_TIMER = """\
import resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rc, f"{wall:.3f}", f"{usage.ru_utime + usage.ru_stime:.3f}", usage.ru_maxrss)
"""


def _one(job: tuple[Path, list[str]], side: str, folder: Path, env: dict) -> dict:
    path, extra = job
    backend = [] if side == "auto" else ["--backend", side]
    load = os.getloadavg()[0]
    for formats in ([], ["save.formats=[keras,json]"]):
        run = Path(tempfile.mkdtemp(dir=folder)) / "run"
        done = subprocess.run(
            [sys.executable, "-c", _TIMER, sys.executable, "-m", "nettrain", "fit", str(path),
             *extra, *formats, *backend, "--run-dir", str(run), "-q"], env=env, cwd=REPO,
            capture_output=True, text=True)
        rc, wall, cpu, peak = done.stdout.split()
        # savedmodel fails on torch in Keras 3 (refused, exit 2): the other formats alone
        if not (side == "torch" and rc == "2" and not formats):
            break
    record = {"rc": int(rc), "seconds": float(wall), "cpu_seconds": float(cpu),
              "peak_rss_mib": round(int(peak) / 1024),
              "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]}
    if formats:
        record["formats"] = "keras, json (savedmodel fails on torch)"
    if (run / "run.json").is_file():
        written = json.loads((run / "run.json").read_text())
        record.update(backend=written.get("backend"), why=written.get("backend_why"),
                      epochs=written.get("epochs_completed"),
                      loop=(written.get("training") or {}).get("loop"))
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
        record["metrics"] = metrics.get("test") or metrics.get("validation") or \
            metrics.get("train")
    return record


def whole(args: argparse.Namespace) -> None:
    installed = [b for b in BACKENDS if b in args.backends.split(",")]
    out = RESULTS / "backend_auto.json" if args.out is None else Path(args.out)
    with tempfile.TemporaryDirectory(prefix="nettrain-backends-",
                                     ignore_cleanup_errors=True) as scratch:  # removed after
        folder = Path(scratch)
        env = {**os.environ, "NETTRAIN_RUNS": str(folder / "runs"),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        env.pop("KERAS_BACKEND", None)
        jobs = _jobs(folder, args.only.split(",") if args.only else None)
        runs: dict[str, dict[str, list[dict]]] = {name: {} for name in jobs}
        record = {"benchmark": "backend_auto", "command": "python benchmarks/backend_order.py "
                  + " ".join(sys.argv[1:]), "machine": machine(), "rounds": args.rounds,
                  "load_average": [round(os.getloadavg()[0], 2)], "runs": runs}
        turn = 0
        for round_ in range(args.rounds):
            for name, job in jobs.items():
                example = name not in LARGER  # the larger jobs: TensorFlow against JAX
                sides = [*(b for b in installed if b != "torch" or
                           (round_ < args.torch_rounds and example)),
                         *(["auto"] if round_ >= args.rounds - args.auto_rounds and example
                           else [])]
                turn += 1
                sides = sides[turn % len(sides):] + sides[:turn % len(sides)]
                for side in sides:
                    done = _one(job, side, folder, env)
                    runs[name].setdefault(side, []).append(done)
                    print(f"{name:28} {side:10} {json.dumps(done)}", flush=True)
                    record["medians"] = _medians(runs)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(record, indent=1) + "\n")
        record["load_average"].append(round(os.getloadavg()[0], 2))
        out.write_text(json.dumps(record, indent=1) + "\n")


def _medians(runs: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, list[float]]]:
    """Each job's sides: [wall, CPU] seconds, medians."""
    return {name: {side: [statistics.median(r[key] for r in done)
                          for key in ("seconds", "cpu_seconds")]
                   for side, done in sides.items() if all(r["rc"] == 0 for r in done)}
            for name, sides in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whole", action="store_true", help="whole nettrain fit processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-rounds", type=int, default=1)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--auto-rounds", type=int, default=1,
                        help="the last rounds that run auto (no --backend) too")
    parser.add_argument("--only", help="comma-separated job names")
    parser.add_argument("--out", help="the record (default benchmarks/results/backend_auto.json)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    args = parser.parse_args()
    whole(args) if args.whole else samples_per_second(args)


if __name__ == "__main__":
    main()
