"""What each package a Keras process imports costs it, in CPU seconds (issue 27).

Every process that runs Keras (a fit, a sweep's trial, ``predict``, ``serve``, each
``--processes`` worker) pays these before its first step. Each module is imported in fresh
processes, after the modules it needs (so its own share is measured), the processes alternating
module by module; the figures are medians of the CPU seconds (user + system) of the import
alone. The versions installed are in the record.

    python benchmarks/startup_imports.py --repeat 5
    python benchmarks/startup_imports.py --repeat 5 --path /tmp/ml_dtypes-0.7.0   # another version

``--path`` puts a folder first on the children's ``sys.path`` (``pip install --no-deps
--target FOLDER ml_dtypes==0.7.0``): two versions of one package side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_record  # noqa: E402

# module: what is imported before it (its share is what importing it adds)
MODULES = {
    "numpy": [],
    "ml_dtypes": ["numpy"],
    "tensorflow": ["numpy", "ml_dtypes"],
    "keras": ["numpy", "ml_dtypes", "tensorflow"],
}
_CHILD = """
import importlib, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for name in sys.argv[2:]:
    importlib.import_module(name)
before = cpu()
importlib.import_module(sys.argv[1])
print(f"{cpu() - before:.4f}")
"""


def measure(module: str, path: str | None) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", _CHILD, module, *MODULES[module]],
                          capture_output=True, text=True, env=env, check=True)
    return float(done.stdout.split()[-1])


def version(package: str, path: str | None) -> str:
    if path:
        found = list(metadata.distributions(name=package, path=[path]))
        if found:
            return found[0].version
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--path", default=None, help="a folder first on the children's path")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    load = [os.getloadavg()[0]]
    seconds: dict[str, list[float]] = {m: [] for m in args.modules}
    started = time.time()
    for _ in range(args.repeat):
        for module in args.modules:  # alternating: a noisy minute spreads over every module
            seconds[module].append(measure(module, args.path))
    load.append(os.getloadavg()[0])
    record = {
        "benchmark": "startup_imports",
        "command": "python benchmarks/startup_imports.py " + " ".join(sys.argv[1:]),
        "machine": machine(), "load_average": load, "wall_seconds": time.time() - started,
        "versions": {p: version(p, args.path) for p in ("numpy", "ml_dtypes", "tensorflow",
                                                        "keras")},
        "cpu_seconds": {m: {"median": statistics.median(v), "runs": v}
                        for m, v in seconds.items()},
    }
    write_record(record, args.out)
    print("\nmodule      CPU s (median of %d; after what it needs)" % args.repeat,
          file=sys.stderr)
    for module, figures in record["cpu_seconds"].items():
        print(f"{module:<11} {figures['median']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
