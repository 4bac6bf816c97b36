"""Sinks: where a running job's figures go while it runs and when it ends.

A sink is any object with three methods (:class:`Sink`); give it to
``greenai.track(..., sinks=[...])``. The tracker calls :meth:`Sink.start` once it is
running, :meth:`Sink.update` with a :meth:`~greenai.Tracker.snapshot` every
``checkpoint_s`` seconds, and :meth:`Sink.finish` with the final
:class:`~greenai.Measurement` at stop. The Prometheus exporter and the MLflow, W&B and
TensorBoard loggers are sinks; the run store's checkpointing
(:class:`greenai.checkpoint.StoreSink`) is written by the tracker's own live thread.

Isolation is the design, not a list of cases: every sink runs on its own worker thread
(``greenai-sink-<name>``) behind a mailbox that holds at most one start, one snapshot and
one final result. Updates coalesce: a sink that is still busy when the next snapshot comes
gets only the latest one, so a slow sink never lags and never holds up the store's
checkpoints or the job; the last snapshot offered is delivered before the final result.
Each call has a deadline (:data:`START_TIMEOUT_S`, :data:`UPDATE_TIMEOUT_S`; ``stop()``
waits :data:`FINISH_TIMEOUT_S` for every ``finish()`` together). A sink that misses a
deadline, or raises anything (``SystemExit`` and ``KeyboardInterrupt`` included), is
dropped with one note on the result and one warning at stop; the job, the store and the
other sinks go on. A sink that raised in ``update()`` still gets ``finish()``, to release
what it holds; one that failed to start or hung gets nothing more (a hung one's thread is
left behind, a daemon).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from greenai.errors import ConfigError, TrackerStateError

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement

__all__ = ["Sink", "SinkSet", "check_sinks", "refuse_from_background"]

log = logging.getLogger("greenai")

START_TIMEOUT_S = 30.0
"""Seconds a sink's ``start()`` may take (a server to reach) before the sink is dropped."""

UPDATE_TIMEOUT_S = 10.0
"""Seconds one ``update()`` may take before the sink is dropped."""

FINISH_TIMEOUT_S = 30.0
"""How long ``stop()`` waits for all sinks' ``finish()`` together (an upload may be slow)."""

_background = threading.local()  # .what: set on greenai's own threads (sink workers, live)


@runtime_checkable
class Sink(Protocol):
    """What the tracker calls on each sink."""

    def start(self, job: JobView) -> None:
        """The job is running: open what the sink writes to (on the sink's own thread).

        A sink may also have ``bind(job)``, called first on the job's own thread
        (:meth:`SinkSet.start`).
        """
        ...

    def update(self, snapshot: Measurement) -> None:
        """The job so far (status ``running``); at most every ``checkpoint_s`` seconds."""
        ...

    def finish(self, result: Measurement) -> None:
        """The job's final Measurement; release what the sink holds."""
        ...


def check_sinks(sinks: object) -> list[Sink]:
    """``sinks=`` as a list of sinks, checked once, where it is given.

    Raises:
        ConfigError: ``sinks`` is not a list (or other iterable) of objects with
            ``start(job)``, ``update(snapshot)`` and ``finish(result)``.
    """
    if sinks is None:
        return []
    if isinstance(sinks, str | bytes) or not isinstance(sinks, Iterable) or isinstance(sinks, Sink):
        raise ConfigError(
            f"sinks takes a list of sinks (objects with start(job), update(snapshot) and"
            f" finish(result)), e.g. sinks=[MLflowSink()]; got {_short(sinks)}"
        )
    out = list(sinks)
    for sink in out:
        if not isinstance(sink, Sink):
            raise ConfigError(
                "a sink needs start(job), update(snapshot) and finish(result) methods;"
                f" got {_short(sink)}"
            )
    return out


def refuse_from_background(what: str) -> None:
    """Raise when called on one of greenai's own threads (a sink's update calling stop()).

    Raises:
        TrackerStateError: The caller runs on a sink worker or the tracker's live thread.
    """
    where = getattr(_background, "what", None)
    if where is not None:
        raise TrackerStateError(
            f"{what} was called from {where}, one of greenai's own threads; a sink must not"
            " stop the job it reports (stop it from the job's own code)"
        )


def mark_background(what: str) -> None:
    """Mark the calling thread as greenai's own (see :func:`refuse_from_background`)."""
    _background.what = what


def thread_name(sink: object) -> str:
    """``greenai-sink-<class>``: a worker thread's name, safe for logs."""
    return "greenai-sink-" + (re.sub(r"[^A-Za-z0-9_.-]", "_", type(sink).__name__)[:40] or "_")


def _short(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not replace the clear error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Worker:
    """One sink's thread and mailbox (a start, the latest snapshot, the final result)."""

    def __init__(self, sink: Sink, owner: SinkSet) -> None:
        self.sink = sink
        self.label = type(sink).__name__
        self._owner = owner
        self._cond = threading.Condition()
        self._start: Any = None
        self._snapshot: Measurement | None = None
        self._result: Measurement | None = None
        self._busy: tuple[str, float] | None = None  # method, time.monotonic() at its call
        self.failed = False  # raised: no more updates, still finished
        self.dropped = False  # hung: nothing more at all
        self.done = threading.Event()  # finish() returned (or will never be called)
        self.thread = threading.Thread(target=self._run, name=thread_name(sink), daemon=True)

    def post_start(self, job: JobView) -> None:
        with self._cond:
            self._start = job
            self._cond.notify()
        self.thread.start()

    def offer(self, snapshot: Measurement) -> None:
        with self._cond:
            if self.failed or self.dropped or self._result is not None:
                return
            self._snapshot = snapshot  # the latest wins: a slow sink never lags
            self._cond.notify()

    def post_finish(self, result: Measurement) -> None:
        with self._cond:
            if self.dropped or self.done.is_set():  # hung, or never started
                self.done.set()
                return
            self._result = result
            self._cond.notify()

    def overdue(self, now: float, finishing: bool = False) -> str | None:
        """The call that is past its deadline, as a note; None while on time."""
        busy = self._busy
        if busy is None or self.dropped:
            return None
        method, since = busy
        limit = {"start": START_TIMEOUT_S, "update": UPDATE_TIMEOUT_S}.get(method)
        if limit is None or now - since < limit:
            return None
        return (
            f"{self.label}.{method}() did not return within {limit:g} s; the sink was dropped"
            " (left running on its own thread)"
        )

    def drop(self) -> None:
        with self._cond:
            self.dropped = True
            self._snapshot = None
            self._cond.notify()
        self.done.set()

    def _run(self) -> None:
        mark_background(f"{self.label}'s sink thread")
        while True:
            with self._cond:
                while not (
                    self.dropped
                    or self._start is not None
                    or self._snapshot is not None
                    or self._result is not None
                ):
                    self._cond.wait()
                if self.dropped:
                    return
                if self._start is not None:
                    method, arg, self._start = "start", self._start, None
                elif self._snapshot is not None:  # the last one offered, before the end
                    method, arg, self._snapshot = "update", self._snapshot, None
                else:
                    method, arg = "finish", self._result
                self._busy = (method, time.monotonic())
            ok = self._call(method, arg)
            with self._cond:
                self._busy = None
                if not ok and method != "finish":
                    self.failed = True
                    self._snapshot = None
            if method == "finish" or self.dropped or (method == "start" and not ok):
                self.done.set()
                return

    def _call(self, method: str, arg: Any) -> bool:
        try:
            getattr(self.sink, method)(arg)
        except BaseException as exc:
            if not self.dropped:
                what = "dropped" if method != "finish" else "not finished"
                self._owner.note(
                    f"{self.label}.{method}() failed ({type(exc).__name__}: {exc}); the sink"
                    f" was {what}, the job and the store went on"
                )
            return False
        return True


class SinkSet:
    """Runs every sink on its own worker, turning each failure into a note, never a stall.

    Args:
        sinks: The sinks (checked with :func:`check_sinks`).
    """

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        self.problems: list[str] = []
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        """Record a problem once (logged at once, warned about at stop by the tracker)."""
        with self._lock:
            if message in self.problems:
                return
            self.problems.append(message)
        log.warning("greenai: %s", message)

    def start(self, job: JobView) -> None:
        """Start each sink's worker; returns at once (``start()`` runs on the worker).

        A sink's optional ``bind(job)`` runs first, here on the job's thread: for cheap
        lookups of state that belongs to that thread (MLflow's active run), never I/O.
        """
        for sink in self.sinks:
            bind = getattr(sink, "bind", None)
            if callable(bind):
                try:
                    bind(job)
                except Exception as exc:  # the job goes on without this sink
                    self.note(
                        f"{type(sink).__name__}.bind() failed ({type(exc).__name__}: {exc});"
                        " the sink was dropped"
                    )
                    continue
            worker = _Worker(sink, self)
            try:
                worker.post_start(job)
            except RuntimeError as exc:  # no thread can be started: the job goes on
                self.note(f"{worker.label} was not started ({exc}); its figures are missing")
                continue
            self._workers.append(worker)

    def update(self, snapshot: Measurement) -> None:
        """Offer every live sink the snapshot (never waits); drop sinks past a deadline."""
        now = time.monotonic()
        for worker in self._workers:
            late = worker.overdue(now)
            if late is not None:
                worker.drop()
                self.note(late)
            else:
                worker.offer(snapshot)

    def finish(self, result: Measurement, timeout_s: float | None = None) -> None:
        """Give every sink the final result; wait at most ``timeout_s`` for all of them.

        A sink still in ``start()`` or ``update()`` keeps that call's deadline; one that
        takes longer is left running on its own thread, with a note.
        """
        timeout_s = FINISH_TIMEOUT_S if timeout_s is None else timeout_s
        now = time.monotonic()
        for worker in self._workers:
            late = worker.overdue(now)
            if late is not None:
                worker.drop()
                self.note(late)
            else:
                worker.post_finish(result)
        deadline = now + timeout_s
        pending = [w for w in self._workers if not w.done.is_set()]
        while pending and time.monotonic() < deadline:
            pending[0].done.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            now = time.monotonic()
            for worker in pending:
                late = worker.overdue(now)  # a start or update still running: its own deadline
                if late is not None:
                    worker.drop()
                    self.note(late)
            pending = [w for w in pending if not w.done.is_set()]
        for worker in pending:
            worker.drop()
            self.note(
                f"{worker.label}.finish() did not return within {timeout_s:g} s; it was"
                " left running on its own thread"
            )
        for worker in self._workers:
            if not worker.dropped:
                worker.thread.join(max(0.0, deadline - time.monotonic()))
