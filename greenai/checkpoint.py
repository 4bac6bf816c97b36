"""Write a running job to the run store: at start, at every snapshot, and at the end.

:class:`StoreSink` is the store's :class:`~greenai.sinks.Sink`, a required one: it runs on its
own worker like every sink, but its ``start()`` must succeed (a store that cannot be opened
fails the tracker's ``start()``), it is never dropped for being slow, and ``stop()`` waits for
its ``finish()`` (see :mod:`greenai.sinks`). Each checkpoint writes what
is new since the last one: the settled timeline rows, the buckets older rows were thinned
to, the phase spans closed since, and the latest Measurement. Store failures are logged and
warned about (a failure that repeats is logged at most once a minute), never raised into
the user's job: the in-memory Measurement is always returned.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any

from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.errors import ConfigError

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement
    from greenai.store import RunStore

__all__ = ["StoreSink", "resolve_store"]

log = logging.getLogger("greenai")

_NONE = object()

REPEAT_LOG_S = 60.0
"""A checkpoint failure that keeps happening (a full disk) is logged once per minute."""


def resolve_store(spec: Any) -> RunStore | None:
    """``True`` → the default store; a path or URL → a store there; a RunStore as is.

    A PostgreSQL store (a ``postgresql://`` URL, or ``GREENAI_STORE`` naming one) comes as a
    :class:`~greenai.store.spool.SpooledStore`: while the database is down, the job's
    checkpoints are kept in a local spool and sent later.
    """
    if spec is None or spec is False:
        return None
    from greenai.store import RunStore, default_store
    from greenai.store.postgres import is_url
    from greenai.store.spool import SpooledStore

    if spec is True:
        spec = default_store()
    if isinstance(spec, RunStore):
        return spec
    if is_url(spec):
        return SpooledStore(spec)
    if isinstance(spec, str | os.PathLike):
        return RunStore(spec)
    raise ConfigError(f"store must be True, a path or a RunStore, got {spec!r}")


class StoreSink:
    """Records one run in a :class:`~greenai.store.RunStore` as the job goes (a required sink).

    Args:
        store: Where to record.
        clock: Unused by the sink itself; kept so callers can pass the tracker's.
        command: The command line, for runs of ``greenai run``.
    """

    def __init__(
        self, store: RunStore, *, clock: Clock = SYSTEM_CLOCK, command: str | None = None
    ) -> None:
        self.store = store
        self.run_id: str | None = None
        self._command = command
        self._job: JobView | None = None
        self._rows_after_s: dict[str, float] = {}
        self._buckets_after_s = -math.inf
        self._spans_seen = 0
        self._pending: list[str] = []
        self.problems: list[str] = []  # after finish(): what the store failed to keep
        self._last_log = -REPEAT_LOG_S
        self._meta: dict[str, Any] = {}  # the job's meta as start() recorded it

    required = True
    """The job does not start without its store (see :mod:`greenai.sinks`)."""

    def start(self, job: JobView) -> None:
        """Open the store and record the run as running. Store errors raise (nothing ran yet)."""
        self.store.open()
        self._job = job
        from greenai.host import host_facts

        meta = {"host": host_facts(), **job.meta}  # where it ran, for reports written later
        self._meta = job.meta
        self.run_id = self.store.start_run(
            job.name, meta=meta, command=self._command, tags=job.tags
        )

    def update(self, snapshot: Measurement) -> None:
        """Write what is new since the last checkpoint (never raises)."""
        try:
            self._write(snapshot, final=False)
        except Exception as exc:  # a store problem must never stop the user's job
            self._problem(f"checkpoint of run {self.run_id} failed: {exc}")

    def checkpoint(self) -> None:
        """Write a fresh snapshot now (tests; the tracker calls :meth:`update`)."""
        assert self._job is not None
        self.update(self._job.snapshot())

    def finish(self, result: Measurement) -> None:
        """Write the final result and close the store (never raises).

        What failed (a full disk) is left in :attr:`problems`, for the tracker to warn about
        on its own thread and note on the Measurement it returns.
        """
        try:
            self._write(result, final=True)
        except Exception as exc:
            self._problem(f"run {self.run_id} could not be stored: {exc}")
        finally:
            self.store.close()
        self.problems = list(self._pending)  # the tracker warns and notes them at stop
        self._pending.clear()

    def _write(self, m: Measurement, *, final: bool) -> None:
        job = self._job
        assert job is not None and self.run_id is not None
        after = min(self._rows_after_s.values(), default=-math.inf)
        # Columns, not frames: pandas would cost more than the few rows a checkpoint writes.
        rows = job.timeline(after_s=after, settled=not final, buckets=False, as_frame=False)
        buckets = job.timeline_buckets(after_s=self._buckets_after_s, as_frame=False)
        spans, seen = job.phase_spans_since(self._spans_seen, as_frame=False)
        keep_spans_after_s = m.duration_s - job.retention_s
        if final:
            learned = {k: v for k, v in job.meta.items() if self._meta.get(k, _NONE) != v}
            self.store.finish_run(
                self.run_id,
                m,
                rows,
                spans,
                buckets=buckets,
                keep_spans_after_s=keep_spans_after_s,
                meta=learned or None,
            )
        else:
            self.store.checkpoint(
                self.run_id, m, rows, spans, buckets=buckets, keep_spans_after_s=keep_spans_after_s
            )
        if len(rows["t_s"]):  # in time order per device: the last one per device is latest
            self._rows_after_s.update(
                zip(map(str, rows["device"].tolist()), rows["t_s"].tolist(), strict=True)
            )
        if len(buckets["t_s"]):
            self._buckets_after_s = float(buckets["t_s"].max())
        self._spans_seen = seen

    def _problem(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= REPEAT_LOG_S:
            self._last_log = now
            log.warning("greenai: %s", message)
        if len(self._pending) < 2 and not any(m[:30] == message[:30] for m in self._pending):
            self._pending.append(message)
