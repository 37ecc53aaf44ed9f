"""Where the test suite's time goes: a pytest plugin that writes, for each test, the CPU seconds
of its worker, of the processes it started (and waited for) and its wall seconds; run as a
script, it sums them by test file.

    PYTHONPATH=benchmarks python -m pytest -q -n auto --dist loadfile -p suite_cpu
    python benchmarks/suite_cpu.py            # the files of most CPU first

The rows go to ``$SUITE_CPU_LOG`` (default ``/tmp/suite-cpu``), a file per xdist worker, tab
separated: worker CPU, children's CPU, wall, test id. A process the test started but did not
wait for is not counted (the kernel adds a child's CPU to its parent when it is waited for).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections import defaultdict
from pathlib import Path

FOLDER = Path(os.environ.get("SUITE_CPU_LOG", "/tmp/suite-cpu"))


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


try:
    import pytest
except ImportError:  # the summary needs no pytest
    pytest = None

if pytest is not None:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        before, started = _cpu(), time.perf_counter()
        yield
        after = _cpu()
        FOLDER.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(FOLDER / f"{worker}.tsv", "a") as log:
            log.write(f"{after[0] - before[0]:.2f}\t{after[1] - before[1]:.2f}\t"
                      f"{time.perf_counter() - started:.2f}\t{item.nodeid}\n")


def summary(folder: Path) -> list[tuple[str, float, float, float]]:
    """(file, worker CPU, children's CPU, wall) for each test file, most CPU first."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for path in folder.glob("*.tsv"):
        for line in path.read_text().splitlines():
            own, children, wall, test = line.split("\t", 3)
            row = sums[test.split("::")[0]]
            for i, value in enumerate((own, children, wall)):
                row[i] += float(value)
    return sorted(((name, *row) for name, row in sums.items()), key=lambda r: -(r[1] + r[2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=FOLDER)
    args = parser.parse_args()
    rows = summary(args.folder)
    print(f"{'CPU s':>8} {'worker':>8} {'children':>8} {'wall s':>8}  file")
    for name, own, children, wall in rows:
        print(f"{own + children:8.1f} {own:8.1f} {children:8.1f} {wall:8.1f}  {name}")
    total = [sum(r[i] for r in rows) for i in (1, 2, 3)]
    print(f"{total[0] + total[1]:8.1f} {total[0]:8.1f} {total[1]:8.1f} {total[2]:8.1f}  (all)")


if __name__ == "__main__":
    main()
