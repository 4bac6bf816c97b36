"""Sinks: where a running job's figures go while it runs and when it ends.

A sink is any object with three methods (:class:`Sink`); give it to
``greenai.track(..., sinks=[...])``. The tracker calls :meth:`Sink.start` once it is
running, :meth:`Sink.update` with a :meth:`~greenai.Tracker.snapshot` every
``checkpoint_s`` seconds, and :meth:`Sink.finish` with the final
:class:`~greenai.Measurement` at stop. The Prometheus exporter and the MLflow, W&B and
TensorBoard loggers are sinks, and so is the run store
(:class:`greenai.checkpoint.StoreSink`), a *required* one (below).

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

A sink whose class sets ``required = True`` (the run store) must start: :meth:`SinkSet.start`
starts the required sinks first, on their own workers, and waits for each ``start()`` (at
most :data:`START_TIMEOUT_S`); one that raises raises that error to the caller, before the
job's code runs and before any other sink starts. A required sink is never dropped for being
slow: the live thread waits up to :data:`UPDATE_TIMEOUT_S` for its update (so a checkpoint
is written at its time, and one that takes longer is coalesced, not queued), and ``stop()``
waits for its ``finish()`` without a deadline (the result must be kept). The other sinks
never wait for it, nor it for them.
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

__all__ = ["Sink", "SinkSet", "check_sinks", "is_required", "refuse_from_background"]

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


def is_required(sink: object) -> bool:
    """Whether ``sink`` must start (its class sets ``required = True``; see the module)."""
    return getattr(type(sink), "required", False) is True


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
        self.required = is_required(sink)
        self.error: BaseException | None = None  # a required sink's start() raised it
        self.started = threading.Event()  # start() returned or raised
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
            self._cond.notify_all()
        self.thread.start()

    def offer(self, snapshot: Measurement) -> None:
        with self._cond:
            if self.failed or self.dropped or self._result is not None:
                return
            self._snapshot = snapshot  # the latest wins: a slow sink never lags
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing to deliver and no call running."""
        with self._cond:
            return self._busy is None and self._snapshot is None and self._start is None

    def wait_idle(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until the snapshot offered has been delivered."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not (self.failed or self.dropped or self.done.is_set()) and (
                self._busy is not None or self._snapshot is not None
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def post_finish(self, result: Measurement) -> None:
        with self._cond:
            if self.dropped or self.done.is_set():  # hung, or never started
                self.done.set()
                return
            self._result = result
            self._cond.notify_all()

    def overdue(self, now: float, finishing: bool = False) -> str | None:
        """The call that is past its deadline, as a note; None while on time."""
        busy = self._busy
        if busy is None or self.dropped or self.required:  # a required sink is waited for
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
            self._cond.notify_all()
        self.done.set()
        self.started.set()

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
                self._cond.notify_all()
            if method == "start":
                self.started.set()
            if method == "finish" or self.dropped or (method == "start" and not ok):
                self.done.set()
                return

    def _call(self, method: str, arg: Any) -> bool:
        try:
            getattr(self.sink, method)(arg)
        except BaseException as exc:
            if self.required and method == "start":
                self.error = exc  # raised to the caller by SinkSet.start
            elif not self.dropped:
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
        """Start each sink's worker (``start()`` runs on the worker).

        The required sinks come first, one at a time, each waited for; then the others,
        not waited for. A sink's optional ``bind(job)`` runs first, here on the job's
        thread: for cheap lookups of state that belongs to that thread (MLflow's active
        run), never I/O.

        Raises:
            Exception: What a required sink's ``bind()`` or ``start()`` raised (a store
                that cannot be opened: ``ConfigError``); no other sink was started.
            ConfigError: A required sink's ``start()`` did not return within
                :data:`START_TIMEOUT_S`.
        """
        ordered = sorted(self.sinks, key=lambda sink: not is_required(sink))
        for sink in ordered:
            required = is_required(sink)
            bind = getattr(sink, "bind", None)
            if callable(bind):
                try:
                    bind(job)
                except Exception as exc:  # the job goes on without this sink
                    if required:
                        raise
                    self.note(
                        f"{type(sink).__name__}.bind() failed ({type(exc).__name__}: {exc});"
                        " the sink was dropped"
                    )
                    continue
            worker = _Worker(sink, self)
            try:
                worker.post_start(job)
            except RuntimeError as exc:  # no thread can be started: the job goes on
                if required:
                    raise
                self.note(f"{worker.label} was not started ({exc}); its figures are missing")
                continue
            self._workers.append(worker)
            if required:
                _await_start(worker)

    def update(self, snapshot: Measurement) -> None:
        """Offer every live sink the snapshot; drop sinks past a deadline.

        Waits only for the required sinks that were idle (at most :data:`UPDATE_TIMEOUT_S`):
        their checkpoint is written at its time; one still busy gets the latest snapshot.
        """
        now = time.monotonic()
        waits = []
        for worker in self._workers:
            late = worker.overdue(now)
            if late is not None:
                worker.drop()
                self.note(late)
                continue
            if worker.required and worker.idle():
                waits.append(worker)
            worker.offer(snapshot)
        for worker in waits:
            worker.wait_idle(UPDATE_TIMEOUT_S)

    def finish(self, result: Measurement, timeout_s: float | None = None) -> None:
        """Give every sink the final result; wait at most ``timeout_s`` for all of them.

        A sink still in ``start()`` or ``update()`` keeps that call's deadline; one that
        takes longer is left running on its own thread, with a note. A required sink's
        ``finish()`` is waited for without a deadline.
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
        pending = [w for w in self._workers if not w.done.is_set() and not w.required]
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
            if worker.required and not worker.dropped:
                worker.done.wait()  # the result must be kept (the store's own timeouts bound it)
                worker.thread.join()
            elif not worker.dropped:
                worker.thread.join(max(0.0, deadline - time.monotonic()))


def _await_start(worker: _Worker) -> None:
    """Wait for a required sink's ``start()``; raise what it raised.

    Interrupted (Ctrl-C), it still lets the start end (bounded), so that what the sink made
    (a stored run) is known to the caller, who ends it.

    Raises:
        BaseException: What ``start()`` raised, or the interruption.
        ConfigError: ``start()`` did not return within :data:`START_TIMEOUT_S`.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while not worker.started.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                worker.drop()
                raise ConfigError(
                    f"{worker.label}.start() did not return within {START_TIMEOUT_S:g} s;"
                    " check that what it opens (a database, a server) answers"
                )
    except BaseException:
        worker.started.wait(max(0.0, deadline - time.monotonic()))
        raise
    if worker.error is not None:
        raise worker.error
