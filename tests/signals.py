"""Signalling a real greenai process in tests: the spawn-signal-wait shape in one place."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable


def poll_until(condition: Callable[[], bool], timeout_s: float = 90.0) -> None:
    """Return once ``condition()`` holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        threading.Event().wait(0.01)


def signal_when(
    proc: subprocess.Popen[str],
    ready: Callable[[], bool] | None,
    signums: list[int],
    *,
    gap_s: float = 0.0,
    timeout_s: float = 90.0,
) -> str | None:
    """Once ``ready()`` holds, send ``signums`` ``gap_s`` apart and wait for ``proc`` to end.

    Returns its stderr when piped. A process still running after ``timeout_s``, or when
    anything here fails (``ready`` never held), is killed and reaped, so no test leaves one
    behind; ``send_signal`` does nothing to a process already reaped (no recycled pid is hit).
    """
    try:
        if ready is not None:
            poll_until(ready)
        for i, signum in enumerate(signums):
            if i:
                time.sleep(gap_s)  # the gap between two signals is the case under test
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err
