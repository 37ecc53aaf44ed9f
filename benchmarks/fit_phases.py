"""Benchmark: where a whole ``nettrain fit`` process spends its time (start-up, data, build,
compile and first epoch, the other epochs, evaluation, save), wall and CPU seconds, for this
checkout and optionally another (``--baseline-src``), alternating, with JAX and PyTorch
installed or hidden (``--tensorflow-only``: the README's first install, where TensorFlow's own
import finds no JAX either).

    python benchmarks/fit_phases.py configs/digits_mlp.yaml --pairs 3 --baseline-src /tmp/base \\
        --tensorflow-only --out benchmarks/results/fit_phases.json
    python benchmarks/fit_phases.py mnist --pairs 2 --backend tensorflow --warm --plain \\
        --out benchmarks/results/fit_phases_mnist.json     # perf.py's MNIST MLP, its plain script

Each run is ``python -m nettrain fit CONFIG -q`` in its own process under a wrapper that
stamps the wall and CPU clocks (``time.process_time``: every thread of the process) around
nettrain's own steps; the CPU seconds of the whole process (user + system) come from
``common.time_command``. CPU seconds are the figure to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import time_command, write_record

REPO = Path(__file__).resolve().parents[1]

# Runs ``-m nettrain ARGS`` with stamps around nettrain's steps, written to NETTRAIN_PHASES.
WRAPPER = """\
import importlib.abc, json, os, runpy, sys, time
T0, C0 = time.perf_counter(), time.process_time()
stamps = []
def stamp(what):
    stamps.append((what, time.perf_counter() - T0, time.process_time() - C0))
if os.environ.get("NETTRAIN_HIDE"):  # as if not installed: find_spec and import fail
    class Hidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in os.environ["NETTRAIN_HIDE"].split(","):
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, Hidden())
def around(module, name, label):
    function = getattr(module, name)
    def timed(*args, **kwargs):
        stamp(label + " begins")
        try:
            return function(*args, **kwargs)
        finally:
            stamp(label + " ends")
    setattr(module, name, timed)
if sys.argv[1] == "--plain":  # the plain script: stamps around Keras's own calls
    import keras
    stamp("data begins")  # start-up: the Python and Keras imports
    _keras_fit, _save = keras.Model.fit, keras.Model.save
    def plain_fit(self, *args, callbacks=None, **kwargs):
        stamp("data ends"); stamp("build begins"); stamp("build ends"); stamp("fit begins")
        class First(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if not any(s[0] == "first epoch ends" for s in stamps):
                    stamp("first epoch ends")
        try:
            return _keras_fit(self, *args, callbacks=[*(callbacks or []), First()], **kwargs)
        finally:
            stamp("fit ends")
    def plain_save(self, *args, **kwargs):
        stamp("save begins")
        try:
            return _save(self, *args, **kwargs)
        finally:
            stamp("save ends")
    keras.Model.fit, keras.Model.save = plain_fit, plain_save
    sys.argv = sys.argv[2:]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        stamp("end")
        with open(os.environ["NETTRAIN_PHASES"], "w") as f:
            json.dump(stamps, f)
    sys.exit(0)
import nettrain.engine.train as train
_fit = train._fit
def fit(prepared, path, display, args, kwargs):
    import keras
    class First(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if not any(s[0] == "first epoch ends" for s in stamps):
                stamp("first epoch ends")
    kwargs["callbacks"] = [*kwargs["callbacks"], First()]
    return _fit(prepared, path, display, args, kwargs)
train._fit = fit
for name, label in (("load_data", "data"), ("build_model", "build"), ("_fit", "fit"),
                    ("_evaluate", "evaluate")):
    around(train, name, label)
around(train.saving, "save_model", "save")
sys.argv = ["nettrain", *sys.argv[1:]]
try:
    runpy.run_module("nettrain", run_name="__main__", alter_sys=True)
finally:
    stamp("end")
    with open(os.environ["NETTRAIN_PHASES"], "w") as f:
        json.dump(stamps, f)
"""

PHASES = ("start-up", "data", "build", "compile + first epoch", "other epochs", "evaluate",
          "save", "rest")


def phases(stamps: list[list[Any]]) -> dict[str, list[float]]:
    """[wall, cpu] seconds of each phase from the wrapper's stamps (evaluate: every split)."""
    at = {}
    for what, wall, cpu in stamps:
        at.setdefault(what, []).append((wall, cpu))

    def span(begin: tuple[float, float], end: tuple[float, float]) -> list[float]:
        return [round(end[0] - begin[0], 3), round(end[1] - begin[1], 3)]

    first = at.get("first epoch ends", at["fit ends"])[0]
    out = {"start-up": [round(at["data begins"][0][0], 3), round(at["data begins"][0][1], 3)],
           "data": span(at["data begins"][0], at["data ends"][0]),
           "build": span(at["build begins"][0], at["build ends"][0]),
           "compile + first epoch": span(at["fit begins"][0], first),
           "other epochs": span(first, at["fit ends"][0])}
    evaluations = [span(b, e) for b, e in zip(at.get("evaluate begins", []),
                                              at.get("evaluate ends", []))]
    out["evaluate"] = [round(sum(e[i] for e in evaluations), 3) for i in (0, 1)]
    out["save"] = span(at["save begins"][0], at["save ends"][0])
    end = at["end"][0]
    out["rest"] = [round(end[i] - sum(v[i] for v in out.values()), 3) for i in (0, 1)]
    return out


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a checkout's ``nettrain fit`` (with JAX and PyTorch hidden,
    on a ``--backend``, with an empty JAX compile cache each run) or the plain script."""

    source: Path
    hide: str = ""
    backend: str | None = None
    cache: str = "cold"  # a JAX run's compile cache: "cold", empty each run; "warm": kept
    plain: tuple[str, ...] = ()


def measure(side: Side, config: Path, folder: Path) -> dict[str, Any]:
    """One whole ``nettrain fit CONFIG -q`` of the checkout ``side.source`` (or the plain
    script of ``side.plain``, its argument OUT a fresh folder)."""
    stamps = folder / "stamps.json"
    env = {**os.environ, "PYTHONPATH": str(side.source), "NETTRAIN_PHASES": str(stamps),
           "NETTRAIN_RUNS": str(folder / "runs"), "NETTRAIN_HIDE": side.hide,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    if not side.plain:  # nettrain's JAX compile cache (nettrain.backends.compile_cache)
        cache = folder / f"jax-cache-{side.cache}"
        if side.cache == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    if side.plain:
        out = Path(tempfile.mkdtemp(dir=folder))
        command = ["--plain", *(str(out) if a == "OUT" else a for a in side.plain)]
        if side.backend:
            env["KERAS_BACKEND"] = side.backend
    else:
        command = ["fit", str(config), "-q", *(["--backend", side.backend] if side.backend
                                               else [])]
    rc, wall, peak, cpu = time_command([sys.executable, str(folder / "wrapper.py"), *command],
                                       cwd=folder, env=env, cpu=True)
    if rc != 0:
        raise SystemExit(f"{command} ({side.source}) failed with exit {rc}")
    done = {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "peak_rss_mib": round(peak), "phases": phases(json.loads(stamps.read_text()))}
    if side.plain:
        shutil.rmtree(out)
        return done
    run = next((folder / "runs").rglob("metrics.json")).parent
    record = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    for path in sorted((folder / "runs").rglob("*"), reverse=True):  # the next run's alone
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    return {**done, "backend": record.get("backend"), "test": metrics.get("test")}


PERF = {"mnist": ((60_000, (28, 28)), 8), "cnn": ((10_000, (28, 28, 1)), 3)}


def _perf(name: str, epochs: int, folder: Path) -> tuple[Path, list[str]]:
    """perf.py's config of benchmark ``name`` (mnist, cnn) for ``epochs``, its data written
    into ``folder``, and its plain script's arguments."""
    import perf

    (n, shape), _ = PERF[name]
    data = perf._images(folder, n, shape)
    texts = {"mnist": (perf.MNIST_CONFIG, perf.MNIST_PLAIN), "cnn": (perf.CNN_CONFIG,
                                                                   perf.CNN_PLAIN)}[name]
    config, _ = perf._fit_sides(folder, name, *texts, data, epochs)
    return config, [str(folder / f"{name}_plain.py"), str(data), str(epochs), "OUT"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a config, or mnist[:EPOCHS] or "
                        "cnn[:EPOCHS]: perf.py's seed MNIST MLP (8 epochs) or small CNN (3)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another checkout of nettrain, run alternately with this one")
    parser.add_argument("--tensorflow-only", action="store_true",
                        help="also with JAX and PyTorch hidden (the README's first install)")
    parser.add_argument("--backend", nargs="+", default=[], metavar="NAME",
                        help="also fit with --backend NAME (a JAX run, auto's included, "
                             "with an empty compile cache each run, as a first run)")
    parser.add_argument("--warm", action="store_true",
                        help="also --backend jax with a compile cache filled before the runs "
                             "('jax warm': a second run of the job)")
    parser.add_argument("--plain", nargs="*", default=None, metavar="ARG",
                        help="also the plain script: SCRIPT and its arguments (OUT: a fresh "
                             "folder), stamped around keras's import, Model.fit and .save; "
                             "none with mnist or cnn: perf.py's plain script of it")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    # removed afterwards, after a failure or Ctrl-C too: it holds the job's data (188 MB for mnist)
    with tempfile.TemporaryDirectory(prefix="nettrain-phases-",
                                     ignore_cleanup_errors=True) as folder:
        return _run(args, argv, Path(folder))


def _run(args: argparse.Namespace, argv: list[str] | None, folder: Path) -> dict[str, Any]:
    """Measure every side of ``args`` in the scratch ``folder``; write and return the record."""
    (folder / "wrapper.py").write_text(WRAPPER)
    label = str(args.config)
    named = label.partition(":")
    if named[0] in PERF and not args.config.is_file():  # perf.py's config, data, plain script
        args.config, plain = _perf(named[0], int(named[2] or PERF[named[0]][1]), folder)
        args.plain = plain if args.plain == [] else args.plain
    sources = {"this": REPO, **({"baseline": args.baseline_src} if args.baseline_src else {})}
    installs = {"every extra": "", **({"tensorflow only": "jax,jaxlib,torch"}
                                      if args.tensorflow_only else {})}
    sides = {f"{s}, {i}": Side(sources[s], installs[i]) for i in installs for s in sources}
    for name in args.backend:
        sides[f"this, {name}"] = Side(REPO, "", name)
    if args.warm:
        sides["this, jax warm"] = Side(REPO, "", "jax", "warm")
    if args.plain:
        sides["plain script"] = Side(REPO, plain=tuple(args.plain))
    if any(side.cache == "warm" for side in sides.values()):  # fill the warm cache first
        measure(next(side for side in sides.values() if side.cache == "warm"),
                args.config.resolve(), folder)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    names = list(sides)
    load = [os.getloadavg()]
    for n in range(args.pairs):
        for name in (names if n % 2 == 0 else names[::-1]):
            done = measure(sides[name], args.config.resolve(), folder)
            runs[name].append(done)
            print(name, done["seconds"], done["cpu_seconds"], file=sys.stderr, flush=True)
    load.append(os.getloadavg())
    median = {side: {"backend": "/".join(sorted({str(r.get("backend", "-")) for r in rs})),
                     "seconds": statistics.median(r["seconds"] for r in rs),
                     "cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
                     "phases": {p: [statistics.median(r["phases"][p][i] for r in rs)
                                    for i in (0, 1)] for p in PHASES}}
              for side, rs in runs.items()}
    record = {"benchmark": "fit_phases", "config": label, "pairs": args.pairs,
              "baseline_src": str(args.baseline_src) if args.baseline_src else None,
              "command": " ".join(["python", "benchmarks/fit_phases.py",
                                   *(argv or sys.argv[1:])]),
              "load_average": [list(v) for v in load], "by_side": median, "runs": runs}
    write_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
