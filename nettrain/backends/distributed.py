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
    to: empty for a new run, a copy of the run directory for a resume (made before joining,
    so before process 0 changes it). The folder is the launcher's (``SCRATCH_VARIABLE``),
    else, for a process started by hand, a new one; its caller removes it
    (:func:`remove_scratch`), and the launcher its own, also after a kill."""
    given = os.environ.get(SCRATCH_VARIABLE)
    folder = Path(given) if given else _new_scratch(process_id)
    if resume is None:
        return folder, folder
    copy = folder / "run"
    shutil.copytree(resume, copy, ignore=shutil.ignore_patterns("*.lock", ".lock*"))
    return folder, copy


def _new_scratch(process_id: int) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"nettrain-process-{process_id}-"))


def remove_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(arguments: list[str], processes: int, advice: Callable[[], str]) -> None:
    """Run ``nettrain fit ARGUMENTS`` as ``processes`` processes joined on 127.0.0.1.

    Process 0 shows its progress and prints the run directory; the others run quiet, each in
    a scratch folder made here and removed when they end, however they end (a killed process
    cannot remove its own). When one ends with an error or is killed, the others are
    stopped, and RunError adds ``advice()``: how to go on, read from the run directory once
    every process ended (process 0's own message, for a config or data error, is its exit
    code). Process 0 speaks for the run: what the others print is kept aside (a file of no
    name) and shown only when one of them is the cause. Ctrl-C (or a process that ended by
    it, exit 130) stops them all, each saving its last epoch, and ends with exit 130 (process
    0 has said what it saved and how to go on).
    """
    coordinator = f"127.0.0.1:{free_port()}"
    children: list[subprocess.Popen] = []
    scratch: list[Path] = []
    # what each process other than 0 printed (a file of no name); process 0 writes to the
    # terminal itself (not through this process's filter of native log lines: live bars)
    said: list[Any] = [quiet.terminal()]
    failed: tuple[int, int] | None = None
    try:
        for i in range(processes):
            env = dict(os.environ)  # KERAS_BACKEND=jax, set by select.use from the policy
            if i:
                scratch.append(_new_scratch(i))
                env[SCRATCH_VARIABLE] = str(scratch[-1])
                said.append(tempfile.TemporaryFile())
            argv = [sys.executable, "-m", "nettrain", "fit", *arguments, "--coordinator",
                    coordinator, "--process-id", str(i), "--num-processes", str(processes)]
            if i:
                argv.append("--quiet")
            children.append(subprocess.Popen(argv, env=env, stderr=said[i],
                                             stdout=None if i == 0 else subprocess.DEVNULL))
        while failed is None:
            codes = [c.poll() for c in children]
            ended = sorted(((code >= 0, i, code) for i, code in enumerate(codes)
                            if code not in (None, 0)))  # a killed process first: the cause
            if ended:
                failed = ended[0][1:]
            elif all(code == 0 for code in codes):
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        failed = (0, INTERRUPTED)
        _wait(children, GRACE_SECONDS)  # Ctrl-C reached them too: a SIGTERM would cut a save
    finally:
        _stop(children)
        for folder in scratch:
            remove_scratch(folder)
    if failed is None:
        return
    index, code = failed
    if code == INTERRUPTED:
        raise SystemExit(INTERRUPTED)  # process 0 said what it saved and how to go on
    if code == 2:
        raise SystemExit(code)  # the process said why: a config, data or usage error
    how = f"was killed by signal {-code}" if code < 0 else f"ended with exit code {code}"
    last = _last_words(said[index]) if index and code > 0 else ""  # killed: no last words
    raise RunError(f"Process {index} of {processes} {how}{last}; the other processes were "
                   f"stopped, so the run stopped. {advice()}")


def _last_words(file: Any) -> str:
    """What a process other than 0 said of its failure, for the launcher's message: its last
    ``Error:`` line, else its last line ('' when it printed nothing)."""
    file.seek(0)
    lines = [line.strip() for line in file.read().decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith(("Error:", "Config error:"))]
    return f" ({(errors or lines)[-1][:300]})" if lines else ""


def _wait(children: list[subprocess.Popen], seconds: float) -> None:
    """Wait up to ``seconds`` in all for the processes to end by themselves."""
    deadline = time.monotonic() + seconds
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(max(0.0, deadline - time.monotonic()))


def _stop(children: list[subprocess.Popen]) -> None:
    """End the processes still running: SIGTERM, then SIGKILL after GRACE_SECONDS (a process
    waiting in a collective for a dead peer does not see SIGTERM)."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
