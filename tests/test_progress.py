"""fit's progress: plain lines off a terminal, the live display on one, --quiet, the final table."""

from __future__ import annotations

import csv
import os
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from nettrain.cli import common as cli
from nettrain.cli import app

from conftest import tiny_config, write_config, write_npz

WIDTH = {"COLUMNS": "100"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMES = re.compile(r" - \d+\.\ds - [\d,]+ samples/s")  # the parts that vary run to run


def _config(tmp_path: Path, **fit) -> Path:
    config = tiny_config(fit={"epochs": 2, "batch_size": 16, "verbose": "auto", **fit})
    return write_config(tmp_path / "c.yaml", config)


def _history(run: Path) -> list[dict[str, float]]:
    with (run / "history.csv").open(newline="") as f:
        return [{k: float("nan") if v == "NA" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _line(row: dict[str, float], epochs: int) -> str:
    """The plain line of one history row, without its seconds and samples/s."""
    values = [("loss", row["loss"]), ("accuracy", row["accuracy"]),
              ("val_loss", row["val_loss"]), ("val_accuracy", row["val_accuracy"])]
    return " - ".join([f"Epoch {int(row['epoch']) + 1}/{epochs}",
                       *(f"{k}: {v:.4f}" for k, v in values)])


def _best(run: Path) -> tuple[int, float]:
    rows = _history(run)
    best = min(rows, key=lambda r: r["val_loss"])
    return int(best["epoch"]) + 1, best["val_loss"]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """fit's stderr console as on a terminal 100 columns wide (CliRunner's is not one)."""
    monkeypatch.setattr(cli, "err", Console(stderr=True, force_terminal=True, width=100))


def test_off_a_terminal_fit_prints_a_plain_line_per_epoch_and_the_final_table(runner,
                                                                              tmp_path):
    result = runner.invoke(app, ["fit", str(_config(tmp_path)), "--run-dir",
                                 str(tmp_path / "run")], env=WIDTH)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert result.stdout == f"{run}\n"
    assert "\x1b" not in result.stderr
    lines = TIMES.sub("", result.stderr).splitlines()
    epoch, value = _best(run)
    assert lines[:3] == [f"Run directory: {run}", *(_line(r, 2) for r in _history(run))]
    assert lines[3] == "Final metrics of tiny:"
    assert lines[-3] == f"Best epoch    {epoch} of 2: lowest val_loss {value:.4f}"
    assert re.fullmatch(r"Wall time     \d+\.\ds", lines[-2])
    assert lines[-1] == f"Run directory {run}"
    table = "\n".join(lines[4:-3])
    assert "│ split      │ accuracy │   loss │" in table.replace("┃", "│")
    for split in ("train", "validation", "test"):
        assert f"│ {split:<10} │" in table


def test_the_final_table_says_when_a_callback_stopped_the_training_early(runner, tmp_path):
    """EarlyStopping in epoch 2 of 10 (no later loss beats the first by 100)."""
    path = _config(tmp_path, epochs=10, callbacks=[
        {"EarlyStopping": {"monitor": "loss", "patience": 1, "min_delta": 100}}])
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(run)], env=WIDTH)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[-4].startswith("Best epoch    ") and " of 2: " in lines[-4]
    assert lines[-3] == "Stopped early at epoch 2 of 10 by EarlyStopping"
    assert re.fullmatch(r"Wall time     \d+\.\ds", lines[-2])


def test_quiet_prints_only_the_run_directory(runner, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(_config(tmp_path)), "--run-dir", str(run), "-q"],
                           env=WIDTH)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{run}\n"
    assert result.stderr == ""


def test_quiet_still_says_what_is_wrong(runner, tmp_path):
    path = _config(tmp_path, epochs=0)
    result = runner.invoke(app, ["fit", str(path), "--quiet"], env=WIDTH)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "fit.epochs" in result.stderr


def test_verbose_0_has_no_epoch_lines_and_a_resume_counts_on_from_its_epoch(runner, tmp_path):
    run = tmp_path / "run"
    first = runner.invoke(app, ["fit", str(_config(tmp_path, epochs=1, verbose=0)),
                                "--run-dir", str(run)], env=WIDTH)
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines()[:2] == [
        f"Run directory: {run}",
        "Training 1 epoch on 90 samples (fit.verbose: 0, so no progress lines)..."]
    assert "Epoch 1/" not in first.stderr and "Best epoch    1 of 1: " in first.stderr
    result = runner.invoke(app, ["fit", "--resume", str(run), "fit.epochs=3",
                                 "fit.verbose=auto"], env=WIDTH)
    assert result.exit_code == 0, result.output
    lines = TIMES.sub("", result.stderr).splitlines()
    assert lines[:5] == ["Resume changes fit.epochs: 1 -> 3",
                         "Resume changes fit.verbose: 0 -> 'auto'",
                         f"Resuming {run} after epoch 1 of 3",
                         *(_line(r, 3) for r in _history(run)[1:])]
    epoch, value = _best(run)
    assert f"Best epoch    {epoch} of 3: lowest val_loss {value:.4f}" in lines


def test_verbose_2_prints_plain_lines_even_on_a_terminal(runner, tmp_path, terminal):
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(_config(tmp_path, epochs=1, verbose=2)),
                                 "--run-dir", str(run)], env=WIDTH)
    assert result.exit_code == 0, result.output
    lines = TIMES.sub("", ANSI.sub("", result.stderr)).splitlines()
    assert lines[1] == _line(_history(run)[0], 1)
    assert "\x1b[?25l" not in result.stderr  # no live display: the cursor is never hidden


def test_on_a_terminal_fit_shows_bars_then_a_row_per_epoch_and_clears_them(runner, tmp_path,
                                                                           terminal):
    """With fit.validation_freq: 2 the first epoch's row has blank validation columns."""
    result = runner.invoke(app, ["fit", str(_config(tmp_path, validation_freq=2)),
                                 "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert result.stdout == f"{run}\n"
    raw = result.stderr
    assert raw.count("\x1b[?25l") == 1 and raw.count("\x1b[?25h") == 1  # cursor hidden, back
    shown = ANSI.sub("", raw)
    lines = re.split(r"[\r\n]+", shown)
    bars = [line for line in lines if "━" in line and " Epoch" in line]
    assert any("Epochs" in bar for bar in bars) and any("Epoch 1" in bar for bar in bars)
    # two columns to spare: a "^C" echoed by the terminal must not wrap the last bar
    assert max(len(bar) for bar in bars) <= 98
    after = ANSI.sub("", raw[raw.index("\x1b[?25h"):])
    assert "Epochs" not in after  # and taken off: only the final table comes after them
    assert after.lstrip("\r\n").startswith("Final metrics of tiny:")
    widths = "    epoch     time  samples/s │     loss accuracy │ val_loss val_accuracy"
    assert widths in lines
    first, second = _history(run)
    rows = [rf"1/2 +\d+\.\ds +[\d,]+ │ +{first['loss']:.4f} +{first['accuracy']:.4f} │ *",
            rf"2/2 +\d+\.\ds +[\d,]+ │ +{second['loss']:.4f} +{second['accuracy']:.4f} │ +"
            rf"{second['val_loss']:.4f} +{second['val_accuracy']:.4f}  \* best val_loss"]
    for row in rows:
        assert any(re.fullmatch(" +" + row, line) for line in lines), (row, lines)
    assert f"Best epoch    2 of 2: lowest val_loss {second['val_loss']:.4f}" in shown


def test_a_nan_stop_takes_the_bars_off_before_its_message(runner, tmp_path, terminal):
    config = tiny_config(fit={"epochs": 3, "batch_size": 16})
    config["compile"]["optimizer"] = {"SGD": {"learning_rate": 1e30}}
    result = runner.invoke(app, ["fit", str(write_config(tmp_path / "c.yaml", config)),
                                 "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    raw = result.stderr
    after = ANSI.sub("", raw[raw.index("\x1b[?25h"):])
    assert "Epochs" not in after
    assert "Training stopped: the loss became NaN or infinite in epoch 1" in after


def test_a_ctrl_c_that_waits_for_its_batch_says_so_on_the_bars(runner, tmp_path, terminal,
                                                               monkeypatch):
    """A first Ctrl-C waits for the batch in hand (StopNotes.deferred); a long one shows
    that it was heard, and that a second Ctrl-C stops at once."""
    import keras

    from test_resume import _fit_batch_by_batch_with

    class LongStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 8:  # in the second epoch
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.6)  # the bars are redrawn 10 times a second

    result, run = _fit_batch_by_batch_with(LongStep(), runner, tmp_path, monkeypatch,
                                           verbose="auto")
    assert result.exit_code == 130, result.output
    shown = ANSI.sub("", result.stderr)
    bars = [line for line in re.split(r"[\r\n]+", shown) if "━" in line]
    assert any("Epochs" in bar and "stopping after this batch" in bar for bar in bars), bars
    assert any("Epoch 2" in bar and "Ctrl-C again stops at once" in bar for bar in bars), bars
    after = shown[shown.rindex("━"):]
    assert "Interrupted after 1 completed epoch(s)" in " ".join(after.split())


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_ctrl_c_on_a_real_terminal_ends_the_display_cleanly(tmp_path):
    """A real process under a pseudo-terminal: the live display, then Ctrl-C. The bars go,
    the cursor comes back, and the interruption's message says how to go on."""
    import pty

    write_npz(tmp_path / "d.npz", n=600, classes=3)
    config = tiny_config(data={"npz": str(tmp_path / "d.npz"), "validation_split": 0.2},
                         fit={"epochs": 5, "batch_size": 1})
    config["compile"]["steps_per_execution"] = 1
    path = write_config(tmp_path / "c.yaml", config)
    run = tmp_path / "run"
    pid, fd = pty.fork()
    if pid == 0:  # the child: nettrain on the pseudo-terminal
        os.chdir(tmp_path)
        os.environ["COLUMNS"] = "100"
        os.execv(sys.executable, [sys.executable, "-m", "nettrain", "fit", str(path),
                                  "--run-dir", str(run)])
    seen, sent, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        if not sent and b" 1/5 " in seen:  # epoch 1's row: epoch 2 runs, its bars are drawn
            os.write(fd, b"\x03")  # Ctrl-C typed: the terminal echoes ^C and sends SIGINT
            sent = True
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    _, status = os.waitpid(pid, 0)
    out = seen.decode(errors="replace")
    assert sent and os.waitstatus_to_exitcode(status) == 130, out
    assert "\x1b[?25l" in out and out.rindex("\x1b[?25h") > out.rindex("\x1b[?25l"), out
    after = ANSI.sub("", out[out.rindex("\x1b[?25h"):])
    assert "Epochs" not in after, out
    assert "Interrupted after 1 completed epoch(s)" in after, out
    assert f"Continue with: nettrain fit --resume {run}" in after.replace("\r\n", ""), out
