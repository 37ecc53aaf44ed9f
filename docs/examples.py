"""Runs every console example of the site as a user would, through ``python -m nettrain``, and
writes what it printed into docs/snippets/, which the pages include (pymdownx.snippets).

    python docs/examples.py            # run the examples, write docs/snippets/NAME.txt
    python docs/examples.py --check    # run them, exit 1 naming each snippet the code now changes
    python docs/examples.py --slow     # also the slow ones (export, serve, other backends, MLflow)
    python docs/examples.py --slow --only tracking,export    # just these (in order)

The commands run in a scratch folder holding a link to configs/, with runs/ inside it and
KERAS_BACKEND unset (backend: auto decides, as for a new user). Each command is a process of
its own, except the steps marked ``shared`` (commands that train nothing), which run one
after another in one process, each as a fresh process would (see :class:`Shared`). What
varies from run to run is normalised: a run directory's date and time become 20261122-120000,
durations 0.1s, speeds 25,000 samples/s, the scratch folder ``.``. Long outputs are folded
where a step says so ("..."). tests/test_docs.py runs the quick examples and fails when one
prints something else.

Floats are compared to float32's precision (:func:`same_output`): their last digits are the
CPU's (an AVX2 machine adds up in other orders than an AVX-512 one), and a snippet that differs
only there is kept as it is. The quick examples agree so on both kinds of machine here.
Some slow ones do not: 300 epochs of co2_forecast.yaml or the backbone's fine-tuning end in
other digits on an AMD EPYC than on the Intel Xeon that wrote their snippets; write the slow
snippets on one kind of machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
SNIPPETS = DOCS / "snippets"
STAMP = "20261122-120000"
PROJECT = "/home/me/project"  # the scratch folder, where a page shows an absolute path


@dataclass(frozen=True)
class Step:
    """One command, as typed after ``$``; ``{run}`` is the run directory the last fit printed.

    status: the exit status it must end with; fold: a regex of lines (epochs) of which only the
    first ``keep[0]`` and last ``keep[1]`` stay, with "..." between; lines: at most this many
    lines of output, then "..."; width: longer lines are cut with "...";
    shown: the command as the page shows it, when the one run differs (``--port`` of a server);
    shared: run in the one process of such steps (:class:`Shared`; each importing TensorFlow
    alone cost the docs' test about 5 CPU seconds): only a command that trains nothing
    (:data:`SHAREABLE`) whose shown lines leave out "Backend: ...", whose reason there says
    that Keras was already loaded, unless it is the first shared step (the process is new).
    """

    command: str
    status: int = 0
    fold: str | None = None
    keep: tuple[int, int] = (2, 2)
    lines: int | None = None
    width: int | None = None
    shown: str | None = None
    only: str | None = None
    until: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class Example:
    name: str
    steps: tuple[Step, ...]
    slow: bool = False
    files: dict[str, Callable[[], str]] = field(default_factory=dict)


# --- files the examples read -------------------------------------------------------------------

def _new_rows() -> str:
    """Two rows of the built-in digits, as a user's new_rows.csv: the 64 pixel columns."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame.drop(columns="target")
    return frame.head(2).astype(int).to_csv(index=False)


def _titanic() -> str:
    rows = ["Name,Sex,Age,Fare,Survived"]
    for i in range(30):
        age = "" if i in (4, 11) else str(20 + i)
        rows.append(f"Person {i},{'female' if i % 2 == 0 else 'male'},{age},{7.25 + i},{i % 2}")
    return "\n".join(rows) + "\n"


BAD = """\
name: bad
data: {dataset: xor}
model:
  layers:
    - Dence: {units: 10}
    - Dense: {unitz: 1, activation: sigmoid}
compile: {optimizer: adamm, loss: binary_crossentropy}
fit: {epochs: ten}
"""

TITANIC = """\
name: titanic
data: {csv: titanic.csv, target: Survived}
model:
  layers:
    - Dense: {units: 2, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
"""

EPOCHS = r"^Epoch \d+/\d+ "

NEW_REVIEWS = """\
review
"A warm, funny and beautifully acted film."
"Dull, overlong and painfully predictable."
"""


def _co2_rows(first: int, count: int, blank: int | None = None) -> str:
    """``count`` rows of configs/data/co2.csv from row ``first`` (negative: from the end), as
    a user's recent.csv; ``blank``: the index of a row whose co2 cell is left empty."""
    lines = (REPO / "configs" / "data" / "co2.csv").read_text(encoding="utf-8").splitlines()
    rows = lines[1:][first:][:count]
    if blank is not None:
        rows[blank] = rows[blank].split(",")[0] + ","
    return "\n".join([lines[0], *rows]) + "\n"

# The run that export, serve and tracking use (a CSV with class names), and two servers' ports
# off the usual ones so that a server already running does not matter; the page shows the usual.
PORTS = "--port 18501 --grpc-port 18500"

EXAMPLES: tuple[Example, ...] = (
    Example("help", (Step("nettrain --help"),)),
    Example("validate", (Step("nettrain validate configs/xor.yaml", shared=True),)),  # first
    Example("fit", (Step("nettrain fit configs/digits_mlp.yaml", fold=EPOCHS),)),
    Example("evaluate", (Step("nettrain evaluate {run}", fold=r"^│ [1-8] ", keep=(1, 0),
                              shared=True),)),
    Example("predict", (Step("nettrain predict {run} new_rows.csv", width=96, shared=True),),
            files={"new_rows.csv": _new_rows}),
    Example("runs", (Step("nettrain runs"),)),
    Example("init", (Step("nettrain init"), Step("nettrain init mlp-classifier"))),
    Example("config-errors", (Step("nettrain validate bad.yaml", status=2, shared=True),),
            files={"bad.yaml": lambda: BAD}),
    Example("data-problems", (Step("nettrain validate titanic.yaml", status=2, shared=True),),
            files={"titanic.yaml": lambda: TITANIC, "titanic.csv": _titanic}),
    Example("print-config", (Step("nettrain validate configs/digits_mlp.yaml fit.epochs=3 "
                                  "--print-config", only=r"^(#|name:|fit:|  epochs|  batch_size|"
                                                         r"  shuffle|OK )", shared=True),)),
    Example("timeseries-validate", (Step("nettrain validate configs/co2_forecast.yaml",
                                         only=r"^(┃|│ standardize|│ flatten|│ dense|│ series|"
                                              r"OK |predict |date,co2|It forecasts)",
                                         shared=True),)),
    Example("timeseries-mistakes", (
        Step("nettrain validate configs/co2_forecast.yaml data.timeseries.time=dat", status=2,
             shared=True),
        Step("nettrain validate configs/co2_forecast.yaml data.timeseries=null", status=2,
             shared=True),
        Step("nettrain validate configs/co2_forecast.yaml compile.loss=binary_crossentropy",
             status=2, shared=True))),
    Example("text-mistakes", (Step("nettrain validate configs/reviews_text.yaml data.text='[{{review: "
                                   "{{output_mode: multihot, max_tokns: 5}}}}]'", status=2,
                                   shared=True),)),
    Example("text-validate", (Step("nettrain validate configs/reviews_text.yaml",
                                   only=r"^(OK |Backend|predict |review|From |  review|The |Text )"),
                              Step("nettrain fit configs/reviews_text.yaml --backend jax",
                                   status=2))),
    Example("backbone-mistakes", (Step("nettrain validate configs/digits_backbone.yaml "
                                       "model.layers.0.MobileNetV3Small.include_top=true",
                                       status=2, shared=True),)),
    # The slow ones: other backends, export, serve, MLflow (python docs/examples.py --slow).
    Example("backend-jax", (Step("nettrain fit configs/digits_mlp.yaml --backend jax",
                                 fold=EPOCHS),), slow=True),
    Example("tracking", (Step("nettrain fit configs/iris_csv.yaml --track "
                              "sqlite:///{scratch}/runs/mlflow.db", fold=EPOCHS),
                         Step("nettrain runs --from sqlite:///{scratch}/runs/mlflow.db")),
            slow=True),
    # export and serve: {run} is the last fit's, iris_csv's just above (their pages' snippets;
    # placed after the backbone's fit, serve served that run)
    Example("export", (Step("nettrain export {run} --format onnx -o iris.onnx"),
                       Step("nettrain export {run} --format keras")), slow=True),
    Example("serve", (Step(f"nettrain serve {{run}} {PORTS}", until=r"^Ctrl-C stops",
                           shown="nettrain serve {run}"),), slow=True),
    Example("timeseries-fit", (Step("nettrain fit configs/co2_forecast.yaml", fold=EPOCHS),),
            slow=True),
    Example("timeseries-evaluate", (Step("nettrain evaluate {run}"),), slow=True),
    Example("timeseries-predict", (Step("nettrain predict {run} recent.csv"),), slow=True,
            files={"recent.csv": lambda: _co2_rows(-55, 55)}),
    Example("timeseries-predict-errors", (Step("nettrain predict {run} few.csv", status=2),
                                          Step("nettrain predict {run} gap.csv", status=2)),
            slow=True, files={"few.csv": lambda: _co2_rows(-2, 2),
                              "gap.csv": lambda: _co2_rows(0, 60, blank=0)}),
    Example("timeseries-backends", tuple(
        step for backend in ("jax", "torch") for step in (
            Step(f"nettrain fit configs/co2_forecast.yaml fit.epochs=3 --backend {backend}",
                 only=r"^Backend "),
            Step("nettrain predict {run} recent.csv", only=r"True$"))), slow=True,
            files={"recent.csv": lambda: _co2_rows(-55, 55)}),
    Example("text-fit", (Step("nettrain fit configs/reviews_text.yaml", fold=EPOCHS,
                              only=r"^(Run |Epoch|┏|┃|┡|│|└)"),
                         Step("nettrain predict {run} new_reviews.csv"),
                         Step("nettrain export {run} --format tflite", status=2)), slow=True,
            files={"new_reviews.csv": lambda: NEW_REVIEWS}),
    Example("backbone-weights", (Step("nettrain fit configs/digits_backbone.yaml "
                                      "model.layers.0.MobileNetV3Small.weights=imagenet",
                                      status=1),), slow=True),
    Example("backbone", (Step("nettrain fit configs/digits_backbone.yaml", fold=EPOCHS),
                         Step("nettrain export {run} --format onnx"),
                         Step("nettrain export {run} --format tflite"),
                         Step("nettrain export {run} --format savedmodel")), slow=True),
)


# --- running and normalising -------------------------------------------------------------------

def normalise(text: str, scratch: Path) -> str:
    """What varies from run to run made fixed: the scratch folder, dates, durations, speeds."""
    text = text.replace(f"sqlite:///{scratch}", f"sqlite:///{PROJECT}")  # an absolute path
    text = text.replace(str(scratch) + os.sep, "").replace(str(scratch), ".")
    text = re.sub(r"\b\d{8}-\d{6}\b", STAMP, text)
    text = re.sub(r"\b2\d{3}-\d\d-\d\d \d\d:\d\d\b", "2026-11-22 12:00", text)
    text = re.sub(r"(Epoch \d+/\d+) - [\d.]+s - [\d,]+ samples/s", r"\1 - 0.1s - 25,000 samples/s",
                  text)
    text = re.sub(r"(Wall time +)[\d.]+s", r"\g<1>5.0s", text)
    text = re.sub(r"\b[0-9a-f]{32}\b", "6a1f0c27d4b94b8e9f3c2d1e0a5b7c68", text)  # MLflow run ids
    text = text.replace(":18501", ":8501").replace(":18500", ":8500")
    return text


def shape(output: str, step: Step) -> str:
    """The output as the page shows it: folded, cut to its lines and width."""
    lines = output.rstrip("\n").split("\n") if output.strip() else []
    if step.fold:
        matching = [i for i, line in enumerate(lines) if re.search(step.fold, line)]
        head, tail = step.keep
        dropped = matching[head:len(matching) - tail] if len(matching) > head + tail else []
        if dropped:
            lines = lines[:dropped[0]] + ["..."] + lines[dropped[-1] + 1:]
    if step.only:
        shown: list[str] = []
        for line in lines:
            if re.search(step.only, line):
                shown.append(line)
            elif not shown or shown[-1] != "...":
                shown.append("...")
        lines = shown
    if step.lines is not None and len(lines) > step.lines:
        lines = lines[:step.lines] + ["..."]
    if step.width is not None:
        lines = [line if len(line) <= step.width else line[:step.width - 3] + "..."
                 for line in lines]
    return "\n".join(lines)


def environment(scratch: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("KERAS_BACKEND", "NETTRAIN_RUNS", "MLFLOW_TRACKING_URI", "COLUMNS",
                          "TF_CPP_MIN_LOG_LEVEL")}
    env.update(NETTRAIN_RUNS="runs", PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]), COLUMNS="80",
        TERM="dumb", NO_COLOR="1", KERAS_HOME=str(scratch / ".keras"))  # Keras's cache: empty
    return env


def run_example(example: Example, scratch: Path, state: dict[str, str],
                shared: Shared | None = None) -> str:
    """Run the example's commands in ``scratch`` (the ``shared`` ones in ``shared``, when
    given); return its snippet's text."""
    for name, make in example.files.items():
        (scratch / name).write_text(make(), encoding="utf-8")
    blocks = []
    for step in example.steps:
        command = step.command.format(**state)
        argv = [sys.executable, "-m", "nettrain", *shlex.split(command)[1:]]
        assert command.startswith("nettrain "), command
        if step.until:
            status, output = _serve(argv, scratch, step.until)
        elif shared is not None and step.shared:
            assert argv[3] in SHAREABLE, command
            status, output = shared.run(argv[3:])
        else:
            done = subprocess.run(argv, cwd=scratch, env=environment(scratch),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=600)
            status, output = done.returncode, done.stdout
        if status != step.status:
            raise RuntimeError(f"{example.name}: '{command}' exited {status}, expected "
                               f"{step.status}:\n{output[-3000:]}")
        found = re.search(r"^(runs/\S+/\d{8}-\d{6})$", output, re.MULTILINE)
        if argv[3] == "fit" and found:
            state["run"] = found.group(1)
        shown = normalise(step.shown.format(**state) if step.shown else command, scratch)
        blocks.append(f"$ {shown}\n" + shape(normalise(output, scratch), step))
        if step.shared and "Keras was already loaded" in blocks[-1]:
            raise RuntimeError(f"{example.name}: '{command}' shows the reason of the backend "
                               "in the shared process: give it a process of its own (no shared)")
    return "\n\n".join(block.rstrip("\n") for block in blocks) + "\n"


SHAREABLE = ("validate", "evaluate", "predict")

# Runs each command it reads on stdin (JSON: the arguments after "nettrain", the output file)
# as `python -m nettrain` does, its stdout and stderr (the file descriptors, so what C++ code
# prints too) going to that file as they go to one pipe from a process of its own; then
# writes the exit status to its own stdout. Between commands it puts back what a new process
# would start with: the folder, the environment, Keras's names (dense, dense_1, ...) and the
# warnings already shown once.
RUNNER = r"""
import json, os, runpy, sys, traceback, warnings

reply = os.fdopen(os.dup(1), "w")
home, env, filters = os.getcwd(), dict(os.environ), warnings.filters[:]
for line in sys.stdin:
    args, out = json.loads(line)
    if "keras" in sys.modules:
        import keras
        keras.utils.clear_session()
    os.chdir(home)
    os.environ.clear()
    os.environ.update(env)
    warnings.filters[:] = filters
    warnings._filters_mutated()
    saved = os.dup(1), os.dup(2)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = ["nettrain", *args]
    try:
        runpy.run_module("nettrain", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as end:
        status = end.code if isinstance(end.code, int) else 0 if end.code is None else 1
        if not isinstance(end.code, (int, type(None))):
            print(end.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    reply.write(f"{status}\n")
    reply.flush()
"""


class Shared:
    """The process that runs the ``shared`` steps (:data:`RUNNER`), started at the first."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.process: subprocess.Popen | None = None

    def run(self, args: list[str]) -> tuple[int, str]:
        if self.process is None:
            self.process = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=self.scratch,
                                            env=environment(self.scratch), text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out = self.scratch / ".shared-output"
        line = json.dumps([args, str(out)]) + "\n"
        self.process.stdin.write(line)  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        timer = threading.Timer(600, self.process.kill)  # as subprocess.run's timeout
        timer.start()
        try:
            status = self.process.stdout.readline()  # type: ignore[union-attr]
        finally:
            timer.cancel()
        if not status:
            raise RuntimeError(f"the process of the shared steps ended at {args}")
        return int(status), out.read_text(encoding="utf-8")

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(timeout=60)


def _serve(argv: list[str], scratch: Path, until: str) -> tuple[int, str]:
    """Start a server, read its output up to the line matching ``until``, then Ctrl-C it;
    return its exit status and that output."""
    import signal

    server = subprocess.Popen(argv, cwd=scratch, env=environment(scratch), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in server.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if re.search(until, line):
                break
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return server.returncode, "".join(lines)


def run_all(examples: tuple[Example, ...] = EXAMPLES, slow: bool = False,
            only: set[str] | None = None) -> dict[str, str]:
    """Run the examples (the quick ones, or all; or those named) in order; return each
    snippet's text by name."""
    chosen = [e for e in examples if (slow or not e.slow) and (only is None or e.name in only)]
    texts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nettrain-docs-") as folder:
        scratch = Path(folder).resolve()
        state = {"scratch": str(scratch)}
        (scratch / "configs").symlink_to(REPO / "configs")
        shared = Shared(scratch)
        try:
            for example in chosen:
                texts[example.name] = run_example(example, scratch, state, shared)
        finally:
            shared.close()
    return texts


def snippet(name: str) -> Path:
    return SNIPPETS / f"{name}.txt"


# A number as the commands print it; a float has a point or an exponent.
NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:e[-+]\d+)?)")
# export's check of a format against the run's model prints the rounding between two runtimes,
# which is itself the CPU's: 1.89e-06 relative on an Intel Xeon, 3.93e-06 on an AMD EPYC. Its
# limit (the "allowed" that follows) is compared as written.
ROUNDING = re.compile(r"largest difference \S+ absolute, \S+ relative")


def same_output(expected: str, received: str) -> bool:
    """The same text, but floats compared to float32's precision: the last of their 7 digits
    can differ between CPUs (a matrix kernel of AVX2 adds up in another order than one of
    AVX-512). A line cut at the page's width ("...") is compared up to the number before its
    last one, which the cut may have shortened (4.682170e-07 prints as 4.68217e-07). An
    export check's measured rounding (:data:`ROUNDING`) is the CPU's and is not compared."""
    old, new = (ROUNDING.sub("largest difference (a rounding)", text).splitlines()
                for text in (expected, received))
    if len(old) != len(new):
        return False
    for a, b in zip(old, new):
        if a == b:
            continue
        pa, pb = NUMBER.split(a), NUMBER.split(b)  # text, number, text, ..., text
        if a.endswith("...") and b.endswith("..."):
            keep = 2 * (min(len(pa), len(pb)) // 2 - 1)
            pa, pb = pa[:keep], pb[:keep]
        if len(pa) != len(pb) or pa[0::2] != pb[0::2]:
            return False
        for x, y in zip(pa[1::2], pb[1::2]):
            if x != y and not ({".", "e"} & set(x + y) and
                               abs(float(x) - float(y)) <= 1e-5 * abs(float(y)) + 1e-9):
                return False
    return True


def differences(texts: dict[str, str]) -> list[str]:
    """The snippets whose checked-in text is not what the commands print now
    (:func:`same_output`)."""
    return [name for name, text in texts.items() if not snippet(name).is_file() or
            not same_output(snippet(name).read_text(encoding="utf-8"), text)]


MARKED = re.compile(r"<!-- (snippet|file): (\S+) -->\n```(\w+)\n.*?```\n", re.DOTALL)


def synced_readme(text: str, snippets: dict[str, str] | None = None) -> str:
    """README.md with each marked block holding what it names: ``<!-- snippet: fit -->`` the
    snippet's text (``snippets``, else the file in docs/snippets/), ``<!-- file: PATH -->`` the
    repository's file. GitHub shows no includes, so the README carries copies, kept equal."""
    def fill(found: re.Match[str]) -> str:
        kind, name, language = found.groups()
        if kind == "snippet":
            body = (snippets or {}).get(name) or snippet(name).read_text(encoding="utf-8")
        else:
            body = (REPO / name).read_text(encoding="utf-8")
        return f"<!-- {kind}: {name} -->\n```{language}\n{body.rstrip()}\n```\n"

    return MARKED.sub(fill, text)


def main(argv: list[str]) -> int:
    slow = "--slow" in argv
    only = set(argv[argv.index("--only") + 1].split(",")) if "--only" in argv else None
    texts = run_all(slow=slow, only=only)
    if "--check" in argv:
        stale = differences(texts)
        for name in stale:
            print(f"docs/snippets/{name}.txt: the command now prints something else; run "
                  f"python docs/examples.py{' --slow' if slow else ''}", file=sys.stderr)
        return 1 if stale else 0
    SNIPPETS.mkdir(exist_ok=True)
    for name in differences(texts):  # a snippet the same but a float's last digits is kept
        snippet(name).write_text(texts[name], encoding="utf-8")
        print(f"docs/snippets/{name}.txt")
    readme = REPO / "README.md"
    readme.write_text(synced_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
    print("README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
