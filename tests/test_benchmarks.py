"""The benchmarks run, at a tiny size, so they cannot rot (their figures are never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def test_every_benchmark_runs_at_a_tiny_size_and_writes_its_report(tmp_path):
    # Two at a time: each benchmark is a few processes, most of their time TensorFlow's import.
    (tmp_path / "tmp").mkdir()
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "perf.py"), "all",
                           "--small", "--pairs", "1", "--jobs", "2", "--out", str(tmp_path),
                           "--report", str(tmp_path / "BENCHMARKS.md")],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "tmp").iterdir()) == []  # its scratch (the data) was left in /tmp
    for name in ("mnist", "cnn", "xor", "digits", "startup", "predict"):
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert record["command"].startswith("python benchmarks/perf.py all --small")
        assert {"cpu", "cores", "memory_gib", "keras", "tensorflow"} <= set(record["machine"])
        assert len(record["load_average"]) == 2
    for name in ("mnist", "cnn", "xor", "digits", "predict"):
        record = json.loads((tmp_path / f"{name}.json").read_text())
        assert record["ratio_seconds"] > 0
        assert len(record["runs"]["nettrain"]) == len(record["runs"]["plain_keras"]) == 1
    assert json.loads((tmp_path / "mnist.json").read_text())["matmul"]["gflops"] > 0
    memory = json.loads((tmp_path / "predict.json").read_text())["memory"]
    assert memory["rows"] == [200, 2_000] and all(m > 0 for m in memory["peak_rss_mib"])
    predict = json.loads((tmp_path / "predict.json").read_text())
    assert all(r["cpu_seconds"] > 0 for side in predict["runs"].values() for r in side)
    startup = json.loads((tmp_path / "startup.json").read_text())
    assert startup["imports_seconds_by_top_level_package"]["help_keras_or_tensorflow"] is False

    # BENCHMARKS.md: a row per target, from the records; the committed page is not touched.
    report = (tmp_path / "BENCHMARKS.md").read_text()
    for row in ("| 1. seed MNIST MLP | whole process |", "matmul limit", "| 2. small CNN |",
                "| 3. XOR, 1,000 epochs |", "| 3. digits_mlp.yaml |", "| 4. start-up |",
                "what `validate` imports", "| 5. predict |", "peak RSS on 200 and 2,000 rows",
                "| | CPU seconds (user + system) |",
                "Tiny sizes (`--small`)", "TensorFlow 2.", "python benchmarks/perf.py all"):
        assert row in report, row
    mnist = json.loads((tmp_path / "mnist.json").read_text())
    assert f"| {mnist['median']['nettrain']['seconds']:.1f} s |" in report

    # perf.py report writes the same page from the records alone, running nothing.
    again = tmp_path / "again.md"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "perf.py"), "report",
                           "--out", str(tmp_path), "--report", str(again)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert again.read_text() == report


def test_fit_phases_says_where_a_whole_fit_spends_its_time(tmp_path):
    """benchmarks/fit_phases.py (issue 27) at a tiny size: one whole fit, every phase timed
    in wall and CPU seconds, and its table in BENCHMARKS.md."""
    config = tmp_path / "xor.yaml"
    config.write_text((REPO / "configs" / "xor.yaml").read_text().replace(
        "epochs: 500", "epochs: 3"))
    out = tmp_path / "fit_phases.json"
    (tmp_path / "tmp").mkdir()
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fit_phases.py"),
                           str(config), "--pairs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 0, done.stderr[-3000:]
    # its scratch folder (46 MB of data for the MNIST job) is gone: it was left in /tmp
    assert list((tmp_path / "tmp").iterdir()) == []
    record = json.loads(out.read_text())
    sys.path.insert(0, str(REPO / "benchmarks"))
    from fit_phases import PHASES
    from report import _phases

    side = record["by_side"]["this, every extra"]
    assert list(side["phases"]) == list(PHASES)
    assert side["cpu_seconds"] > side["phases"]["start-up"][1] > 0
    assert record["runs"]["this, every extra"][0]["backend"] == "tensorflow"
    assert "| this, every extra | **" in "\n".join(_phases(record))


def test_startup_imports_measures_each_module_after_what_it_needs(tmp_path):
    out = tmp_path / "imports.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "startup_imports.py"),
                           "--repeat", "1", "--modules", "numpy", "ml_dtypes", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert set(record["cpu_seconds"]) == {"numpy", "ml_dtypes"}
    assert all(len(m["runs"]) == 1 and m["median"] >= 0 for m in record["cpu_seconds"].values())
    assert record["versions"]["ml_dtypes"] != "not installed"
    assert "ml_dtypes" in done.stderr and len(record["load_average"]) == 2


def test_suite_cpu_counts_each_test_and_the_processes_it_waited_for(tmp_path):
    """benchmarks/suite_cpu.py: a test that burns CPU in a child process is charged its
    children's seconds, one that burns it itself its own; the summary sums them by file."""
    tests = tmp_path / "test_tiny.py"
    tests.write_text(
        "import subprocess, sys\n"
        "BURN = ('import time\\nt = time.process_time()\\n'\n"
        "        'while time.process_time() - t < 0.5: pass')\n"
        "def test_child():\n"
        "    subprocess.run([sys.executable, '-c', BURN], check=True)\n"
        "def test_own():\n"
        "    exec(BURN)\n")
    log = tmp_path / "log"
    # one process: not the worker this test runs in (its log would be named after it)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(PYTHONPATH=str(REPO / "benchmarks"), SUITE_CPU_LOG=str(log))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "suite_cpu", "-p",
                           "no:cacheprovider", str(tests)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    rows = {line.split("\t")[3].split("::")[1]: [float(v) for v in line.split("\t")[:3]]
            for line in (log / "main.tsv").read_text().splitlines()}
    assert rows["test_child"][1] >= 0.45 and rows["test_child"][0] < 0.45, rows
    assert rows["test_own"][0] >= 0.45 and rows["test_own"][1] < 0.05, rows
    shown = subprocess.run([sys.executable, str(REPO / "benchmarks" / "suite_cpu.py"), str(log)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    last = shown.stdout.splitlines()[-1].split()
    assert last[-1] == "(all)" and float(last[0]) >= 0.9, shown.stdout
