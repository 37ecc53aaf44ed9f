"""What the benchmark scripts share: timing a command in a child process, writing a record.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import it as ``common``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# Runs the command as its child, so the peak RSS measured is the command's alone (not the
# benchmark script's); argv[1] says which of the child's streams to discard.
_TIMER = """\
import resource, subprocess, sys, time
discard = {"none": (None, None), "stdout": (subprocess.DEVNULL, None),
           "all": (subprocess.DEVNULL, subprocess.DEVNULL)}[sys.argv[1]]
start = time.perf_counter()
rc = subprocess.call(sys.argv[2:], stdout=discard[0], stderr=discard[1])
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rc, f"{wall:.3f}", usage.ru_maxrss, f"{usage.ru_utime + usage.ru_stime:.3f}")
"""


def time_command(command: list[str], discard: str = "all", cpu: bool = False,
                 **run: Any) -> Any:
    """Run ``command`` in a child process; return its exit status, wall seconds and peak RSS
    in MiB (with ``cpu``, also its CPU seconds: user + system, every thread and child).

    Args:
        command: the full command line.
        discard: the child's streams to throw away: ``all`` (default), ``stdout`` or ``none``.
        run: keyword arguments of ``subprocess.run`` (``env``, ``cwd``).

    Example: ``rc, seconds, mib = time_command([sys.executable, "-c", "pass"])``.
    """
    timed = run_timed(command, discard, **run)
    figures = timed["rc"], timed["seconds"], timed["peak_rss_mib"]
    return (*figures, timed["cpu_seconds"]) if cpu else figures


def run_timed(command: list[str], discard: str = "all", **run: Any) -> dict[str, Any]:
    """:func:`time_command`'s figures as a dict, with the CPU seconds (user + system, all
    threads) of the command: ``rc``, ``seconds``, ``cpu_seconds``, ``peak_rss_mib``. On a
    shared machine the CPU seconds are the steadier figure."""
    out = subprocess.run([sys.executable, "-c", _TIMER, discard, *command],
                         capture_output=True, text=True, **run)
    rc, wall, peak_kib, cpu = out.stdout.strip().splitlines()[-1].split()
    return {"rc": int(rc), "seconds": float(wall), "cpu_seconds": float(cpu),
            "peak_rss_mib": int(peak_kib) / 1024}


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on, for its record: CPUs, platform, Python, memory."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1)}


def write_record(record: dict[str, Any], out: Path | None) -> None:
    """Print a benchmark's record as JSON, and write it to ``out`` when given."""
    text = json.dumps(record, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
