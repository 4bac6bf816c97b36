"""The SQLite run store's file: opened, recognised, versioned and migrated.

The schema version lives in ``PRAGMA user_version``. Migration ``k`` (1-based, the scripts of
:mod:`greenai.store.ddl`) takes a file from version ``k - 1`` to ``k``; a file at a version
newer than :data:`SCHEMA_VERSION` was written by a newer greenai and is refused, never
rewritten.

A read-only open (listings, reports, KPIs) of an older file brings it up to date first: in
place where this process may write the file and its folder (once, as the next write would),
else in a copy held in memory for that open (a read-only file system, another user's store),
so every reading command sees the current tables whichever greenai wrote the file.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from greenai.store.ddl import SCHEMA_VERSION, TABLES, migrations
from greenai.store.errors import StoreError
from greenai.store.tables import backfill

__all__ = ["APPLICATION_ID", "BUSY_TIMEOUT_MS", "MIGRATIONS", "SCHEMA_VERSION", "connect"]

BUSY_TIMEOUT_MS = 10_000

APPLICATION_ID = 0x67726E61
"""``PRAGMA application_id`` of a greenai store (``"grna"``), set when a store is created."""

MIGRATIONS = migrations("sqlite")
"""The statements of each migration; ``MIGRATIONS[k - 1]`` takes version ``k - 1`` to ``k``."""


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` and bring its schema up to date.

    The connection is in autocommit mode; callers group writes with ``BEGIN IMMEDIATE``.
    Nothing is written to a file until it is known to be a greenai store (or an empty
    database): another application's SQLite file stays byte-for-byte as it was.

    With ``read_only``, the file must exist; it is opened with SQLite's ``mode=ro`` (and
    ``immutable`` when no writer has a write-ahead log open), so no folder, journal or other
    file is created: it works on a read-only file system and on a store that belongs to
    another user. A file at an older schema is migrated first, in place where it and its
    folder are writable, else into a copy in memory (the file is left as it is).

    Raises:
        StoreError: The directory cannot be created, the file is not SQLite, is another
            application's database or is damaged, or it was created by a newer greenai.
            The file is never deleted or rewritten.
    """
    _check_regular(path)
    if read_only:
        return _connect_read_only(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the run store's folder {path.parent}: {exc}") from exc
    try:
        # The tracker opens the store on the caller's thread and checkpoints from its own
        # thread (never both at once: finish_run follows the join).
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the run store {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Read the header before any pragma that writes, so a foreign file is never touched.
        version = _check_store(conn, path)
        _enable_wal(conn)
        # In WAL mode NORMAL never corrupts the store and keeps every committed checkpoint
        # when the process is killed; only a power cut may lose the last few seconds. FULL
        # would wait for the disk at every checkpoint.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            _migrate(conn, path)
    except BaseException as exc:
        conn.close()
        error = _store_error(exc, path)
        if error is exc:
            raise
        raise error from exc
    return conn


def _check_regular(path: Path) -> None:
    """Refuse a path that is there but is no regular file: SQLite would block on a FIFO.

    Raises:
        StoreError: ``path`` (or its ``-wal`` log) is a FIFO, a device, a socket or a folder.
    """
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
        try:
            mode = candidate.stat().st_mode  # stat, never open: opening a FIFO blocks
        except OSError:
            continue  # not there (yet), or not readable: SQLite says which
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise StoreError(
                f"the run store {candidate} is {kind} (a FIFO, a device?); give the path of"
                " a SQLite file (it is created if missing)"
            )


def _connect_read_only(path: Path) -> sqlite3.Connection:
    conn, version = _open_read_only(path)
    if version >= SCHEMA_VERSION:
        return conn
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK):
        conn.close()
        connect(path).close()  # migrated in place, once, as the next write would
        return _open_read_only(path)[0]
    return _migrated_copy(conn, path)


def _open_read_only(path: Path) -> tuple[sqlite3.Connection, int]:
    # Without a write-ahead log, every committed row is in the main file: "immutable" reads
    # it without creating the -wal and -shm files that mode=ro would (on a read-only file
    # system they cannot be created at all). A writer's live log is read through mode=ro.
    # A writer that starts after this check writes to its own new log; the main file only
    # changes at a checkpoint of that log (every 1000 pages by default), which a short read
    # rarely overlaps (then the listing may fail or be off, and needs repeating).
    live = Path(f"{path}-wal").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if live else "&immutable=1")
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the run store {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _check_store(conn, path)
        if version == 0:
            raise StoreError(f"{path} is an empty database, not a greenai run store yet")
    except BaseException as exc:
        conn.close()
        error = _store_error(exc, path)
        if error is exc:
            raise
        raise error from exc
    return conn, version


def _migrated_copy(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """An older store this process cannot write, copied into memory and migrated there.

    Raises:
        StoreError: The file cannot be read whole, or its migration fails.
    """
    copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        conn.backup(copy)
        _migrate(copy, path)
    except BaseException as exc:
        copy.close()
        error = _store_error(exc, path)
        if error is exc:
            raise
        raise error from exc
    finally:
        conn.close()
    return copy


def _store_error(exc: BaseException, path: Path) -> BaseException:
    if isinstance(exc, sqlite3.OperationalError):  # locked, I/O, permissions: not the file
        return StoreError(f"cannot open the run store {path}: {exc}")
    if isinstance(exc, sqlite3.DatabaseError):
        return StoreError(
            f"{path} is not a greenai run store or is damaged ({exc}); it was left as it is: "
            "move it aside (or use another --store) and greenai will start a new one"
        )
    return exc


def _check_store(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a greenai store (0: an empty database); refuse anything else.

    The header and the table list are read in one read transaction: read one statement at
    a time, another process creating the store in between showed its tables beside a header
    read before it (version 0, application id 0), which looked like another application's.
    """
    if conn.in_transaction:  # the caller's (a migration's write lock)
        return _check_header(conn, path)
    conn.execute("BEGIN")
    try:
        return _check_header(conn, path)
    finally:
        if conn.in_transaction:  # SQLite ends it itself on some errors (I/O, memory)
            conn.execute("COMMIT")


def _check_header(conn: sqlite3.Connection, path: Path) -> int:
    version = _check_version(conn, path)
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    tables = {
        str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if app_id == 0 and version == 0 and not tables:
        return 0  # a new (or empty) file: ours to create
    # Stores made before the application id was set are recognised by their tables.
    if app_id == APPLICATION_ID or (app_id == 0 and version >= 1 and tables >= TABLES):
        return version
    found = ", ".join(sorted(tables)[:5]) or "no tables"
    raise StoreError(
        f"{path} is an SQLite database of another application (application id {app_id}, "
        f"schema version {version}, tables: {found}), not a greenai run store; it was left "
        "as it is: give another --store (or GREENAI_HOME)"
    )


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    # Reading user_version alone may not parse the schema; this does, and fails on garbage.
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"run store {path} was created by a newer greenai (schema {version} > "
            f"{SCHEMA_VERSION}); upgrade greenai or use another --store"
        )
    return version


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a new file to WAL takes an exclusive lock and does not wait on the busy
    # handler, so two processes creating one store at once see "database is locked": retry.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # The version is read again under the write lock: another process may have migrated.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _check_store(conn, path)
        for k in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[k]:
                conn.execute(statement)
        if 0 < version < 3:
            backfill(conn)
        if version == 0:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
