"""``greenai run``: names, and signals that reach the command exactly once."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from greenai.runner import command_name
from greenai.store import RunStore

# Logs each SIGINT/SIGTERM it gets; after the first, waits a little (for a duplicate), then
# exits 5. With "stubborn" it keeps running until killed.
CHILD = """
import os, signal, sys, time
log, ready, mode = sys.argv[1:4]
def handler(signum, frame):
    with open(log, "a") as f:
        f.write(f"{signum}\\n")
signal.signal(signal.SIGINT, handler)
signal.signal(signal.SIGTERM, handler)
with open(ready, "w") as f:
    f.write(str(os.getpid()))
while not os.path.exists(log):
    time.sleep(0.02)
time.sleep(60 if mode == "stubborn" else 1.5)
sys.exit(5)
"""


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["python", "train.py", "--lr", "3"], "train.py"),
        (["/usr/bin/python3.11", "-u", "src/train.py"], "train.py"),
        (["python3", "-X", "dev", "-m", "pkg.train", "--x"], "pkg.train"),
        (["python", "-mpkg.train"], "pkg.train"),
        (["python", "-c", "print(1)"], "python -c"),
        (["python"], "python"),
        (["torchrun", "--nproc-per-node=2", "train.py"], "torchrun"),
        (["./bench.sh"], "bench.sh"),
    ],
)
def test_a_run_is_named_after_the_script_not_the_interpreter(argv: list[str], name: str) -> None:
    assert command_name(argv) == name


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def greenai_run(tmp_path: Path, mode: str = "normal") -> list[str]:
    return [
        sys.executable, "-m", "greenai", "run", "--store", str(tmp_path / "runs.db"), "--",
        sys.executable, "-c", CHILD, str(tmp_path / "log"), str(tmp_path / "ready"), mode,
    ]  # fmt: skip


def signals_logged(tmp_path: Path) -> list[int]:
    log = tmp_path / "log"
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def the_run(tmp_path: Path) -> tuple[str, object]:
    with RunStore(tmp_path / "runs.db") as store:
        run = store.get("latest")
    return run.status, run.measurement


def test_sigterm_to_the_process_group_reaches_the_command_once(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        greenai_run(tmp_path),
        start_new_session=True,  # its own process group, no terminal: as under a supervisor
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: (tmp_path / "ready").exists())
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 5
    assert signals_logged(tmp_path) == [signal.SIGTERM]
    status, measurement = the_run(tmp_path)
    assert status == "interrupted" and measurement is not None


def in_a_terminal(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` as the session leader of a new pseudo-terminal, in its foreground."""
    master, slave = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(slave)
    return proc, master


def drain(master: int) -> None:
    os.set_blocking(master, False)
    try:
        while os.read(master, 65536):
            pass
    except OSError:
        pass


def read_until(master: int, text: bytes, timeout: float = 60.0) -> bytes:
    """Read the terminal's output until ``text`` shows (the output read so far)."""
    seen = b""
    os.set_blocking(master, False)
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"timed out waiting for {text!r}; got {seen!r}"
        try:
            seen += os.read(master, 65536)
        except BlockingIOError:
            time.sleep(0.02)
    return seen


def test_one_ctrl_c_in_a_terminal_reaches_the_command_once(tmp_path: Path) -> None:
    proc, master = in_a_terminal(greenai_run(tmp_path))
    try:
        wait_for(lambda: (tmp_path / "ready").exists())
        os.write(master, b"\x03")  # Ctrl-C: the terminal signals its foreground group
        assert proc.wait(timeout=60) == 5
    finally:
        if proc.poll() is None:  # a failed test must not leave the job behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        drain(master)
        os.close(master)
    assert signals_logged(tmp_path) == [signal.SIGINT]
    status, measurement = the_run(tmp_path)
    assert status == "interrupted" and measurement is not None


def test_a_second_ctrl_c_stops_the_command_and_keeps_the_run(tmp_path: Path) -> None:
    proc, master = in_a_terminal(greenai_run(tmp_path, "stubborn"))
    try:
        # the file exists before the child's pid is written into it: wait for the pid
        wait_for(lambda: (tmp_path / "ready").exists() and (tmp_path / "ready").read_text() != "")
        child = int((tmp_path / "ready").read_text())
        os.write(master, b"\x03")
        wait_for(lambda: signals_logged(tmp_path))
        # two Ctrl-C that reach greenai before its handler runs are one signal to Python:
        # the second is sent once greenai says it took the first in
        read_until(master, b"a second Ctrl-C")
        os.write(master, b"\x03")
        assert proc.wait(timeout=60) == 128 + signal.SIGINT
    finally:
        if proc.poll() is None:  # a failed test must not leave the job behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        drain(master)
        os.close(master)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # greenai did not leave the command running
    status, measurement = the_run(tmp_path)
    assert status == "interrupted" and measurement is not None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped


PARENT = """
import os, signal, subprocess, sys, time
ready = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *a: None)  # stubborn
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(ready, "w") as f:
    f.write(f"{os.getpid()} {helper.pid}")
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_second_sigterm_stops_the_command_and_what_it_started(tmp_path: Path) -> None:
    ready, stderr = tmp_path / "ready", tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenai", "run", "--store", str(tmp_path / "runs.db"),
             "--", sys.executable, "-c", PARENT, str(ready)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    try:
        wait_for(lambda: ready.exists() and len(ready.read_text().split()) == 2)
        child, helper = (int(x) for x in ready.read_text().split())
        proc.send_signal(signal.SIGTERM)
        # the first is forwarded, and ignored by the command; a second sent before greenai's
        # handler ran would be the same signal to Python, so wait for its answer
        wait_for(lambda: b"a second Ctrl-C (or SIGTERM)" in stderr.read_bytes())
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wait_for(lambda: not alive(child) and not alive(helper), timeout=10)
    status, measurement = the_run(tmp_path)
    assert status == "interrupted" and measurement is not None
