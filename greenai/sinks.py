"""Sinks: where a running job's figures go while it runs and when it ends.

A sink is any object with three methods (:class:`Sink`); give it to
``greenai.track(..., sinks=[...])``. The tracker calls :meth:`Sink.start` once it is
running, :meth:`Sink.update` with a :meth:`~greenai.Tracker.snapshot` every
``checkpoint_s`` seconds on its own thread, and :meth:`Sink.finish` with the final
:class:`~greenai.Measurement` at stop. The run store's checkpointing
(:class:`greenai.checkpoint.StoreSink`) and the Prometheus exporter are sinks.

A sink that raises never stops the job or loses its result: the failure is logged, warned
about once per sink and kind at stop (a failure that repeats is logged at most once a minute),
and the other sinks go on. A sink that hangs does not hold up the job's end for long:
``stop()`` waits :data:`UPDATE_TIMEOUT_S` for an update in flight and
:data:`FINISH_TIMEOUT_S` for each ``finish()``, then notes it and goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from greenai.measurement import Measurement
    from greenai.tracker import Tracker

__all__ = ["Sink", "SinkSet"]

log = logging.getLogger("greenai")

REPEAT_LOG_S = 60.0
"""A sink failure that keeps happening is logged at most once per this many seconds."""

FINISH_TIMEOUT_S = 30.0
"""How long ``stop()`` waits for each sink's ``finish()`` (an upload may take a while)."""

UPDATE_TIMEOUT_S = 5.0
"""How long ``stop()`` waits for an ``update()`` in flight on the tracker's live thread."""


@runtime_checkable
class Sink(Protocol):
    """What the tracker calls on each sink."""

    def start(self, job: Tracker) -> None:
        """The job is running: open what the sink writes to (errors here are reported)."""
        ...

    def update(self, snapshot: Measurement) -> None:
        """The job so far (status ``running``); called every ``checkpoint_s`` seconds."""
        ...

    def finish(self, result: Measurement) -> None:
        """The job's final Measurement; release what the sink holds."""
        ...


class SinkSet:
    """Calls every sink, turning each failure into a problem to report, never an exception."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        self.problems: list[str] = []
        self._last_log: dict[tuple[int, str], float] = {}

    def start(self, job: Tracker) -> None:
        """Start every sink; one that fails to start is dropped, with a problem noted."""
        started = []
        for sink in self.sinks:
            if self._call(sink, "start", job):
                started.append(sink)
        self.sinks = started

    def update(self, snapshot: Measurement) -> None:
        """Give every sink the snapshot."""
        for sink in self.sinks:
            self._call(sink, "update", snapshot)

    def finish(self, result: Measurement, timeout_s: float | None = None) -> None:
        """Give every sink the final result.

        A sink that takes over ``timeout_s`` is left running on its own thread (a problem is
        noted), so the job's end is not held up.
        """
        timeout_s = FINISH_TIMEOUT_S if timeout_s is None else timeout_s
        for sink in self.sinks:
            done = threading.Event()

            def call(sink: Sink = sink, done: threading.Event = done) -> None:
                self._call(sink, "finish", result)
                done.set()

            thread = threading.Thread(target=call, name="greenai-sink-finish", daemon=True)
            thread.start()
            if not done.wait(timeout_s):
                self.problems.append(
                    f"{type(sink).__name__}.finish() did not return within {timeout_s:g} s;"
                    " it was left running"
                )

    def _call(self, sink: Sink, method: str, arg: object) -> bool:
        try:
            getattr(sink, method)(arg)
        except Exception as exc:  # a sink must never cost the user the job or its result
            what = f"{type(sink).__name__}.{method}() failed: {exc}"
            key = (id(sink), method)
            now = time.monotonic()
            if now - self._last_log.get(key, -REPEAT_LOG_S) >= REPEAT_LOG_S:
                self._last_log[key] = now
                log.warning("greenai: %s", what)
            if not any(p.startswith(f"{type(sink).__name__}.{method}()") for p in self.problems):
                self.problems.append(what)
            return False
        return True
