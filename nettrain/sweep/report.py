"""What a sweep shows and leaves: its table of trials, ``best.yaml`` and Optuna's plots.

Everything here reads the study (Optuna's frozen trials) and the sweep; nothing trains.
The plots are Optuna's own (``optuna.visualization.matplotlib``), drawn with matplotlib's Agg
backend and written as PNG files by :func:`nettrain.engine.plots.save`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from nettrain.errors import RunError
from nettrain.run import directory as rundir
from nettrain.sweep.space import trial_config
from nettrain.text import shown

if TYPE_CHECKING:
    from nettrain.sweep.spec import Sweep

# The rows a live table shows (the latest trials); the final table shows them all.
LIVE_ROWS = 15


def state(trial: Any) -> str:
    """complete, pruned, failed, interrupted, running or waiting."""
    name = trial.state.name.lower()
    if name == "fail":
        return "failed" if "failure" in trial.user_attrs else "interrupted"
    return name


def value(trial: Any) -> float | None:
    """The trial's metric: the final model's (a pruned trial's too), or the last epoch's
    while it runs."""
    found = trial.user_attrs.get("value", trial.value)
    if found is None and trial.intermediate_values:
        found = trial.intermediate_values[max(trial.intermediate_values)]
    return found


def note(trial: Any) -> str:
    attrs = trial.user_attrs
    if "failure" in attrs:
        return attrs["failure"]
    if "interrupted" in attrs or state(trial) == "interrupted":
        return f"interrupted ({attrs.get('interrupted', 'no heartbeat')}); drawn again"
    if "pruned_after" in attrs:
        return f"pruned after epoch {attrs['pruned_after']}"
    if "retry_of" in attrs:
        return f"trial {attrs['retry_of']} again"
    return ""


def _number(x: Any) -> str:
    """A drawn value: 4 significant digits, or a choice as :func:`nettrain.text.shown` shows it."""
    if isinstance(x, float):
        return f"{x:.4g}"
    return shown(x)


def _seconds(trial: Any) -> str:
    if trial.datetime_start is None:
        return ""
    import datetime

    end = trial.datetime_complete or datetime.datetime.now()
    return f"{(end - trial.datetime_start).total_seconds():.0f}s"


def ranked(sweep: Sweep, trials: list[Any]) -> list[Any]:
    """Completed trials best first, then pruned ones by their value, then the rest by number."""
    sign = -1 if sweep.direction == "maximize" else 1
    order = {"complete": 0, "pruned": 1, "running": 2, "failed": 3, "interrupted": 4,
             "waiting": 5}

    def key(trial: Any) -> tuple:
        found = value(trial)
        known = found is not None and math.isfinite(found) and state(trial) in ("complete",
                                                                                 "pruned")
        return order[state(trial)], sign * found if known else 0.0, trial.number

    return sorted(trials, key=key)


def table(sweep: Sweep, trials: list[Any], live: bool = False) -> Table:
    """The trials as a table: number, state, each value drawn, the metric, epochs, time, note.

    ``live``: the latest LIVE_ROWS trials in the order they started, with a count of all;
    otherwise every trial, best first (:func:`ranked`).
    """
    import optuna

    done = sum(1 for t in trials if state(t) in ("complete", "pruned", "failed"))
    title = f"{sweep.study}: {done} of {sweep.trials} trials" + (
        f", {sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)} running"
        if live else f" (by {sweep.metric}, {sweep.direction})")
    result = Table(title=Text(shown(title), style="table.title"), title_justify="left")
    result.add_column("trial", justify="right", no_wrap=True)
    result.add_column("state", min_width=8, no_wrap=True)
    for param in sweep.params:  # a value is 4 significant digits: 0.0004353
        result.add_column(Text(shown(param.name)), justify="right",
                          min_width=min(len(param.name), 9))
    result.add_column(Text(shown(sweep.metric)), justify="right", min_width=6, no_wrap=True)
    result.add_column("epochs", justify="right", no_wrap=True)
    result.add_column("time", justify="right", no_wrap=True)
    notes = not live and any(note(t) for t in trials)  # the final table says why
    if notes:
        result.add_column("note", overflow="fold", min_width=12)
    listed = sorted(trials, key=lambda t: t.number)[-LIVE_ROWS:] if live else \
        ranked(sweep, trials)
    for trial in listed:
        found = value(trial)
        epochs = trial.user_attrs.get("epochs", len(trial.intermediate_values) or "")
        result.add_row(str(trial.number), state(trial),  # Text: never read as markup
                       *(Text(_number(trial.params[p.name])) if p.name in trial.params else ""
                         for p in sweep.params),
                       "" if found is None else f"{found:.4f}", str(epochs or ""),
                       _seconds(trial), *([Text(shown(note(trial)))] if notes else []))
    return result


def line(sweep: Sweep, trial: Any) -> str:
    """One finished trial as a line of text (the live table where there is no terminal)."""
    found = value(trial)
    params = ", ".join(f"{shown(p.name)}={_number(trial.params[p.name])}" for p in sweep.params
                       if p.name in trial.params)
    text = f"trial {trial.number} {state(trial)}"
    if found is not None and state(trial) in ("complete", "pruned"):
        text += f": {shown(sweep.metric)} {found:.4f}"
    text += f" ({params})" if params else ""
    epochs = trial.user_attrs.get("epochs")
    text += f", {epochs} epochs" if epochs else ""
    text += f", {_seconds(trial)}" if _seconds(trial) else ""
    return text + (f"; {shown(note(trial))}" if note(trial) else "")


def best(sweep: Sweep, trials: list[Any]) -> Any | None:
    """The best completed trial (None when none completed)."""
    complete = [t for t in ranked(sweep, trials) if state(t) == "complete"
                and value(t) is not None and math.isfinite(value(t))]
    return complete[0] if complete else None


def write_best(sweep: Sweep, trial: Any) -> Path:
    """``best.yaml``: the best trial's whole config (no sweep section); ``nettrain fit
    best.yaml`` trains it again."""
    values = {p.key: p.value(trial.params[p.name]) for p in sweep.params if p.name in
              trial.params}
    config = trial_config(sweep.config, values)
    header = (f"# The best trial of sweep {sweep.study}: trial {trial.number} "
              f"({trial.user_attrs.get('run', '')}), {sweep.metric} {value(trial):.6g} "
              f"({sweep.direction}).\n# Train it again: nettrain fit best.yaml\n")
    from nettrain.sweep.spec import BEST

    path = sweep.path / BEST
    rundir.write_atomic(path, header + config.to_yaml())
    return path


def plots(sweep: Sweep, study: Any) -> tuple[list[Path], list[str]]:
    """Optuna's optimization history, parameter importances and parallel coordinates as
    PNG files in the sweep directory; returns the files and a note for each plot that could
    not be drawn (importances need two completed trials that differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as draw

    from nettrain.engine.plots import save
    from nettrain.sweep.spec import PLOTS

    target = {"target_name": sweep.metric}
    makers = {"history": lambda: draw.plot_optimization_history(study, **target),
              "importances": lambda: draw.plot_param_importances(study, **target),
              "parallel": lambda: draw.plot_parallel_coordinate(study, **target)}
    written, skipped = [], []
    for kind, make in makers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's "experimental" notes
            try:
                axes = make()
            except Exception as exc:  # too few trials for this plot
                skipped.append(f"{PLOTS[kind]}: not drawn ({' '.join(str(exc).split())})")
                continue
        figure = axes.figure if not hasattr(axes, "flat") else axes.flat[0].figure
        _readable(figure, kind, sweep)
        try:
            written.append(save(figure, sweep.path / PLOTS[kind]))
        finally:
            plt.close(figure)
    return written, skipped


def _readable(figure: Any, kind: str, sweep: Sweep) -> None:
    """Size each plot so its labels do not overlap, and title it with the sweep's names."""
    width = {"parallel": max(9.0, 2.0 * (len(sweep.params) + 1))}.get(kind, 8.0)
    figure.set_size_inches(width, 5.5 if kind == "parallel" else 5.0)
    titles = {"history": f"{sweep.study}: {sweep.metric} of each trial ({sweep.direction})",
              "importances": f"{sweep.study}: how much each value changed {sweep.metric}",
              "parallel": f"{sweep.study}: the values of each trial, coloured by "
                          f"{sweep.metric}"}
    for where in ("left", "center", "right"):  # Optuna's own title is on one of them
        figure.axes[0].set_title("", loc=where)
    figure.axes[0].set_title(titles[kind], pad=14)
    if kind == "parallel":  # Optuna's "Blues" draws the worst trials white on grey: unseen
        for collection in figure.axes[0].collections:
            collection.set_cmap("viridis")
            if getattr(collection, "colorbar", None) is not None:
                collection.colorbar.update_normal(collection)
    if kind == "history":  # trials are whole numbers
        figure.axes[0].xaxis.get_major_locator().set_params(integer=True)
    figure.set_dpi(100)
    figure.tight_layout()


def report(sweep: Sweep, study: Any, console: Any, echo: Any) -> Path:
    """The final table (best first), ``best.yaml`` and the plots; return best.yaml's path.

    RunError when no trial completed (the table says why each failed).
    """
    trials = study.get_trials(deepcopy=False)
    console.print(table(sweep, trials))
    done = sum(1 for t in trials if state(t) in ("complete", "pruned", "failed"))
    if done < sweep.trials:
        echo(f"{done} of {sweep.trials} trials are finished; the others are running "
             "elsewhere (another machine) or were interrupted: run the same command again "
             "to finish them.")
    top = best(sweep, trials)
    if top is None:
        raise RunError(f"No trial of sweep {sweep.study} completed ({done} finished); the "
                       f"table above says why. The logs of each trial are in "
                       f"{sweep.path / 'logs'}.")
    path = write_best(sweep, top)
    echo(f"Best: trial {top.number}, {sweep.metric} {value(top):.4f} "
         f"({sweep.path / top.user_attrs.get('run', '')}); its config: {path}")
    written, skipped = plots(sweep, study)
    for note_text in skipped:
        echo(note_text)
    if written:
        echo("Plots: " + ", ".join(str(p) for p in written))
    return path
