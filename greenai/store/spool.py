"""A run store that keeps writing when its database is down: a local SQLite spool.

A job that records into a shared PostgreSQL store must not stop, nor lose its figures,
because the database is down when it starts or goes away while it runs. :class:`SpooledStore`
writes to the database while it can; from the first failure to reach it, it keeps the run's
checkpoints in a local SQLite file (the *spool*, under ``$GREENAI_HOME/spool/``) and tries
the database again every :data:`RETRY_S` seconds. Once it answers, every spooled run is sent
(a run the database has not seen is copied whole; one it has is brought up to date) and
removed from the spool. A run still spooled when its job ends is sent by the next job that
opens the same store on this machine. One warning says it happened, and where the spool is.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from greenai.errors import MeasurementWarning
from greenai.measurement import Measurement
from greenai.store import tables
from greenai.store.copy import copy_run, merge_run
from greenai.store.errors import StoreError, StoreUnavailableError
from greenai.store.runstore import RunStore

__all__ = ["RETRY_S", "SpooledStore", "spool_path"]

log = logging.getLogger("greenai")

RETRY_S = 30.0
"""Seconds between attempts to reach a database that was down."""


def spool_path(store: RunStore) -> Path:
    """The local spool file of ``store``: one per database and schema, under its home."""
    digest = hashlib.sha256(store.location.encode()).hexdigest()[:16]
    return Path(store.home) / "spool" / f"{digest}.db"


class SpooledStore(RunStore):
    """A :class:`RunStore` whose writes fall back to a local spool while it is unreachable.

    Only writes fall back (:meth:`start_run`, :meth:`checkpoint`, :meth:`finish_run`,
    :meth:`record_outcome`, :meth:`add_requests`); reads go to the database. The tracker uses it for
    ``postgresql://`` stores; for an SQLite file there is nothing to fall back from.

    Args:
        path: As for :class:`RunStore`.
        schema: As for :class:`RunStore`.
        retry_s: Seconds between attempts to reach the database once it was down.
        monotonic: The clock of those attempts (tests pass a fake one).
    """

    def __init__(
        self,
        path: Any = None,
        *,
        schema: str | None = None,
        retry_s: float = RETRY_S,
        monotonic: Any = time.monotonic,
    ) -> None:
        super().__init__(path, schema=schema)
        self.spool = RunStore(spool_path(self))
        self._retry_s = retry_s
        self._monotonic = monotonic
        self._up = False
        self._next_try = 0.0
        self._warned = False
        # Each run started in the database: its row and tags, for the spool if it goes down.
        self._started: dict[str, tuple[tuple[Any, ...], dict[str, str]]] = {}

    @property
    def spooling(self) -> bool:
        """Whether writes currently go to the spool."""
        return not self._up

    def open(self) -> SpooledStore:
        """Open the database, sending what an earlier job spooled; or fall back to the spool.

        Raises:
            StoreError: Any failure but an unreachable database (a wrong password, a newer
                schema): those are for the user to fix, not to wait out.
        """
        try:
            super().open()
        except StoreUnavailableError as exc:
            self._down(exc)
            return self
        self._up = True
        self._send()
        return self

    def close(self) -> None:
        """Close the database and the spool."""
        super().close()
        self.spool.close()

    def start_run(
        self,
        name: str,
        *,
        meta: dict[str, Any] | None = None,
        command: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """As :meth:`RunStore.start_run`; into the spool while the database is down."""
        if self._reachable():
            try:
                run_id = super().start_run(name, meta=meta, command=command, tags=tags)
            except StoreUnavailableError as exc:
                self._down(exc)
            else:
                columns = ", ".join(_RUN_START_COLUMNS)
                row = self.rows(f"SELECT {columns} FROM runs WHERE id = ?", [run_id])[0]
                self._started[run_id] = (row, dict(tags or {}))
                return run_id
        return self.spool.start_run(name, meta=meta, command=command, tags=tags)

    def checkpoint(self, run_id: str, *args: Any, **kwargs: Any) -> None:
        """As :meth:`RunStore.checkpoint`; into the spool while the database is down."""
        self._route("checkpoint", run_id, args, kwargs)

    def finish_run(self, run_id: str, measurement: Measurement, *args: Any, **kwargs: Any) -> None:
        """As :meth:`RunStore.finish_run`; into the spool while the database is down."""
        self._route("finish_run", run_id, (measurement, *args), kwargs)

    def record_outcome(self, run_id: str, *, command: str, exit_code: int) -> None:
        """As :meth:`RunStore.record_outcome`; into the spool while the database is down."""
        self._route("record_outcome", run_id, (), {"command": command, "exit_code": exit_code})

    def add_requests(self, run_id: str, requests: Any, *, keep: int | None = None) -> None:
        """As :meth:`RunStore.add_requests`; into the spool while the database is down.

        The spool keeps the newest ``keep`` rows too; :func:`~greenai.store.copy.merge_run`
        brings them to the database (a ``seq`` it holds already is left as it is).
        """
        self._route("add_requests", run_id, (requests,), {"keep": keep})

    def follow(self, run_id: str) -> None:
        """Be ready to spool writes for a run another connection started.

        A serving job's request rows are written on their own connection (not the tracker's):
        this reads the run's row and tags from the database while it answers, so that a later
        write can give the spool the run before its first spooled row. Nothing happens when
        the database is down now (the tracker's own connection spools the run then).

        Raises:
            StoreError: The database cannot be read for another reason than being down.
        """
        if run_id in self._started or not self._reachable():
            return
        try:
            found = self.rows(
                f"SELECT {', '.join(_RUN_START_COLUMNS)} FROM runs WHERE id = ?", [run_id]
            )
            tags = dict(self.rows("SELECT key, value FROM tags WHERE run_id = ?", [run_id]))
        except StoreUnavailableError as exc:
            self._down(exc)
            return
        if found:
            self._started[run_id] = (found[0], tags)

    # -- internals -------------------------------------------------------------------------

    def _route(self, method: str, run_id: str, args: Any, kwargs: dict[str, Any]) -> None:
        if self._reachable():
            try:
                getattr(RunStore, method)(self, run_id, *args, **kwargs)
                return
            except StoreUnavailableError as exc:
                self._down(exc)
        self._adopt(run_id)
        getattr(self.spool, method)(run_id, *args, **kwargs)

    def _reachable(self) -> bool:
        """True while the database is up; while down, retry it now and then and send."""
        if self._up:
            return True
        now = self._monotonic()
        if now < self._next_try:
            return False
        self._next_try = now + self._retry_s
        try:
            RunStore.close(self)
            RunStore.open(self)
        except StoreUnavailableError:
            return False
        self._up = True
        log.info("greenai: the run store %s is back; sending what was spooled", self.location)
        self._send()
        return self._up

    def _down(self, exc: Exception) -> None:
        self._up = False
        RunStore.close(self)  # no pool left retrying (and logging) in the background
        self._next_try = self._monotonic() + self._retry_s
        message = (
            f"{exc}; the job goes on and keeps its checkpoints in {self.spool.location},"
            f" to be sent when the database answers (retried every {self._retry_s:g} s)"
        )
        if not self._warned:  # one warning per store, however long it stays down
            self._warned = True
            warnings.warn(message, MeasurementWarning, stacklevel=4)
        else:
            log.info("greenai: %s", message)
        self.spool.open()

    def _adopt(self, run_id: str) -> None:
        """Give the spool the row of a run the database holds, before its first spooled write."""
        self.spool.open()
        if self.spool.rows("SELECT 1 FROM runs WHERE id = ?", [run_id]):
            return
        started = self._started.get(run_id)
        if started is None:
            return  # not ours to adopt: the spool's own write says there is no such run
        row, tags = started
        marks = ", ".join("?" * len(_RUN_START_COLUMNS))
        with self.spool.transaction() as conn:
            conn.execute(
                f"INSERT INTO runs ({', '.join(_RUN_START_COLUMNS)}) VALUES ({marks})", row
            )
            tables.save_tags(conn, run_id, tags)

    def _send(self) -> None:
        """Send every spooled run to the database and drop it from the spool."""
        path = spool_path(self)
        if not path.exists():
            return
        self.spool.open()
        sent = 0
        try:
            for (run_id,) in self.spool.rows("SELECT id FROM runs ORDER BY started_at, id", []):
                if self.rows("SELECT 1 FROM runs WHERE id = ?", [run_id]):
                    merge_run(self.spool, self, run_id)
                else:
                    copy_run(self.spool, self, run_id)
                with self.spool.transaction() as conn:
                    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                sent += 1
        except StoreUnavailableError as exc:
            self._down(exc)
        except StoreError as exc:  # another job sending the same spool at once, say
            log.warning("greenai: spooled runs not sent to %s yet: %s", self.location, exc)
        if sent:
            log.info("greenai: sent %d spooled run(s) to %s", sent, self.location)


_RUN_START_COLUMNS = (
    "id", "name", "status", "started_at", "updated_at", "host", "pid", "command", "meta_json",
)  # fmt: skip
