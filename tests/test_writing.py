"""nettrain.run.writing, the one writer of output files: a file is replaced whole, a device,
FIFO or open descriptor is written into (never replaced), a socket or disk is refused, a link
is followed, a folder nettrain cannot write in is found before the work, and the temporaries
of a killed writer are removed by the next one."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nettrain.errors import UsageError
from nettrain.run import writing


def device_node(path: Path) -> Path:
    """A character device of our own, the kernel's null device (1, 3): as root only."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def is_null_device(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


@contextlib.contextmanager
def fifo_reader(path: Path):
    """A FIFO at ``path`` and a thread reading it to its end: yields a dict whose "data" is
    what was read. A FIFO never opened for writing is released at the end."""
    os.mkfifo(path)
    got: dict[str, bytes] = {}
    thread = threading.Thread(target=lambda: got.update(data=path.read_bytes()), daemon=True)
    thread.start()
    try:
        yield got
    finally:
        if thread.is_alive() and stat.S_ISFIFO(os.lstat(path).st_mode):
            with contextlib.suppress(OSError):  # no writer came: let the reader see the end
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder nobody can create files in, root included: a read-only tmpfs mounted on it,
    else the immutable flag; for another user, no write permission."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    for make, undo in ((["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"], ["umount"]),
                       (["chattr", "+i"], ["chattr", "-i"])):
        try:
            done = subprocess.run([*make, str(path)], capture_output=True)
        except FileNotFoundError:
            continue
        if done.returncode == 0:
            try:
                yield path
            finally:
                subprocess.run([*undo, str(path)], capture_output=True)
            return
    pytest.skip("no way to make a read-only folder here (mount and chattr refused)")


def test_a_device_and_a_fifo_are_written_into_and_stay_what_they_are(tmp_path):
    null = device_node(tmp_path / "null")
    with writing.replacing(null) as tmp:
        tmp.write_text("rows\n")
    assert is_null_device(null)
    with fifo_reader(tmp_path / "fifo") as got:
        with writing.replacing(tmp_path / "fifo") as tmp:
            tmp.write_text("a,b\n1,2\n")
    assert got["data"] == b"a,b\n1,2\n"
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null"]


def test_an_open_descriptor_is_appended_to_as_the_shell_opened_it(tmp_path):
    """``-o /dev/stdout >> log``: the log keeps what it held (a rename would have put a new
    file in its place, and replaced the link /dev/stdout itself)."""
    log = tmp_path / "log"
    log.write_text("earlier\n")
    with open(log, "a") as held:
        link = tmp_path / "stdout"
        link.symlink_to(f"/proc/self/fd/{held.fileno()}")
        assert writing.output(link).stream
        with writing.replacing(link) as tmp:
            tmp.write_text("new\n")
    assert log.read_text() == "earlier\nnew\n"
    assert link.is_symlink()


def test_a_link_is_followed_and_the_file_keeps_its_permissions(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with writing.replacing(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_a_socket_a_disk_and_a_folder_are_refused(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        with pytest.raises(UsageError, match=r"--output: .*sock is a socket; nettrain writes "
                                             r"only files, devices such as /dev/null and FIFOs"):
            writing.check(tmp_path / "sock", "--output")
    finally:
        server.close()
    with pytest.raises(UsageError, match="is a folder"):
        writing.check(tmp_path, "--output")
    if os.geteuid() == 0:
        os.mknod(tmp_path / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0))  # a loop device
        with pytest.raises(UsageError, match=r"disk is a block device \(a disk\)"):
            with writing.replacing(tmp_path / "disk") as tmp:
                tmp.write_text("never")
        assert stat.S_ISBLK(os.lstat(tmp_path / "disk").st_mode)


def test_a_folder_nettrain_cannot_write_in_is_refused_by_a_real_try(tmp_path):
    with read_only_folder(tmp_path / "ro") as ro:
        with pytest.raises(UsageError, match=rf"--output: cannot write in the folder {ro} "
                                             r"\(.+\)\. Give a path in a folder you can write"):
            writing.check(ro / "out.csv", "--output")
    assert writing.is_stdout("-") and not writing.is_stdout(tmp_path / "out.csv")


def _ended_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_the_temporaries_of_a_writer_that_ended_are_removed_not_a_running_ones(tmp_path):
    """What ``kill -9`` leaves (a file, or a folder of an export) is removed by the next write
    of that path; a running process's (here our parent's) and another path's are kept."""
    host = writing._host()
    dead, alive = _ended_pid(), os.getppid()
    left = tmp_path / f".model.onnx.partial-{host}-{dead}-abc"
    (left / "scratch").mkdir(parents=True)
    (left / "scratch" / "saved_model.pb").write_bytes(b"\0" * 1000)
    (tmp_path / f".model.onnx.partial-{host}-{dead}-def.tmp").write_text("")
    kept = [f".model.onnx.partial-{host}-{alive}-ghi", f".other.partial-{host}-{dead}-jkl",
            f".model.onnx.partial-elsewhere-{dead}-mno"]
    for name in kept:
        (tmp_path / name).mkdir()
    with writing.scratch(tmp_path / "model.onnx") as work:
        assert work.name.startswith(f".model.onnx.partial-{host}-{os.getpid()}-")
        (work / "model.onnx").write_text("onnx")
        writing.put(work / "model.onnx", tmp_path / "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "model.onnx"])
