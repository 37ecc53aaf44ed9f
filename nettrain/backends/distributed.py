"""Data-parallel training over several processes on JAX's distributed runtime.

``nettrain fit CONFIG --processes N`` starts N processes on this machine (:func:`launch`);
across machines each one is started by hand with ``--coordinator HOST:PORT --process-id I
--num-processes N``. Each process calls :func:`join` before Keras builds anything:
``jax.distributed.initialize`` (gloo collectives on CPU) and
``keras.distribution.DataParallel(auto_shard_dataset=False)`` over the devices of every
process, so each variable is replicated and the gradients are averaged across processes.
Each process loads the same data (same seed: the launcher draws one for a config without,
same split) and feeds its own share of every global batch (:mod:`nettrain.backends.jax_fused`;
:func:`check_config` refuses a batch size that does not divide): the weights are those of one
process on the global batch, to float tolerance. Process 0 alone writes the run directory;
the others work in a scratch directory of their own (:func:`scratch_dir`), made and removed
by the launcher, so a killed process leaves none behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nettrain.backends import quiet
from nettrain.config.schema import Config
from nettrain.errors import ConfigError, Problem, RunError, UsageError

# Seconds a process whose peer is gone waits before JAX's runtime stops it (when no launcher
# does it first), and seconds the launcher gives the others to end before killing them.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 5
# The scratch directory the launcher made for a process other than 0 (and removes).
SCRATCH_VARIABLE = "NETTRAIN_PROCESS_SCRATCH"
INTERRUPTED = 130  # the exit code of a fit stopped by Ctrl-C or SIGTERM
# A launcher's process: "PID:FD", the launcher's pid and the read end of a pipe it holds.
LAUNCHER_VARIABLE = "NETTRAIN_LAUNCHER"
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def check(coordinator: str | None, process_id: int | None, num_processes: int | None,
          processes: int | None) -> None:
    """Refuse a wrong combination of the distributed options (UsageError, exit 2)."""
    given = [name for name, value in (("--coordinator", coordinator),
                                      ("--process-id", process_id),
                                      ("--num-processes", num_processes)) if value is not None]
    if processes is not None and given:
        raise UsageError(f"--processes starts its processes on this machine itself; "
                         f"received also {', '.join(given)}. Give --processes N alone, or "
                         "--coordinator HOST:PORT --process-id I --num-processes N on each "
                         "machine.")
    if processes is not None and processes < 1:
        raise UsageError(f"--processes: expected 1 or more; received {processes}.")
    if given and len(given) < 3:
        missing = sorted({"--coordinator", "--process-id", "--num-processes"} - set(given))
        raise UsageError(f"{', '.join(given)} without {', '.join(missing)}: a process of a "
                         "multi-process run needs all three, e.g. --coordinator 10.0.0.1:1234 "
                         "--process-id 0 --num-processes 2.")
    if not given:
        return
    assert coordinator is not None and process_id is not None and num_processes is not None
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--coordinator: expected HOST:PORT (the address of process 0, e.g. "
                         f"10.0.0.1:1234); received {coordinator!r}.")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise UsageError(f"--process-id: expected 0 to {num_processes - 1} (--num-processes "
                         f"{num_processes}); received {process_id}.")


def check_config(config: Config, batch_size: int, processes: int, by_hand: bool) -> None:
    """Refuse (ConfigError, exit 2) a config the ``processes`` processes cannot train alike.

    Each process feeds ``batch_size // processes`` rows of every global batch, so
    ``batch_size`` (the training batch size in effect) must be a multiple of ``processes``:
    otherwise rows would never be trained. Processes started by hand (``--coordinator``) each
    load the config themselves, so a new run needs a ``seed`` (the launcher of
    ``--processes N`` draws one and hands it to every process).
    """
    check_batch_size(batch_size, processes)
    if by_hand and processes > 1 and config.seed is None:
        raise ConfigError(Problem(
            "seed", f"a seed, the same in each of the {processes} processes (each draws its "
            "own otherwise, and their weights differ)", "none", "Add seed=N (the same N) to "
            "the command of every process, or give the config a seed: key."))


def check_batch_size(batch_size: int, processes: int) -> None:
    """Refuse (ConfigError) a training batch size that is not a multiple of ``processes``.

    Example: 16 rows in 3 processes -> "fit.batch_size: expected a multiple of 3 ...;
    received 16. Use fit.batch_size=15 or fit.batch_size=18."
    """
    if processes < 2 or batch_size % processes == 0:
        return
    below, above = batch_size // processes * processes, -(-batch_size // processes) * processes
    near = " or ".join(f"fit.batch_size={n}" for n in (below, above) if n > 0)
    raise ConfigError(Problem(
        "fit.batch_size", f"a multiple of {processes} (each of the {processes} processes "
        "trains an equal share of every batch)", str(batch_size), f"Use {near}."))


def join(coordinator: str, process_id: int, num_processes: int) -> None:
    """Join the run's processes and train data-parallel over all their devices (on JAX:
    the backend policy chose it, :func:`nettrain.backends.select.choose` with ``processes``)."""
    _native_output_to_stderr()
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id,
                                   initialization_timeout=120,
                                   heartbeat_timeout_seconds=HEARTBEAT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - JAX raises plain RuntimeError/XlaRuntimeError
        raise RunError(f"Process {process_id} of {num_processes} could not join the run at "
                       f"{coordinator}: {' '.join(str(exc).split())[:300]}. Check that "
                       "process 0 runs there and that the port is open.") from None
    import keras

    from nettrain.backends import select

    select.settle()  # right after Keras's import: TensorFlow kept out, JAX's programs cached
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False))


def _native_output_to_stderr() -> None:
    """Send what C++ code prints on file descriptor 1 (gloo's "[Gloo] Rank 0 is connected
    ...") to stderr, keeping Python's sys.stdout on the real stdout: stdout is kept for the
    run directory, so ``run=$(nettrain fit ...)`` works."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(real, "w", buffering=1)


def scratch_dir(process_id: int, resume: Path | None) -> tuple[Path, Path]:
    """The folder a process other than 0 works in and, in it, the run directory it writes
    to: a new one for a new run, a copy of the run directory for a resume (made before joining,
    so before process 0 changes it). The folder is the launcher's (``SCRATCH_VARIABLE``),
    else, for a process started by hand, a new one; its caller removes it
    (:func:`remove_scratch`), and the launcher its own, also after a kill. A folder whose
    owners all died (a ``kill -9`` of the launcher and of its process) is removed by the next
    launch (:func:`sweep_scratch`)."""
    given = os.environ.get(SCRATCH_VARIABLE)
    folder = Path(given) if given else _new_scratch(process_id)[0]
    if resume is None:
        return folder, folder / "run"
    copy = folder / "run"
    shutil.copytree(resume, copy, ignore=shutil.ignore_patterns("*.lock", ".lock*"))
    return folder, copy


OWNER = ".owner"  # in a scratch folder: locked (flock) while a process of it lives
_OWNED: list[int] = []  # the owner locks this process holds (open for its lifetime)


def _new_scratch(process_id: int) -> tuple[Path, int]:
    """A new scratch folder and the descriptor of its owner lock, held from before the lock
    file has its name (so a sweep never finds it unlocked): the launcher hands it to the
    process (which holds it on if the launcher is killed); a process started by hand keeps it."""
    import fcntl

    folder = Path(tempfile.mkdtemp(prefix=f"nettrain-process-{process_id}-"))
    fd = os.open(folder / f"{OWNER}.new", os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(folder / f"{OWNER}.new", folder / OWNER)
    _OWNED.append(fd)
    return folder, fd


def sweep_scratch() -> None:
    """Remove the scratch folders in the temporary folder that no living process owns (their
    launcher and process were killed with ``kill -9``, which no clean-up outlives)."""
    import fcntl

    for folder in Path(tempfile.gettempdir()).glob("nettrain-process-*"):
        try:
            fd = os.open(folder / OWNER, os.O_RDONLY)
        except OSError:
            continue  # not a scratch folder of this nettrain, or not yet named: not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a living process owns it
        finally:
            os.close(fd)
        remove_scratch(folder)


def remove_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def follow_launcher() -> None:
    """In a process ``fit --processes`` started: end with the launcher. When the launcher
    dies, even by ``kill -9``, this process gets SIGTERM (a clean stop: process 0 saves the
    epoch the processes agree on and says how to go on; the others remove their scratch
    folder): Linux's ``prctl(PR_SET_PDEATHSIG)``, elsewhere a thread that waits for the end
    of the launcher's pipe."""
    given = os.environ.pop(LAUNCHER_VARIABLE, None)  # for this process, not its children
    if not given:
        return
    pid, _, fd = given.partition(":")
    if not _die_with_parent():
        _watch_pipe(int(fd))
    if os.getppid() != int(pid):  # the launcher died before this process was told to follow
        os.kill(os.getpid(), signal.SIGTERM)


def _die_with_parent() -> bool:
    """Ask Linux for SIGTERM when the parent dies; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_pipe(fd: int) -> None:
    """SIGTERM to this process when the pipe's write end (the launcher's) closes."""
    import threading

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="launcher watch", daemon=True).start()


def launch(arguments: list[str], processes: int, advice: Callable[[], str],
           record: Callable[[], dict[str, Any]] = dict) -> None:
    """Run ``nettrain fit ARGUMENTS`` as ``processes`` processes joined on 127.0.0.1.

    Process 0 speaks for the run: it shows its progress, prints the run directory and, when
    the run stops, what it kept and how to go on; the others run quiet, each in a scratch
    folder made here and removed when they end, however they end. Each process is in a
    process group of its own and follows the launcher (:func:`follow_launcher`): Ctrl-C or
    SIGTERM here is passed on once to each (they stop at the end of an epoch they agree on,
    process 0 saves it), a second one stops them at once; ``kill -9`` of the launcher stops
    them too. A process that ends by itself (a NaN loss, an error, a stop) leaves the others
    a while to end alike (``record()``: the run's record, where process 0 says how the run
    ended, so the same failure is said once); a killed one stops them at once, and RunError adds ``advice()``:
    how to go on, read from the run directory once every process ended. A stop ends with
    SystemExit(130), a failure process 0 said with its exit status.
    """
    sweep_scratch()
    coordinator = f"127.0.0.1:{free_port()}"
    children: list[subprocess.Popen] = []
    scratch: list[Path] = []
    # what each process other than 0 printed (a file of no name); process 0 writes to the
    # terminal itself (not through this process's filter of native log lines: live bars)
    said: list[Any] = [quiet.terminal()]
    pipes: list[int] = []  # the write ends of the pipes the processes watch
    asked: list[int] = []  # the signals that asked this launcher to stop
    ended: list[int | None] = [None] * processes  # how each process ended by itself
    first: int | None = None  # the first to end with an error or a stop
    forced = False

    def stop(signum: int, frame: Any) -> None:
        if asked:
            raise KeyboardInterrupt  # a second Ctrl-C: stop them now
        asked.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(processes):
            env = dict(os.environ)  # KERAS_BACKEND=jax, set by select.use from the policy
            keep: list[int] = []
            if i:
                folder, owner = _new_scratch(i)
                scratch.append(folder)
                keep.append(owner)
                env[SCRATCH_VARIABLE] = str(folder)
                said.append(tempfile.TemporaryFile())
            read, write = os.pipe()
            pipes.append(write)
            env[LAUNCHER_VARIABLE] = f"{os.getpid()}:{read}"
            argv = [sys.executable, "-m", "nettrain", "fit", *arguments, "--coordinator",
                    coordinator, "--process-id", str(i), "--num-processes", str(processes)]
            if i:
                argv.append("--quiet")
            children.append(subprocess.Popen(
                argv, env=env, stderr=said[i], stdout=None if i == 0 else subprocess.DEVNULL,
                pass_fds=(read, *keep), process_group=0))
            os.close(read)
            if asked:  # asked to stop while they started
                children[-1].send_signal(signal.SIGTERM)
        deadline = None
        while not all(code is not None for code in ended):
            ended = [c.poll() for c in children]
            if any(code is not None and code < 0 for code in ended):
                break  # a killed process: the others cannot go on
            if first is None:
                first = next((i for i, code in enumerate(ended) if code), None)
                if first is not None:  # they meet the same end, or fail in a collective
                    deadline = time.monotonic() + GRACE_SECONDS + \
                        (HEARTBEAT_SECONDS if ended[first] == INTERRUPTED else 0)
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        forced = True
    finally:
        for signum in previous:  # the clean-up runs whole
            signal.signal(signum, lambda number, frame: None)
        ended = [c.poll() for c in children]
        _stop(children, at_once=forced)
        for fd in pipes:
            os.close(fd)
        for folder in scratch:
            remove_scratch(folder)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _outcome(processes, ended, first, asked, said, advice, record)


def _outcome(processes: int, ended: list[int | None], first: int | None, asked: list[int],
             said: list[Any], advice: Callable[[], str],
             record: Callable[[], dict[str, Any]]) -> None:
    """How ``fit --processes`` ends, from how each process ended by itself (None: stopped by
    the launcher): process 0 speaks for the run when it could."""
    if all(code == 0 for code in ended):
        return
    killed = next((i for i, code in enumerate(ended) if code is not None and code < 0), None)
    if asked or (first is not None and ended[first] == INTERRUPTED and killed is None):
        if ended[0] != INTERRUPTED or record().get("status") != "interrupted":
            # stopped before process 0 could save and say so
            print(f"Interrupted: the processes were stopped. {advice()}", file=sys.stderr)
        raise SystemExit(INTERRUPTED)  # process 0 said what it saved and how to go on
    cause = killed if killed is not None else first
    if cause is None:
        return
    code = ended[cause]
    assert code is not None
    if killed is None and ended[0] in (1, 2):  # process 0 said why the run failed
        words = _last_words(said[cause]) if cause else ""
        error = " ".join(str(record().get("error") or "").split())
        if words and not (error and error in " ".join(words.split())):
            print(f"Process {cause} of {processes} ended first, with exit code {code}{words}.",
                  file=sys.stderr)
        raise SystemExit(ended[0])
    how = f"was killed by signal {-code}" if code < 0 else f"ended with exit code {code}"
    last = _last_words(said[cause]) if cause and code > 0 else ""  # killed: no last words
    raise RunError(f"Process {cause} of {processes} {how}{last}; the other processes were "
                   f"stopped, so the run stopped. {advice()}")


def _last_words(file: Any) -> str:
    """What a process other than 0 said of its failure, for the launcher's message: its last
    ``Error:`` line, else its last line ('' when it printed nothing)."""
    file.seek(0)
    lines = [line.strip() for line in file.read().decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith(("Error:", "Config error:"))]
    return f" ({(errors or lines)[-1][:300]})" if lines else ""


def _stop(children: list[subprocess.Popen], at_once: bool = False) -> None:
    """End the processes still running: SIGTERM, then SIGKILL after GRACE_SECONDS (a process
    waiting in a collective for a dead peer does not see SIGTERM); ``at_once``: SIGKILL."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL if at_once else signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
