"""RunStore: runs, their Measurements, timelines, phase spans and tags.

The store is one SQLite file (the default) or a PostgreSQL database shared by a fleet
(``postgresql://…``); both run the same SQL (:mod:`greenai.store.tables`). Several processes
may write one store at once (a ``torchrun`` job, two terminals, many nodes): every write is
one short transaction (SQLite: WAL mode, ``BEGIN IMMEDIATE``, up to 10 s wait for a lock).
A run that dies without :meth:`RunStore.finish_run` keeps its last checkpoint and is marked
``interrupted`` the next time a store on its host is opened.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.store import tables
from greenai.store.embedded import SQLiteBackend
from greenai.store.errors import StoreError
from greenai.store.postgres import PostgresBackend, is_url
from greenai.store.requests import (
    REQUEST_COLUMNS,
    append_requests,
    empty_requests,
    requests_from_rows,
)
from greenai.store.tables import Connection
from greenai.tags import check_tags

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STATUSES", "RunStore", "StoredRun", "default_path", "default_store"]

STATUSES = ("running", "completed", "failed", "interrupted")

RUN_COLUMNS = [
    "id",
    "name",
    "status",
    "started_at",
    "duration_s",
    "energy_j",
    "uncertainty_j",
    "co2e_kg",
    "flops",
    "host",
]


def default_path() -> Path:
    """``$GREENAI_HOME/runs.db`` when ``GREENAI_HOME`` is set, else ``./.greenai/runs.db``.

    A leading ``~`` in ``GREENAI_HOME`` is the user's home folder.
    """
    home = os.environ.get("GREENAI_HOME")
    return (Path(home).expanduser() if home else Path(".greenai")) / "runs.db"


def default_store() -> str | Path:
    """``$GREENAI_STORE`` (a file or a ``postgresql://`` URL) if set, else :func:`default_path`."""
    spec = os.environ.get("GREENAI_STORE")
    if spec:  # kept as text when it reads as a URL: Path() would fold "x://" into a folder
        return spec if is_url(spec) or "://" in spec else Path(spec).expanduser()
    return default_path()


@dataclass(frozen=True, eq=False)
class StoredRun:
    """One run as the store holds it.

    Attributes:
        status: ``running``, ``completed``, ``failed`` or ``interrupted``.
        started_at, ended_at: ISO 8601 UTC times; ``ended_at`` is None while running.
        measurement: The last Measurement checkpointed or finished, None before any.
        timeline: Columns ``t_s``, ``device``, ``method``, ``power_w``, ``counter_j``,
            ``energy_j``, as :meth:`greenai.Tracker.timeline` gives them.
        phase_spans: Columns ``phase``, ``depth``, ``start_s``, ``end_s``.
        exit_code: The exit code of the command ``greenai run`` measured (128 + N when
            signal N ended it); None for runs of other kinds.
        tags: The run's tags (team, project, model, site, ...): strings, indexed for KPIs.
        requests: A serving job's per-request rows (:meth:`RunStore.requests`); empty for
            other runs.
    """

    id: str
    name: str
    status: str
    started_at: str
    ended_at: str | None
    host: str
    pid: int | None
    command: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    measurement: Measurement | None = None
    timeline: pd.DataFrame = field(default_factory=lambda: tables.empty_timeline())
    phase_spans: pd.DataFrame = field(default_factory=lambda: tables.empty_spans())
    tags: dict[str, str] = field(default_factory=dict)
    requests: pd.DataFrame = field(default_factory=lambda: empty_requests())

    @property
    def exit_code(self) -> int | None:
        """The measured command's exit code, when :meth:`RunStore.record_outcome` kept one."""
        code = self.meta.get("exit_code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None


class RunStore:
    """The run store: an SQLite file, or a PostgreSQL database shared by many machines.

    Example:
        >>> with RunStore(tmp_path / "runs.db") as store:  # doctest: +SKIP
        ...     run_id = store.start_run("train")
        ...     store.finish_run(run_id, job.result, timeline=job.timeline())

    Args:
        path: The SQLite file (a leading ``~`` is the home folder), or a PostgreSQL URL
            ``postgresql://user:password@host:port/dbname``; None means
            :func:`default_store` (``GREENAI_STORE``, else the default file). Nothing is read
            or created until :meth:`open`.
        read_only: Only read: no folder or file is created (a missing store reads as one
            with no runs), nothing is written, runs whose process died are shown as
            ``interrupted`` without being marked so. For listings: works on a read-only
            file system and on another user's store.
        schema: PostgreSQL only: the schema of greenai's tables (default
            ``GREENAI_STORE_SCHEMA``, else ``greenai``).

    Raises:
        ConfigError: ``path`` is a URL of another scheme (``mysql://…``, ``sqlite://…``) or
            empty.

    Attributes:
        spec: What the store was opened with (a path or a URL): opens it again.
        location: A path or the URL without its password, for messages.
        home: The local folder of reports and exports (the file's folder for SQLite).
        path: The SQLite file; None for PostgreSQL.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        schema: str | None = None,
    ) -> None:
        spec = default_store() if path is None else path
        self.read_only = read_only
        self._backend: SQLiteBackend | PostgresBackend
        if is_url(spec):
            self.spec: str | Path = str(spec)
            self.path: Path | None = None
            self._backend = PostgresBackend(
                str(spec), schema=schema, read_only=read_only, home=default_path().parent
            )
        else:
            if not str(spec).strip():
                raise ConfigError(
                    "the run store is an empty path; give an SQLite file or a postgresql:// URL"
                    " (or leave it out for the default)"
                )
            scheme = str(spec).partition("://")[0]
            if "://" in str(spec) and scheme.replace("+", "").isalnum():
                origin = " (from $GREENAI_STORE)" if path is None else ""
                raise ConfigError(
                    f"the run store {scheme}://…{origin} is a URL greenai cannot open; give an"
                    " SQLite file or a postgresql:// URL"
                )
            self.spec = self.path = Path(spec).expanduser()
            self._backend = SQLiteBackend(self.path, read_only=read_only)
        self.location = self._backend.location
        self.home = self._backend.home
        self._open = False
        self._absent = False  # read_only and nothing there: a store with no runs
        self._dead: set[str] = set()  # read_only: running runs whose process is gone

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend.dialect

    def open(self) -> RunStore:
        """Create or open the file, migrate its schema, and mark dead runs ``interrupted``.

        A file that is not a greenai store (another application's SQLite database) is
        refused before anything is written to it.

        Raises:
            StoreError: The file cannot be created, is not a run store, is damaged, or was
                made by a newer greenai. An existing file is never deleted or rewritten.
        """
        if not self._open and not self._absent:
            if not self._backend.open():
                self._absent = True
                return self
            self._open = True
            try:
                self._recover()
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Close the file or the connections (safe to call twice)."""
        self._backend.close()
        self._open = False
        self._absent = False

    def __enter__(self) -> RunStore:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start_run(
        self,
        name: str,
        *,
        meta: dict[str, Any] | None = None,
        command: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Record a new ``running`` run on this host and process; return its id.

        Ids look like ``20250101-120000-a1b2c3`` (UTC start, then random): they sort by time.
        ``meta`` must be JSON-serialisable; ``tags`` are strings (see :func:`greenai.tags`).

        Raises:
            ConfigError: ``meta`` is not JSON-serialisable or a tag is not a string pair.
            StoreError: The store cannot be written.
        """
        meta_json = _dumps(meta or {}, "meta")
        run_tags = check_tags(tags or {})
        now = _now()
        for _ in range(8):
            run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            try:
                with self._write() as conn:
                    conn.execute(
                        "INSERT INTO runs (id, name, status, started_at, updated_at, host, pid,"
                        " command, meta_json) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                        (
                            run_id,
                            name,
                            _iso(now),
                            _iso(now),
                            socket.gethostname(),
                            os.getpid(),
                            command,
                            meta_json,
                        ),
                    )
                    tables.save_tags(conn, run_id, run_tags)
            except StoreError as exc:
                if self._backend.is_duplicate(exc.__cause__ or exc):
                    continue  # the random suffix collided with a run started the same second
                raise
            return run_id
        raise StoreError(f"could not find a free run id in {self.location}")  # pragma: no cover

    def checkpoint(
        self,
        run_id: str,
        measurement: Measurement | None = None,
        timeline: tables.Table | None = None,
        phase_spans: tables.Table | None = None,
        *,
        buckets: tables.Table | None = None,
        keep_spans_after_s: float | None = None,
    ) -> None:
        """Save the latest snapshot of a running run, in one transaction.

        Rows come as DataFrames or as their columns (a mapping of lists or numpy arrays;
        ``Tracker.timeline(as_frame=False)``). ``measurement`` replaces what was stored. Of
        ``timeline`` only the rows later than
        those already stored for each device are appended, so a checkpoint costs what is
        new, not the whole timeline. ``buckets`` (rows standing for thinned older readings)
        replace the single rows they cover. ``phase_spans`` replace the stored spans, or
        with ``keep_spans_after_s`` are added to them, dropping spans that ended before it.

        Raises:
            StoreError: No such run, or it is no longer ``running``.
        """
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status != "running":
                raise StoreError(f"run {run_id} is {status}; only a running run takes checkpoints")
            self._save(
                conn, run_id, measurement, timeline, phase_spans, buckets, keep_spans_after_s
            )
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (_iso(_now()), run_id))

    def finish_run(
        self,
        run_id: str,
        measurement: Measurement,
        timeline: tables.Table | None = None,
        phase_spans: tables.Table | None = None,
        status: str | None = None,
        *,
        buckets: tables.Table | None = None,
        keep_spans_after_s: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Save the final Measurement and end the run.

        Args:
            run_id: The id :meth:`start_run` returned.
            measurement: The final result (``job.result``).
            timeline: ``job.timeline()``; rows later than those stored are appended.
            phase_spans: ``job.phase_spans()``; replaces what was stored.
            status: ``completed``, ``failed`` or ``interrupted``; defaults to
                ``measurement.status``.
            buckets: See :meth:`checkpoint`.
            keep_spans_after_s: See :meth:`checkpoint`.
            meta: Facts learned while the run went (``Tracker.update_meta``), added to
                those :meth:`start_run` recorded (same names replaced).

        Raises:
            StoreError: No such run.
            ConfigError: ``status`` is not one a finished run can have; ``meta`` is not
                JSON-serialisable.
        """
        final = measurement.status if status is None else status
        if final not in STATUSES[1:]:
            raise ConfigError(f"status must be one of {list(STATUSES[1:])}; got {final!r}")
        now = _iso(_now())
        with self._write() as conn:
            self._status(conn, run_id)
            self._save(
                conn, run_id, measurement, timeline, phase_spans, buckets, keep_spans_after_s
            )
            conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, updated_at = ? WHERE id = ?",
                (final, now, now, run_id),
            )
            if meta:
                (meta_json,) = conn.execute(
                    "SELECT meta_json FROM runs WHERE id = ?", (run_id,)
                ).fetchone()
                merged = {**json.loads(meta_json), **meta}
                conn.execute(
                    "UPDATE runs SET meta_json = ? WHERE id = ?", (_dumps(merged, "meta"), run_id)
                )

    def record_outcome(self, run_id: str, *, command: str, exit_code: int) -> None:
        """Record the command a run measured and its exit code (``greenai run`` does this).

        The command goes to the run's ``command`` column, the exit code to its meta
        (``exit_code``), so both appear in reports and exports.

        Raises:
            StoreError: No such run, or the store cannot be written.
        """
        with self._write() as conn:
            self._status(conn, run_id)
            (meta_json,) = conn.execute(
                "SELECT meta_json FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            meta = {**json.loads(meta_json), "exit_code": int(exit_code)}
            conn.execute(
                "UPDATE runs SET command = ?, meta_json = ? WHERE id = ?",
                (command, _dumps(meta, "meta"), run_id),
            )

    def runs(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """Stored runs, newest first, one row each.

        Columns: ``id``, ``name``, ``status``, ``started_at``, ``duration_s``, ``energy_j``,
        ``uncertainty_j``, ``methods`` (how the energy was obtained: counter, power, model),
        ``co2e_kg``, ``flops``, ``host``, ``tags`` (``team=vision,site=par1``, by name)
        (figures of the last checkpoint
        for a run still going, NaN before any). ``since``/``until`` bound ``started_at``
        (inclusive; naive times are local time); ``tags`` keeps runs with every tag given.

        Raises:
            ConfigError: An unknown status, an unparseable time or a negative limit.
        """
        import pandas as pd

        where, args = [], []
        if name is not None:
            where.append("name = ?")
            args.append(name)
        if status is not None:
            if status not in STATUSES:
                raise ConfigError(f"status must be one of {list(STATUSES)}; got {status!r}")
            where.append("status = ?")
            args.append(status)
        if since is not None:
            where.append("started_at >= ?")
            args.append(_iso(_as_utc(since, "since")))
        if until is not None:
            where.append("started_at <= ?")
            args.append(_iso(_as_utc(until, "until")))
        for key, value in check_tags(tags or {}).items():
            where.append("id IN (SELECT run_id FROM tags WHERE key = ? AND value = ?)")
            args.extend([key, value])
        # How each run's energy was obtained, next to it (an estimate never reads as measured).
        methods = f"(SELECT {self._backend.methods_sql} FROM devices d WHERE d.run_id = runs.id)"
        sql = f"SELECT {', '.join(RUN_COLUMNS)}, {methods}, {self._backend.tags_sql} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            if limit < 0:
                raise ConfigError(f"limit must be 0 or more; got {limit}")
            sql += f" LIMIT {min(int(limit), 2**63 - 1)}"  # more than SQL's largest: all
        rows = [self._shown(row) for row in self._read(sql, args)]
        frame: pd.DataFrame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, "methods", "tags"])
        frame["tags"] = frame["tags"].fillna("").astype(object)
        at = list(frame.columns).index("uncertainty_j") + 1
        frame.insert(at, "methods", frame.pop("methods"))
        floats = ["duration_s", "energy_j", "uncertainty_j", "co2e_kg", "flops"]
        frame[floats] = frame[floats].astype(float)
        return frame

    def get(self, run_id: str) -> StoredRun:
        """One run by id, unique id prefix, or ``"latest"`` (the newest run).

        Raises:
            StoreError: No run matches, or a prefix matches several.
        """
        row = self._find(run_id)
        (rid, name, status, started, ended, host, pid, command, meta, measurement) = row
        if rid in self._dead:
            status = "interrupted"
        timeline = tables.timeline_from_rows(
            self._read(
                "SELECT t.t_s, t.device, d.method, t.power_w, t.counter_j, t.energy_j,"
                " t.peak_power_w FROM timeline t LEFT JOIN devices d ON d.run_id = t.run_id"
                " AND d.name = t.device WHERE t.run_id = ? ORDER BY d.rowid, t.t_s",
                [rid],
            )
        )
        spans = tables.spans_from_rows(
            self._read(
                "SELECT phase, depth, start_s, end_s FROM phase_spans WHERE run_id = ?"
                " ORDER BY rowid",
                [rid],
            )
        )
        run_tags = dict(
            self._read("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", [rid])
        )
        return StoredRun(
            id=rid,
            name=name,
            status=status,
            started_at=started,
            ended_at=ended,
            host=host,
            pid=pid,
            command=command,
            meta=json.loads(meta),
            measurement=None if measurement is None else _stored(measurement, status),
            timeline=timeline,
            phase_spans=spans,
            tags=run_tags,
            requests=self._requests_if_any(rid),
        )

    def add_requests(self, run_id: str, requests: tables.Table, *, keep: int | None = None) -> None:
        """Add a serving job's per-request rows, in one transaction; keep the newest ``keep``.

        ``requests`` has the columns :data:`~greenai.store.requests.REQUEST_COLUMNS` (a frame,
        or a mapping of lists); a ``seq`` already stored is left as it was. Only the new rows
        are written, and rows older than the newest ``keep`` (by ``seq``) are dropped, so a
        write costs what is new, not the run's history. The run may be running or finished
        (a proxy settles its last requests after the job stopped).

        Raises:
            ConfigError: A column is missing, or ``keep`` is not an int >= 0.
            StoreError: No such run, or the store cannot be written.
        """
        with self._write() as conn:
            self._status(conn, run_id)
            append_requests(conn, run_id, requests, keep)

    def requests(self, run_id: str) -> pd.DataFrame:
        """The run's stored request rows, in settling order.

        Columns :data:`~greenai.store.requests.REQUEST_COLUMNS`; energies in J, times in s.

        Raises:
            StoreError: The store cannot be read.
        """
        # A PostgreSQL store of an older schema read without migrating lacks the later
        # columns (``tokens``, ``notes``): read as NULL, not known. No table: no rows.
        have = set(self.columns("requests"))
        if not have:
            return empty_requests()
        chosen = ", ".join(c if c in have else "NULL" for c in REQUEST_COLUMNS)
        rows = self._read(f"SELECT {chosen} FROM requests WHERE run_id = ? ORDER BY seq", [run_id])
        return requests_from_rows(rows)

    def columns(self, table: str) -> list[str]:
        """The columns ``table`` has in this store, in order; none where it has no such table.

        A store opened read-only may be of an older schema (PostgreSQL is read as it is):
        readers such as :func:`greenai.store.copy.copy_runs` select what is there.

        Raises:
            StoreError: The store cannot be read or is not open.
        """
        if self._absent:
            return []
        return self._backend.columns(table)

    def rows(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of one read-only query in the store's shared SQL (``?`` placeholders).

        For roll-ups and copies that read the tables directly (:mod:`greenai.report.kpi`,
        :func:`greenai.store.copy.copy_runs`); the tables are those of :mod:`greenai.store.ddl`.

        Raises:
            StoreError: The query failed or the store is not open.
        """
        return self._read(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction on the store's connection (``?`` placeholders).

        Raises:
            StoreError: The store is read-only, not open, or cannot be written.
        """
        with self._write() as conn:
            yield conn

    # -- internals -------------------------------------------------------------------------

    def _requests_if_any(self, run_id: str) -> pd.DataFrame:
        # A store of schema < 5 opened read-only has no requests table: no rows, not an error
        # (its other tables were just read).
        try:
            return self.requests(run_id)
        except StoreError:
            return empty_requests()

    def _shown(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A runs row with the status a read-write open would have given it."""
        if row[0] in self._dead:
            return (*row[:2], "interrupted", *row[3:])
        return row

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One short write transaction; database errors become StoreError."""
        if self.read_only:
            raise StoreError(f"the run store {self.location} was opened read-only")
        with self._backend.transaction() as conn:
            yield conn

    def _read(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        if self._absent:
            return []
        return self._backend.read(sql, args)

    def _find(self, run_id: str) -> tuple[Any, ...]:
        columns = (
            "id, name, status, started_at, ended_at, host, pid, command, meta_json,"
            " measurement_json"
        )
        if run_id == "latest":
            rows = self._read(
                f"SELECT {columns} FROM runs ORDER BY started_at DESC, id DESC LIMIT 1", []
            )
            if not rows:
                raise StoreError(f"no runs in {self.location} yet")
            return rows[0]
        rows = self._read(f"SELECT {columns} FROM runs WHERE id = ?", [run_id])
        if not rows and run_id:
            rows = self._read(
                f"SELECT {columns} FROM runs WHERE substr(id, 1, {len(run_id)}) = ? LIMIT 6",
                [run_id],
            )
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise StoreError(
                f"no run {run_id!r} in {self.location}; `greenai runs` lists the ids"
                " (any unique prefix, or 'latest', will do)"
            )
        shown = ", ".join(r[0] for r in rows[:5])
        raise StoreError(f"run id prefix {run_id!r} matches several runs ({shown}, ...)")

    def _status(self, conn: Connection, run_id: str) -> str:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.location}; `greenai runs` lists the ids")
        return str(row[0])

    def _save(
        self,
        conn: Connection,
        run_id: str,
        measurement: Measurement | None,
        timeline: tables.Table | None,
        phase_spans: tables.Table | None,
        buckets: tables.Table | None = None,
        keep_spans_after_s: float | None = None,
    ) -> None:
        if timeline is not None:
            tables.append_timeline(conn, run_id, timeline)
        if buckets is not None:
            tables.compact_timeline(conn, run_id, buckets)
        if phase_spans is not None:
            if keep_spans_after_s is None:
                tables.replace_spans(conn, run_id, phase_spans)
            else:
                tables.append_spans(conn, run_id, phase_spans, keep_spans_after_s)
        if measurement is not None:
            tables.save_measurement(conn, run_id, measurement)

    def _recover(self) -> None:
        """Mark ``interrupted`` the runs of this host whose process is gone."""
        rows = self._read(
            "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?",
            [socket.gethostname()],
        )
        dead = [rid for rid, pid in rows if pid is not None and not _pid_alive(int(pid))]
        if self.read_only:
            self._dead = set(dead)
            return
        if not dead:
            return
        with self._write() as conn:
            for rid in dead:
                row = conn.execute(
                    "SELECT measurement_json FROM runs WHERE id = ? AND status = 'running'",
                    (rid,),
                ).fetchone()
                if row is None:
                    continue  # another process recovered it first
                measurement = row[0]
                if measurement is not None:
                    data = json.loads(measurement)
                    if data.get("status") == "running":
                        data["notes"] = [
                            *data.get("notes", []),
                            KILLED_NOTE.format(data.get("duration_s") or 0.0),
                        ]
                    data["status"] = "interrupted"
                    measurement = json.dumps(data)
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = updated_at,"
                    " measurement_json = ? WHERE id = ?",
                    (measurement, rid),
                )


KILLED_NOTE = (
    "the process ended without stopping its tracker (killed?): these are the figures of its"
    " last checkpoint, {:.1f} s into the job"
)


def _stored(text: str, status: str) -> Measurement:
    """The stored Measurement; a run that died keeps its last checkpoint, and says so."""
    m = Measurement.from_dict(json.loads(text))
    if status == "interrupted" and m.status in ("running", "interrupted"):
        note = KILLED_NOTE.format(m.duration_s)
        if m.status == "running" and note not in m.notes:
            m = dataclasses.replace(m, status="interrupted", notes=(*m.notes, note))
    return m


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else (PermissionError), or unknowable
    return True


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def _as_utc(value: datetime | str, what: str) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat rejects "Z"
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ConfigError(f"{what} must be an ISO 8601 time; got {value!r}") from exc
    if value.tzinfo is None:
        value = value.astimezone()  # a naive time is local time
    return value.astimezone(timezone.utc)


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be JSON-serialisable: {exc}") from exc
