"""What ``fit`` shows while it trains: a live display, plain lines, or nothing; and its end.

``fit.verbose`` (Keras's 0/1/2/auto; Keras's own progress bar is never used) and ``--quiet``
choose the mode (:func:`choose`):

- ``live`` (``auto`` or ``1`` when stderr is a terminal): an epoch bar and a batch bar with
  the ETA, samples/s, the current loss and metrics; above them one row per finished epoch
  (train and validation side by side), with the column names again after each screenful.
  The batch hook only stores two numbers; rich redraws from them at most 10 times a second
  in its own thread, and rows of fast epochs are printed together at most as often, so
  training does not wait on drawing.
- ``lines`` (``2``, or ``auto``/``1`` when stderr is not a terminal): one plain line per epoch,
  no escape codes, no bars.
- ``silent`` (``0``): no line per epoch; the notes (run directory, resume) and the final table.
- ``quiet`` (``--quiet``): nothing on stderr but warnings and errors; stdout gets the run
  directory as always.

At the end :meth:`Display.summary` prints the final table: the metrics of each split
(``metrics.json``), the best epoch (by :func:`nettrain.engine.best.best_epoch`, the rule
``runs compare`` uses too), the wall time and the run directory.
Keras is imported only by :meth:`Display.callback`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.constrain import Constrain
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column, Table
from rich.text import Text

from nettrain.engine.best import Monitor, best_epoch
from nettrain.engine.best import number as _number
from nettrain.text import shown

REFRESH_PER_SECOND = 10
# What the two bars say while a Ctrl-C waits for the batch in hand (StopNotes.deferred)
STOPPING = ("[bold yellow]stopping after this batch[/]", "Ctrl-C again stops at once")


def choose(verbose: Any, quiet: bool, terminal: bool) -> str:
    """The display mode: 'quiet', 'silent', 'lines' or 'live'.

    Example: ``choose('auto', False, terminal=False)`` -> ``'lines'``.
    """
    if quiet:
        return "quiet"
    if verbose == 0:
        return "silent"
    if verbose == 2 or not terminal:
        return "lines"
    return "live"


def duration(seconds: float) -> str:
    """``4.2`` -> ``'4.2s'``, ``83`` -> ``'1m 23s'``, ``3725`` -> ``'1h 02m 05s'``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def metrics_table(rows: dict[str, dict[str, float]]) -> Table:
    """A table of metrics: a row per split (or file), a column per metric, 4 decimals; the
    names as :func:`nettrain.text.shown` shows them."""
    names = list(dict.fromkeys(k for metrics in rows.values() for k in metrics))
    table = Table()
    table.add_column("split")
    for name in names:
        table.add_column(Text(shown(name)), justify="right")
    for split, metrics in rows.items():
        table.add_row(Text(shown(split)),
                      *(f"{metrics[n]:.4f}" if n in metrics else "" for n in names))
    return table


def _rate(samples: float, seconds: float) -> str:
    return f"{samples / seconds:,.0f} samples/s" if seconds > 0 and samples else ""


class Display:
    """Where fit's progress goes: the notes before training, the epochs, the final table.

    Args:
        console: the console for stderr (default: lines go to ``echo``, never a live display).
        quiet: ``--quiet``: drop the notes, the epochs and the final table.
        echo: where lines go without a console (default ``print``).
    """

    def __init__(self, console: Console | None = None, quiet: bool = False,
                 echo: Any = print) -> None:
        self.console = console
        self.quiet = quiet
        self._echo = echo
        self.started = time.monotonic()
        self.mode = "quiet" if quiet else "lines"

    def note(self, text: str) -> None:
        """A line about the run (its directory, a resume), unless quiet."""
        if not self.quiet:
            self.write(Text(shown(text, lines=True)))

    def write(self, text: Text | Table) -> None:
        if self.console is None:  # plain text for echo: a table drawn without escape codes
            plain = Console(width=100, no_color=True, highlight=False, force_terminal=False)
            with plain.capture() as captured:
                plain.print(text, soft_wrap=isinstance(text, Text))
            self._echo(captured.get().rstrip("\n"))
        else:
            self.console.print(text, highlight=False, soft_wrap=isinstance(text, Text))

    def callback(self, config: Any, epochs: int, initial_epoch: int,
                 samples: int | None, validation: bool, watched: Monitor,
                 best: float | None = None,
                 stopping: Callable[[], bool] | None = None) -> Any:
        """The Keras callback that shows the epochs (None when none are shown or trained).

        Args:
            config: the run's config (``fit.verbose``).
            epochs: the epoch training ends at; ``initial_epoch``: where it starts.
            samples: training samples in an epoch (for samples/s; None: unknown).
            validation: whether the run has a validation split (its columns).
            watched: the best epoch's monitor, as fit chose it for best.keras
                (:func:`nettrain.engine.best.monitor`): the live view marks its "* best".
            best: its best value so far (a resumed run's), which an epoch must beat.
            stopping: says whether a Ctrl-C waits for the batch in hand to end (the live
                bars say so: :meth:`nettrain.engine.signals.StopNotes.deferred`).
        """
        terminal = self.console is not None and self.console.is_terminal
        self.mode = choose(config.fit.verbose, self.quiet, terminal)
        if self.mode in ("quiet", "silent") or epochs <= initial_epoch:
            return None
        view = (_Live if self.mode == "live" else _Lines)(self, config, epochs, initial_epoch,
                                                          samples, validation, watched, best)
        view.stopping = stopping or view.stopping
        return _callback(view, batches=self.mode == "live")

    @contextlib.contextmanager
    def training(self, callback: Any) -> Iterator[None]:
        """Show the live bars while the block runs; take them off however it ends (an error,
        Ctrl-C), leaving the epoch rows printed and the cursor back."""
        view = getattr(callback, "view", None)
        if view is None:
            yield
            return
        view.start()
        try:
            yield
        finally:
            view.stop()

    def summary(self, name: str, path: Path, metrics: dict[str, dict[str, float]],
                config: Any, epochs: int | None, stopped: str | None = None,
                backend: str | None = None) -> None:
        """The final table: metrics per split, then the Keras ``backend`` that trained (and why
        it was chosen), the best epoch (of ``epochs`` trained), the callback that ``stopped``
        the training early (if one did), the wall time since the display was made and the run
        directory."""
        if self.quiet:
            return
        self.write(Text(f"Final metrics of {shown(name)}:"))
        self.write(metrics_table(metrics))
        best = best_epoch(path, config)
        rows = {"Backend": backend and shown(backend),
                "Best epoch": best and f"{best.epoch}{f' of {epochs}' if epochs else ''}: "
                              f"{shown(best.text())}",
                "Stopped early": stopped and f"at epoch {epochs} of {config.fit.epochs} by "
                                 f"{shown(stopped)}",
                "Wall time": duration(time.monotonic() - self.started),
                "Run directory": shown(path)}
        for key, value in rows.items():
            if value:
                self.write(Text.assemble((f"{key:<14}", "bold"), value))


def _callback(view: Any, batches: bool) -> Any:
    """A Keras callback that hands the epochs to ``view``. With ``batches`` it also stores the
    last batch and its logs (Keras calls the hook once per ``steps_per_execution`` batches);
    without it the callback has no batch hook at all."""
    import keras

    class Shown(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.view = view

        def on_train_begin(self, logs: dict | None = None) -> None:
            view.begin(self.params.get("steps"))

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            view.epoch_begin(epoch)

        def on_test_begin(self, logs: dict | None = None) -> None:
            view.validating = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            view.epoch_end(epoch, logs or {})

    if not batches:
        return Shown()

    class ShownBatches(Shown):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            view.step, view.logs = batch + 1, logs  # drawn by rich's thread, not here

    return ShownBatches()


class _Lines:
    """One plain line per finished epoch:
    ``Epoch 3/20 - 0.4s - 1,200 samples/s - loss: 0.5012 - accuracy: 0.8125 - val_loss: ...``

    It also keeps what the callback reports (the epoch, the last batch and its logs), which
    the live view draws from."""

    def __init__(self, display: Display, config: Any, epochs: int, initial_epoch: int,
                 samples: int | None, validation: bool, watched: Monitor,
                 best: float | None = None) -> None:
        self.display, self.config, self.epochs, self.initial = \
            display, config, epochs, initial_epoch
        self._monitor, self._so_far = watched, best
        self.samples, self.validation = samples, validation
        self.steps: int | None = None
        self.step, self.logs, self.validating = 0, None, False
        self.epoch = initial_epoch
        self._epoch_start = time.monotonic()
        self.stopping: Callable[[], bool] = lambda: False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def begin(self, steps: int | None) -> None:
        self.steps = steps

    def epoch_begin(self, epoch: int) -> None:
        self.epoch, self.step, self.logs, self.validating = epoch, 0, None, False
        self._epoch_start = time.monotonic()

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        seconds = time.monotonic() - self._epoch_start
        parts = [f"Epoch {epoch + 1}/{self.epochs}", duration(seconds)]
        rate = _rate(self.samples or 0, seconds)
        parts += [rate] if rate else []
        parts += [f"{shown(k)}: {_number(v)}" for k, v in _ordered(logs)]
        self.display.write(Text(" - ".join(parts)))


def _ordered(logs: dict[str, Any]) -> list[tuple[str, Any]]:
    """Training values first (loss first), then the validation ones in the same order."""
    train = sorted((k for k in logs if not k.startswith("val_")), key=lambda k: k != "loss")
    val = [f"val_{k}" for k in train if f"val_{k}" in logs]
    rest = [k for k in logs if k not in train and k not in val]
    return [(k, logs[k]) for k in [*train, *val, *rest]
            if isinstance(logs[k], (int, float))]


class _Live(_Lines):
    """The bars (redrawn by rich's thread from the numbers the batch hook stores) and a row
    per finished epoch printed above them, train and validation side by side."""

    def start(self) -> None:
        console = self.display.console
        self._progress = _Bars(self, console=console, transient=True,
                               refresh_per_second=REFRESH_PER_SECOND)
        self._epochs_task = self._progress.add_task(
            "Epochs", total=self.epochs - self.initial, completed=0,
            rate="", eta="", values="")
        self._batch_task = self._progress.add_task(
            f"Epoch {self.initial + 1}", total=None, rate="", eta="", values="")
        self._trained = 0  # epochs finished in this session
        self._train_start = time.monotonic()
        self._columns: tuple[list[str], list[str]] | None = None  # training, validation
        self._widths: dict[str, int] = {}
        self._best: float | None = self._so_far
        self._pending: list[Text] = []  # rows not yet printed
        self._rows = 0  # epoch rows so far
        self._printed = 0.0
        self._progress.start()

    def stop(self) -> None:
        try:
            self._print_rows()
        finally:
            self._progress.stop()

    def epoch_begin(self, epoch: int) -> None:
        super().epoch_begin(epoch)
        self._progress.update(self._batch_task, description=f"Epoch {epoch + 1}",
                              completed=0, total=self.steps)

    def refresh(self) -> None:
        """Move the stored numbers into the bars (called by rich's thread before drawing)."""
        now = time.monotonic()
        elapsed, step, steps, logs = now - self._epoch_start, self.step, self.steps, self.logs
        values = "validating" if self.validating else "  ".join(
            f"{shown(k, markup=True)} {_number(v)}" for k, v in _ordered(logs or {}))
        stopping = self.stopping()
        if stopping:
            values = STOPPING[1]
        per_step = self.samples / steps if self.samples and steps else 0
        eta = elapsed / step * max(steps - step, 0) if step and steps else None
        self._progress.update(self._batch_task, completed=step, total=steps,
                              rate=_rate(step * per_step, elapsed),
                              eta=f"ETA {duration(eta)}" if eta is not None else "",
                              values=values)
        done = self._trained + (step / steps if steps else 0)
        left = self.epochs - self.initial - done
        spent = now - self._train_start
        self._progress.update(self._epochs_task, completed=self._trained,
                              eta=f"ETA {duration(spent / done * max(left, 0))}" if done else "",
                              rate=f"{duration(spent)} elapsed",
                              values=STOPPING[0] if stopping else "")

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        now = time.monotonic()
        seconds = now - self._epoch_start
        self.steps = self.steps or self.step  # a dataset of unknown size: known after one
        self._trained += 1
        if self._columns is None:  # the first epoch decides the columns and prints a header
            train = [k for k, _ in _ordered(logs) if not k.startswith("val_")]
            val = [f"val_{k}" for k in train] if self.validation else []
            self._columns = (train, val)
            self._widths = {k: max(len(shown(k)), 8) for k in train + val}
        if self._rows % max(self.display.console.height - 6, 10) == 0:  # a header a screen
            self._pending.append(self._row("epoch", "time", "samples/s",
                                           {k: shown(k) for k in sum(self._columns, [])},
                                           style="bold"))
        self._rows += 1
        value = logs.get(self._monitor.name)
        best = self._monitor.better(value, self._best)
        if best:
            self._best = value
        rate = f"{self.samples / seconds:,.0f}" if self.samples and seconds > 0 else ""
        row = self._row(f"{epoch + 1}/{self.epochs}", duration(seconds), rate,
                        {k: _number(v) for k, v in logs.items()
                         if isinstance(v, (int, float))})
        if best:
            row.append(f"  * best {shown(self._monitor.name)}", style="green")
        self._pending.append(row)
        if now - self._printed >= 1 / REFRESH_PER_SECOND:  # fast epochs: a few rows at once
            self._print_rows()

    def _print_rows(self) -> None:
        if self._pending:
            self._progress.console.print(Text("\n").join(self._pending), soft_wrap=True)
            self._pending = []
            self._printed = time.monotonic()

    def _row(self, epoch: str, seconds: str, rate: str, cells: dict[str, str],
             style: str = "") -> Text:
        """One row: the epoch, its time and samples/s, then the training values and the
        validation ones (blank in an epoch that was not validated)."""
        text = Text(f"{epoch:>9} {seconds:>8} {rate:>10}", style=style)
        for keys in self._columns or ():
            if keys:
                text.append(" │", style="dim")
                for key in keys:
                    text.append(f" {cells.get(key, ''):>{self._widths[key]}}", style=style)
        return text


class _Bars(Progress):
    """rich's Progress that refreshes the bars from the stored numbers just before it draws."""

    def __init__(self, view: _Live, **kwargs: Any) -> None:
        self.view = view
        super().__init__(
            _fixed("{task.description}", 9),
            BarColumn(bar_width=20, table_column=Column(width=20, no_wrap=True)),
            _fixed("{task.fields[count]}", 9), _fixed("{task.fields[eta]}", 10),
            _fixed("{task.fields[rate]}", 16),
            # the rest of the line: cut short on a narrow terminal, the others keep their width
            TextColumn("{task.fields[values]}", table_column=Column(
                ratio=1, no_wrap=True, overflow="ellipsis")), expand=True, **kwargs)

    def add_task(self, description: str, **kwargs: Any) -> Any:
        return super().add_task(description, count="", **kwargs)

    def get_renderables(self) -> Any:
        with contextlib.suppress(Exception):  # a drawing problem never stops training
            self.view.refresh()
            for task in self.tasks:
                total = "?" if task.total is None else f"{task.total:.0f}"
                task.fields["count"] = f"{task.completed:.0f}/{total}"
        # Two columns short of the width: the terminal's echo of a Ctrl-C ("^C") then fits on
        # the last line instead of wrapping it, which would leave a bar behind when it is
        # taken off.
        for renderable in super().get_renderables():
            yield Constrain(renderable, width=max(self.view.display.console.width - 2, 1))


def _fixed(template: str, width: int) -> TextColumn:
    """A right-aligned text column that keeps its width when the terminal is narrow."""
    return TextColumn(template, justify="right", table_column=Column(
        width=width, no_wrap=True, justify="right"))
