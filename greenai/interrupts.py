"""One policy for Ctrl-C and SIGTERM in every long command (run, compress, bench, demo).

The first Ctrl-C or SIGTERM stops the command cleanly: it is raised in the main thread as
:class:`Interrupted` (a ``KeyboardInterrupt``), so every ``with greenai.track(...)`` block
it unwinds stops as ``interrupted`` and stores what was measured; the command line then
prints one line and exits 128 + the signal's number (130 for Ctrl-C). A signal that comes
while a tracker writes its record (:func:`shield`) waits until the record is written. A
second signal exits at once with 128 + its number, with one line and never a traceback
(a run stored so far then reads as ``interrupted``: its process is gone).

Only :func:`signal_policy` installs handlers, and only on the main thread; a library user
keeps Python's own handling (:func:`shield` does nothing then).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

__all__ = ["Interrupted", "shield", "signal_policy"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A first Ctrl-C or SIGTERM under :func:`signal_policy`.

    Attributes:
        signum: The signal's number.
        exit_code: 128 + ``signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class _State:
    def __init__(self) -> None:
        self.active = False
        self.count = 0
        self.shielded = 0
        self.pending: int | None = None
        self.process = False


_state = _State()


@contextmanager
def signal_policy() -> Iterator[None]:
    """Handle Ctrl-C and SIGTERM by the policy above while the block runs (main thread)."""
    if threading.current_thread() is not threading.main_thread() or _state.active:
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _state.active, _state.count, _state.pending = True, 0, None
    for s in SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            # The command line owns the process: what follows is only its exit, so a late
            # signal (the second of a burst sent to `greenai run`) exits with 128 + N at
            # once instead of the default action (killed, exit -N).
            signal.signal(s, _exit_late if _state.process else handler)
        _state.active = False


def for_the_process() -> None:
    """Say that the command line owns this process (``greenai`` / ``python -m greenai``).

    Once :func:`signal_policy` ends, Ctrl-C and SIGTERM then exit at once with 128 + the
    signal's number. Never called in-process (tests, notebooks keep Python's handling).
    """
    _state.process = True


def _exit_late(signum: int, frame: FrameType | None) -> None:
    exit_now(signum)


def received() -> int:
    """How many signals the policy has taken so far (0 outside it)."""
    return _state.count if _state.active else 0


def _handle(signum: int, frame: FrameType | None) -> None:
    _state.count += 1
    if _state.count > 1:
        exit_now(signum)
    if _state.shielded:
        _state.pending = signum
        return
    raise Interrupted(signum)


def exit_now(signum: int) -> None:
    """Leave at once with 128 + ``signum``, saying so in one line (no cleanup, no traceback)."""
    with suppress(OSError):
        os.write(2, f"greenai: {signal.Signals(signum).name} again; exiting now\n".encode())
    os._exit(128 + signum)


@contextmanager
def shield() -> Iterator[None]:
    """Hold a first signal until the block ends (a record being written), then raise it.

    Under :func:`signal_policy` only; elsewhere the block runs as it is.
    """
    if not _state.active or threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.shielded += 1
    try:
        yield
    finally:
        _state.shielded -= 1
        pending, _state.pending = _state.pending, None
        if pending is not None and not _state.shielded:
            raise Interrupted(pending)
