"""The block :meth:`greenai.Tracker.phase` returns: each entry opens a span of the phase."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from greenai.errors import TrackerStateError

__all__ = ["PhaseBlock", "PhaseHost"]


class PhaseHost(Protocol):
    """What a :class:`PhaseBlock` needs of the running job (an :class:`~greenai.run.ActiveRun`)."""

    name: str

    @property
    def running(self) -> bool:
        """Whether the job is between start and stop."""

    def phase_span(self, name: str, in_steps: bool = True) -> AbstractContextManager[None]:
        """One span of phase ``name``."""


class PhaseBlock(AbstractContextManager[None]):
    """What :meth:`greenai.Tracker.phase` returns: each entry opens a span of the phase.

    Like a lock, the same object may be entered again, after its block ended or inside it
    (a nested span of the same name); entered after the job stopped, it says so.

    Raises:
        TrackerStateError: Entered when the job is no longer running; exited out of order.
        ConfigError: A bad name or ``in_steps`` (see :meth:`greenai.Tracker.phase`).
    """

    def __init__(self, run: PhaseHost, name: str, in_steps: bool) -> None:
        self._run = run
        self._name = name
        self._in_steps = in_steps
        self._entered: list[AbstractContextManager[None]] = []

    def __enter__(self) -> None:
        if not self._run.running:
            raise TrackerStateError(
                f"phase({self._name!r}) entered on tracker {self._run.name!r}, which is not"
                " running; a phase block can only be used inside its job"
            )
        span = self._run.phase_span(self._name, self._in_steps)
        span.__enter__()
        self._entered.append(span)

    def __exit__(self, *exc: Any) -> bool | None:
        if not self._entered:
            raise TrackerStateError(f"phase({self._name!r}) exited more often than entered")
        try:
            result = self._entered[-1].__exit__(*exc)
        except TrackerStateError:  # out of order: the span stays this block's (still open)
            raise
        except BaseException:
            self._entered.pop()
            raise
        self._entered.pop()
        return result
