"""The benchmarks run, at a tiny size, so they cannot rot (their figures are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_every_benchmark_runs_at_a_tiny_size_and_records_its_machine(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "perf.py"), "all",
                           "--small", "--pairs", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("mnist", "cnn", "xor", "digits", "startup", "predict", "matmul"):
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert record["command"].startswith("python benchmarks/perf.py all --small")
        assert {"cpu", "cores", "memory_gib", "keras", "tensorflow"} <= set(record["machine"])
    for name in ("mnist", "cnn", "xor", "digits", "predict"):
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert record["ratio_seconds"] > 0
        assert len(record["runs"]["nettrain"]) == len(record["runs"]["plain_keras"]) == 1
    startup = json.loads((tmp_path / "startup.json").read_text())
    assert startup["imports_seconds_by_top_level_package"]["help_keras_or_tensorflow"] is False
