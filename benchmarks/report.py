"""BENCHMARKS.md from the JSON records of ``perf.py`` (so the figures cannot drift from them).

``perf.py all`` calls :func:`write_report` at its end; ``perf.py report`` calls it on the
records already in ``--out``, without running anything.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

NAMES = ("mnist", "cnn", "xor", "digits", "startup", "predict", "serve_load", "backends",
         "tracking_cost", "backend_auto", "fit_phases")
# serve_load.py's other runs, each a table under serve_load's (a cheaper client, more rows a
# request, 100,000 requests).
SERVE_MORE = ("serve_load_raw", "serve_load_rows100", "serve_load_rows100_raw",
              "serve_load_rows1000", "serve_load_100k", "serve_load_100k_raw",
              "serve_load_3x50k_raw")
# serve_load.py --plain: nettrain serve against a plain FastAPI server (issue 27).
SERVE_PLAIN = ("serve_plain", "serve_plain_on_batch")
SERVE_PLAIN_GOAL = 2.0  # issue 27: at 64 clients, at least 2x the plain server's rows/s
# fit_phases.py's other records (issue 27): the seed MNIST MLP (8, 4, 2 epochs) on each
# backend and the plain script, the small CNN against its plain script.
PHASES_MORE = ("fit_phases_mnist", "fit_phases_mnist4", "fit_phases_mnist2", "fit_phases_cnn")

# Issue 9's targets: the largest ratio nettrain / plain (whole process) each may have.
RATIO_GOALS = {"mnist": 1 / 1.3, "cnn": 1.0, "xor": 1.1, "digits": 1.1, "predict": 1.0}
SAMPLES_GOAL = 1.5  # MNIST: nettrain's samples/s at least 1.5x the plain script's
HELP_GOAL = 0.3  # seconds, nettrain --help
MEMORY_GOAL = 0.10  # predict: peak RSS on 10x the rows at most 10 % above
SERVE_GOAL = 0.5  # issue 18: nettrain serve at 64 clients, rows/s at least half model.predict's
TRACKING_GOAL = 1.25  # issue 25: a tracked fit of XOR at most 25 % longer than an untracked one
README_JOB_GOAL = 5.0  # issue 27: seconds of the README's main job, whole process


def read_records(folder: Path) -> dict[str, dict[str, Any]]:
    """The records of ``NAMES`` in ``folder`` (``<name>.json``), those that exist."""
    return {name: json.loads((folder / f"{name}.json").read_text())
            for name in (*NAMES, *SERVE_MORE, *SERVE_PLAIN, *PHASES_MORE)
            if (folder / f"{name}.json").is_file()}


def write_report(records: dict[str, dict[str, Any]], path: Path, command: str) -> None:
    """Write BENCHMARKS.md to ``path``: every target of issue 9, its figures, ratio, goal and
    whether it is met, with the machine, the versions and the command that made them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(records, command))


def render(records: dict[str, dict[str, Any]], command: str) -> str:
    records = dict(records)
    serve_more = [records.pop(name) for name in SERVE_MORE if name in records]
    serve_plain = [records.pop(name) for name in SERVE_PLAIN if name in records]
    phases_more = [records.pop(name) for name in PHASES_MORE if name in records]
    first = next(iter(records.values()))
    m = first["machine"]
    small = any(r.get("small") for r in records.values())
    lines = [
        "# Benchmarks: nettrain against the plain Keras script (issue 9)", "",
        "Generated from the JSON records in `benchmarks/results/` by",
        f"`{command}`; do not edit by hand. Regenerate this page from the records alone with",
        "`python benchmarks/perf.py report`. What limits each figure, and how each comparison",
        "is made: `benchmarks/README.md`.", "",
    ]
    if small:
        lines += ["**Tiny sizes (`--small`): these figures are only a check that every "
                  "benchmark runs; they mean nothing.**", ""]
    lines += [
        f"Machine: {m['cpu']}, {m['cores']} cores{' (AVX-512)' if m.get('avx512') else ''}, "
        f"{m['memory_gib']} GiB, {m['platform']}; Python {m['python']}, TensorFlow "
        f"{m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}.",
        f"Each comparison runs nettrain and the plain script as separate processes, alternating "
        f"the sides, {first.get('pairs')} pair(s); the figures are medians, the ratio is "
        "nettrain / plain (below 1: nettrain is faster). The load average (1 minute) before and "
        "after each benchmark says how quiet the machine was.", "",
        "| target | measure | nettrain | plain Keras | ratio nettrain / plain | goal | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *_rows(records), "", *_backend_rows(records.get("backends")),
        *_auto_rows(records.get("backend_auto")),
        "Each benchmark's work, peak memory and spread:", "",
        "| benchmark | work | peak RSS nettrain / plain | seconds, fastest-slowest: nettrain; "
        "plain | load average before, after |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in records.items():
        if "median" not in r:
            continue
        med, spread = r["median"], r.get("spread_seconds", {})
        lines.append(
            f"| {name} | {r['work']} | {med['nettrain']['peak_rss_mib']:.0f} / "
            f"{med['plain_keras']['peak_rss_mib']:.0f} MiB | "
            f"{_span(spread.get('nettrain'))}; {_span(spread.get('plain_keras'))} | "
            f"{_load(r)} |")
    if "serve_load" in records:
        lines += ["", *_serve(records["serve_load"])]
        for more in serve_more:
            lines += ["", *_serve(more)[2:]]
    if serve_plain:
        lines += ["", *_serve_plain(serve_plain)]
    if "tracking_cost" in records:
        lines += ["", *_tracking(records["tracking_cost"])]
    if "fit_phases" in records:
        lines += ["", *_phases(records["fit_phases"])]
    for more in phases_more:
        lines += ["", *_phases(more, goal=False)]
    lines += ["", "Commands (each writes `benchmarks/results/<name>.json`):", ""]
    for name, r in records.items():
        lines.append(f"- {name}: `{r['command']}`")
    for r in serve_more + serve_plain:
        lines.append(f"- serve_load: `{r['command']}`")
    for r in phases_more:
        lines.append(f"- fit_phases: `{r['command']}`")
    return "\n".join(lines) + "\n"


def _samples_row(r: dict[str, Any], goal: float | None = None) -> list[str]:
    """The row of samples/s after the first epoch, against ``goal`` (a speed-up) if any;
    none when a side has no figure."""
    nt = r["median"]["nettrain"].get("samples_per_second")
    plain = r["median"]["plain_keras"].get("samples_per_second")
    if not (nt and plain):
        return []
    speedup = nt / plain
    target = f"at least {goal}x | {_met(speedup >= goal)}" if goal else "- | -"
    return [f"| | samples/s of the epochs after the first | {nt:,} | {plain:,} | "
            f"{speedup:.2f}x faster | {target} |"]


def _rows(records: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    r = records.get("mnist")
    if r:
        rows.append(_whole("1. seed MNIST MLP", r, RATIO_GOALS["mnist"], "at least 1.3x faster"))
        rows += _samples_row(r, SAMPLES_GOAL)
        nt = r["median"]["nettrain"].get("samples_per_second")
        if "samples_per_second_limit" in r and nt:
            limit = r["samples_per_second_limit"]
            bound = "the machine's float32 matmul limit" if "shapes" in r["matmul"] else \
                ("the old matmul figure (one TF shape: not an upper bound; see the backends "
                 "table)")
            rows.append(f"| | {bound} | {limit:,} samples/s "
                        f"({r['matmul']['gflops']} GFLOP/s) | | nettrain at "
                        f"{nt / limit:.0%} of it | how close | - |")
    r = records.get("cnn")
    if r:
        rows.append(_whole("2. small CNN", r, RATIO_GOALS["cnn"], "no slower"))
        rows += _samples_row(r)
    for name, label in (("xor", "3. XOR, 1,000 epochs"), ("digits", "3. digits_mlp.yaml")):
        if name in records:
            rows.append(_whole(label, records[name], RATIO_GOALS[name], "within 1.1x"))
    r = records.get("startup")
    if r:
        help_s = r["help_median_seconds"]
        imports = r["imports_seconds_by_top_level_package"]
        rows.append(f"| 4. start-up | `nettrain --help`, median of {len(r['help_seconds'])} | "
                    f"{help_s:.3f} s | | | under {HELP_GOAL} s, no Keras or TensorFlow | "
                    f"{_met(help_s < HELP_GOAL and not imports['help_keras_or_tensorflow'])} |")
        top = ", ".join(f"{k} {v:.2f} s" for k, v in list(imports["validate"].items())[:6])
        rows.append(f"| | what `validate` imports (-X importtime) | {top} | | | nothing it "
                    "does not use | see README |")
    r = records.get("predict")
    if r:
        rows.append(_whole("5. predict", r, RATIO_GOALS["predict"], "no slower"))
        rows += _cpu_row(r)
        mem = r.get("memory")
        if mem:
            a, b = mem["peak_rss_mib"]
            rows.append(f"| | nettrain's peak RSS on {mem['rows'][0]:,} and "
                        f"{mem['rows'][1]:,} rows | "
                        f"{a:.0f} and {b:.0f} MiB | | {mem['growth']:+.0%} | bounded (at most "
                        f"{MEMORY_GOAL:+.0%}) | {_met(mem['growth'] <= MEMORY_GOAL)} |")
    return rows


def _auto_rows(r: dict[str, Any] | None) -> list[str]:
    """``backend_order.py --whole`` (issue 25): each job as a whole ``nettrain fit`` process
    on each backend, the backend ``auto`` picked, and what each gives."""
    if not r:
        return []
    sides = ("tensorflow", "jax", "torch", "auto")
    lines = [
        "## backend: auto, whole processes (issue 25)", "",
        f"`{r['command']}`: every example in configs/ as a whole `nettrain fit CONFIG "
        "--backend B -q` process on each backend, and `auto` (no `--backend`), the sides' "
        f"order rotated job after job; {r['rounds']} round(s), medians. Each cell: wall "
        "seconds / CPU seconds (user + system; on a busy machine the CPU time is the steadier "
        "figure) and the test metric (accuracy, else mae, else loss; the validation split's "
        "where there is no test split). Load average (1 minute) at the start and the end: "
        f"{', '.join(str(x) for x in r['load_average'])}.", "",
        "| job | " + " | ".join(sides) + " | auto picked |",
        "| --- | " + " | ".join("---" for _ in sides) + " | --- |"]
    for name, by_side in r["runs"].items():
        cells = []
        for side in sides:
            done = by_side.get(side)
            if not done:
                cells.append("-")
                continue
            if any(d["rc"] != 0 for d in done):
                cells.append(f"refused (exit {done[0]['rc']})" if done[0]["rc"] == 2 else
                             f"failed (exit {done[0]['rc']})")
                continue
            wall = statistics.median(d["seconds"] for d in done)
            cpu = statistics.median(d["cpu_seconds"] for d in done)
            metrics = done[0].get("metrics") or {}
            key = next((k for k in ("accuracy", "mae", "loss") if k in metrics), None)
            shown = f", {key} {metrics[key]:.4g}" if key else ""
            note = " (keras, json)" if done[0].get("formats") else ""
            cells.append(f"{wall:.1f} / {cpu:.1f} s{shown}{note}")
        auto = (by_side.get("auto") or [{}])[0]
        cells.append(auto.get("backend") or "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


# Issue 20's goals (benchmark ``backends``): nettrain on its fastest backend (JAX, the fused
# path) against the plain TensorFlow script, and each backend against its own plain script.
GOALS_20 = {"mnist_whole": 1.5, "mnist_samples": 1.3, "cnn_whole": 1.2}


def _backend_rows(r: dict[str, Any] | None) -> list[str]:
    """The table of issue 20's goals: speed-ups (plain / nettrain, above 1: nettrain faster)."""
    if not r:
        return []
    mnist, cnn = r["mnist"]["median"], r["cnn"]["median"]

    def whole(m: dict[str, Any], side: str, against: str) -> float:
        return m[against]["seconds"] / m[side]["seconds"]

    def rate(m: dict[str, Any], side: str) -> int:
        return m[side].get("samples_per_second") or 0

    best_tf = max(rate(mnist, "plain_keras"), rate(mnist, "plain_keras_spe32"))
    nt = rate(mnist, "nettrain_jax")
    limit = r["samples_per_second_limit"]
    rows = ["## Backends and speed (issue 20)", "",
            f"`{r['command']}`: every side alternated in one run, {r.get('pairs')} pair(s), "
            f"medians; load average {_load(r)} (before, after). nettrain on JAX takes the "
            "fused path (an epoch a compiled call). Speed-ups are plain / nettrain (above 1: "
            "nettrain faster).", "",
            "| target | measure | figures | goal | met |", "| --- | --- | --- | --- | --- |"]
    s = whole(mnist, "nettrain_jax", "plain_keras")
    rows.append(f"| seed MNIST MLP | whole process, nettrain on JAX vs the plain TF script | "
                f"{mnist['nettrain_jax']['seconds']:.1f} s vs {mnist['plain_keras']['seconds']:.1f}"
                f" s: **{s:.2f}x** | at least {GOALS_20['mnist_whole']}x | "
                f"{_met(s >= GOALS_20['mnist_whole'])} |")
    rows.append(f"| | samples/s after the first epoch vs Keras-on-TF's best (steps_per_execution "
                f"1 or 32) | {nt:,} vs {best_tf:,}: **{nt / best_tf:.2f}x**; Keras on JAX "
                f"(32): {rate(mnist, 'plain_jax_spe32'):,}; nettrain on TF: "
                f"{rate(mnist, 'nettrain'):,} | at least {GOALS_20['mnist_samples']}x | "
                f"{_met(nt >= GOALS_20['mnist_samples'] * best_tf)} |")
    rows.append(f"| | share of the upper bound (best GEMM rate {r['matmul']['gflops']} GFLOP/s "
                f"over 1.598 MFLOP a sample) | {limit:,} samples/s: nettrain on JAX at "
                f"**{nt / limit:.0%}** | stated | - |")
    s = whole(cnn, "nettrain_jax", "plain_keras")
    rows.append(f"| small CNN | whole process, nettrain on JAX vs the plain TF script | "
                f"{cnn['nettrain_jax']['seconds']:.1f} s vs {cnn['plain_keras']['seconds']:.1f} s:"
                f" **{s:.2f}x** | at least {GOALS_20['cnn_whole']}x | "
                f"{_met(s >= GOALS_20['cnn_whole'])} |")
    for label, m in (("seed MNIST MLP", mnist), ("small CNN", cnn)):
        for backend, side, plain in (("TensorFlow", "nettrain", "plain_keras"),
                                     ("JAX", "nettrain_jax", "plain_jax")):
            s = whole(m, side, plain)
            rows.append(f"| {label} | whole process on {backend}, nettrain vs the plain script "
                        f"on it | {m[side]['seconds']:.1f} s vs {m[plain]['seconds']:.1f} s: "
                        f"**{s:.2f}x** | no slower | {_met(s >= 1.0)} |")
    rows.append("| | on PyTorch | not measured: backend selection (and nettrain on torch) is "
                "another branch of issue 20 | no slower | - |")
    rows.append("| GPU, MLP batch 128 | samples/s vs plain `fit` | not measured: no GPU machine "
                "was lent to this session | at least 10x | - |")
    return [*rows, ""]


def _whole(label: str, r: dict[str, Any], goal: float, goal_text: str) -> str:
    nt, plain = r["median"]["nettrain"]["seconds"], r["median"]["plain_keras"]["seconds"]
    ratio = nt / plain
    faster = f" ({plain / nt:.2f}x faster)" if ratio < 1 else ""
    return (f"| {label} | whole process | {nt:.1f} s | {plain:.1f} s | **{ratio:.2f}**{faster} | "
            f"{goal_text} (ratio at most {goal:.2f}) | {_met(ratio <= goal)} |")


def _cpu_row(r: dict[str, Any]) -> list[str]:
    """The CPU seconds (user + system, all threads) of each side, where recorded: on a
    shared machine the steadier figure."""
    nt, plain = r["median"]["nettrain"], r["median"]["plain_keras"]
    if "cpu_seconds" not in nt or "cpu_seconds" not in plain:
        return []
    ratio = nt["cpu_seconds"] / plain["cpu_seconds"]
    return [f"| | CPU seconds (user + system) | {nt['cpu_seconds']:.1f} s | "
            f"{plain['cpu_seconds']:.1f} s | {ratio:.2f} | - | - |"]


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _span(values: list[float] | None) -> str:
    return f"{min(values):.1f}-{max(values):.1f} s" if values else "-"


def _load(r: dict[str, Any]) -> str:
    load = r.get("load_average")
    return f"{load[0]:.1f}, {load[1]:.1f}" if load else "-"


def _serve(r: dict[str, Any]) -> list[str]:
    """Issue 18's load test of ``nettrain serve`` (``serve_load.py``), one row per level."""
    m, note = r["machine"], f"; {r['note']}" if r.get("note") else ""
    lines = ["## nettrain serve under load (issue 18)", "",
             f"{r['work']}{note}. Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, load average "
             + (f"at the start {', '.join(f'{v:.1f}' for v in m['load_average_start'])}, "
                if "load_average_start" in m else "") +
             f"at the end {', '.join(f'{v:.1f}' for v in m['load_average_end'])} (the client, "
             "the server and model.predict share the CPUs).", "",
             "| clients | requests/s | rows/s | p50 | p99 | failed | rows a model call | "
             "CPU ms a request: server, client | model.predict rows/s | ratio | goal | met | "
             "server RSS before, after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for clients, v in r["levels"].items():
        goal = clients == "64"
        lines.append(
            f"| {clients} | {v['requests_per_second']:,} | {v['rows_per_second']:,} | "
            f"{v['p50_ms']} ms | {v['p99_ms']} ms | {v['failed']} of {v['requests']:,} | "
            f"{v.get('rows_per_model_call', '-')} | {v.get('server_cpu_ms_per_request', '-')}, "
            f"{v.get('client_cpu_ms_per_request', '-')} | {v['model_predict_rows_per_second']:,} | "
            f"{v['ratio_to_model_predict']:.4f} | {f'at least {SERVE_GOAL}' if goal else '-'} | "
            f"{_met(v['ratio_to_model_predict'] >= SERVE_GOAL) if goal else '-'} | "
            f"{v['rss_mib_before']:.0f}, {v['rss_mib_after']:.0f} MiB |")
    return lines


def _tracking(r: dict[str, Any]) -> list[str]:
    """Issue 25: what tracking in MLflow adds to a whole fit (``tracking_cost.py``)."""
    wall, cpu = r["median_wall_s"], r["median_cpu_s"]
    before = r["load_average_before"]
    after = r["load_average_after"]
    lines = ["## Tracking in MLflow (issue 25)", "",
             f"{r['work']}, {r['pairs']} pair(s), medians. Load average (1, 5, 15 minutes) "
             f"before {', '.join(f'{v:.1f}' for v in before)}, after "
             f"{', '.join(f'{v:.1f}' for v in after)} on {r['machine']['cpus']} CPUs: the "
             "wall seconds are those of a crowded machine; the CPU seconds (user + system, every "
             "thread) blur least.", "",
             "| side | wall s (each) | median | CPU s (each) | median | ratio to untracked: "
             "wall, CPU | goal | met |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for side, runs in r["wall_cpu_s"].items():
        ratio = "-" if side == "untracked" else \
            f"**{wall[side] / wall['untracked']:.2f}**, {cpu[side] / cpu['untracked']:.2f}"
        goal = side == "tracked"
        lines.append(f"| {side} | {', '.join(f'{w:.1f}' for w, _ in runs)} | {wall[side]:.1f} | "
                     f"{', '.join(f'{c:.1f}' for _, c in runs)} | {cpu[side]:.1f} | {ratio} | "
                     f"{f'wall at most {TRACKING_GOAL}' if goal else '-'} | "
                     f"{_met(wall[side] / wall['untracked'] <= TRACKING_GOAL) if goal else '-'} |")
    first = r.get("first_tracked_new_store_wall_cpu_s")
    if first:
        lines += ["", f"The first tracked run, which creates the store (MLflow builds a new "
                      f"database's tables), took {first[0]:.1f} s ({first[1]:.1f} s CPU); not in "
                      "the pairs."]
    return lines


def _serve_plain(records: list[dict[str, Any]]) -> list[str]:
    """Issue 27: nettrain serve against a plain FastAPI server of the same model
    (``serve_load.py --plain``), a row per record and level."""
    lines = ["## nettrain serve against a plain FastAPI server (issue 27)", "",
             "The same client and bodies drive both servers, alternating; rows/s is each side's "
             "best, the CPU ms a request its server's least (user + system, steadier than the "
             "wall under load).", "",
             "| plain server | clients | rows/s each: nettrain; plain | ratio (each pair) | "
             "server CPU ms a request: nettrain, plain | goal | met | load average start, end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        m, plain = r["machine"], r["work"].split("model.", 1)[1].split(" ", 1)[0]
        load = f"{m['load_average_start'][0]:.1f}, {m['load_average_end'][0]:.1f}"
        for clients, v in r["levels"].items():
            each = {n: ", ".join(f"{x['rows_per_second']:,}" for x in runs)
                    for n, runs in v["runs"].items()}
            cpu = v["server_cpu_ms_per_request"]
            goal = clients == "64"
            lines.append(
                f"| FastAPI + model.{plain} | {clients} | {each['nettrain']}; {each['plain']} | "
                f"**{v['ratio']}x** ({', '.join(f'{x}x' for x in v['ratios_by_pair'])}) | "
                f"{cpu['nettrain']}, {cpu['plain']} | "
                f"{f'at least {SERVE_PLAIN_GOAL}x' if goal else '-'} | "
                f"{_met(v['ratio'] >= SERVE_PLAIN_GOAL) if goal else '-'} | {load} |")
    return lines


def _crowded(loads: list[list[float]]) -> str:
    """What the load average says of a record's wall seconds (2 CPUs)."""
    if max(v[0] for v in loads) < 2:
        return " (a quiet machine)"
    return ": the wall seconds are those of a crowded machine, the CPU seconds blur least"


def _phases(r: dict[str, Any], goal: bool = True) -> list[str]:
    """Issue 27: where a whole ``nettrain fit`` spends its time (``fit_phases.py``); with
    ``goal``, against the README's job's goal."""
    from fit_phases import PHASES

    load = ", ".join(f"{v[0]:.1f}" for v in r["load_average"])
    lines = ["## Where a whole fit's time goes (issue 27)" + ("" if goal else
             f": {Path(r['config']).stem}"), "",
             f"`nettrain fit {r['config']} -q` as whole processes, {r['pairs']} pair(s), "
             "medians; `this` is the checkout measured, `baseline` "
             f"{r.get('baseline_src') or 'none'}; `tensorflow only`: JAX and PyTorch hidden "
             "(the README's first install); `every extra`: `auto`, on TensorFlow unless the row "
             "says; `this, NAME`: with `--backend NAME`; a JAX run, "
             "`auto`'s too, with an empty compile cache each run (a first run), `jax warm` with a "
             "filled one; `plain script`: the plain Keras script (start-up: until `import keras` "
             "returns; data: until `fit`); `mnist`, `cnn`: perf.py's jobs (`:N`: N epochs). "
             "Each cell: wall / CPU seconds (user + system, every thread). Load "
             f"average (1 minute) before and after: {load} on 2 CPUs"
             f"{_crowded(r['load_average'])}.", "",
             f"| side | whole process | {' | '.join(PHASES)} |" +
             (" goal (wall) | met |" if goal else ""),
             "| --- " * (len(PHASES) + (4 if goal else 2)) + "|"]
    for side, m in r["by_side"].items():
        cells = " | ".join(f"{w:.2f} / {c:.2f}" for w, c in
                           (m["phases"][p] for p in PHASES))
        on = f" (on {m['backend']})" if m.get("backend", "-") not in \
            ("-", "tensorflow", *side.split()) else ""  # auto's, where not TensorFlow
        lines.append(f"| {side}{on} | **{m['seconds']:.1f}** / {m['cpu_seconds']:.1f} | {cells} |" +
                     (f" under {README_JOB_GOAL:.0f} s | "
                      f"{_met(m['seconds'] < README_JOB_GOAL)} |" if goal else ""))
    return lines
