"""The embedded backend of the run store: one SQLite file (see :mod:`greenai.store.schema`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from greenai.store.errors import StoreError
from greenai.store.schema import connect
from greenai.store.tables import Connection

__all__ = ["SQLiteBackend"]


class SQLiteBackend:
    """Transactions and reads on one SQLite file; sqlite3 errors become StoreError.

    Args:
        path: The file.
        read_only: Open with SQLite's ``mode=ro``; a missing file is a store with no runs.
    """

    dialect = "sqlite"
    methods_sql = "group_concat(DISTINCT d.method)"
    tags_sql = (
        "(SELECT group_concat(key || '=' || value, ',') FROM"
        " (SELECT key, value FROM tags t WHERE t.run_id = runs.id ORDER BY key))"
    )

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.location = str(path)
        self.home = path.parent
        self._conn: sqlite3.Connection | None = None

    def open(self) -> bool:
        """Open the file; False when read-only and there is no file (no runs).

        Raises:
            StoreError: See :func:`greenai.store.schema.connect`.
        """
        if self.read_only and not self.path.exists():
            return False
        self._conn = connect(self.path, read_only=self.read_only)
        return True

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One short write transaction (``BEGIN IMMEDIATE``).

        Raises:
            StoreError: The store cannot be written (locked past the busy timeout, disk full).
        """
        conn = self._connection
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the run store {self.location}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot write the run store {self.location}: {exc}") from exc
            raise

    def read(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query.

        Raises:
            StoreError: The query failed.
        """
        try:
            return self._connection.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the run store {self.location}: {exc}") from exc

    def columns(self, table: str) -> list[str]:
        """The columns ``table`` has in this store, in order (none: no such table).

        Raises:
            StoreError: The store cannot be read.
        """
        return [str(r[0]) for r in self.read("SELECT name FROM pragma_table_info(?)", [table])]

    @staticmethod
    def is_duplicate(exc: BaseException) -> bool:
        """Whether ``exc`` is a unique-key violation."""
        return isinstance(exc, sqlite3.IntegrityError)

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(
                f"run store {self.location} is not open; call open() or use `with RunStore(...)`"
            )
        return self._conn
