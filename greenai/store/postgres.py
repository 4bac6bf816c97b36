"""The shared backend of the run store: PostgreSQL, through psycopg 3 and its connection pool.

Many machines and ranks write one database at once. Everything greenai owns lives in one
PostgreSQL schema (``greenai`` unless told otherwise): its tables, and ``greenai_schema``
holding the schema version. A schema that holds other tables is another application's and
is refused untouched, as is one written by a newer greenai. Migrations run in one
transaction under an advisory lock, so processes that open a new store at once wait for the
first instead of racing it. The SQL is the SQLite backend's (:mod:`greenai.store.tables`):
this module translates its ``?`` placeholders and binds NaN as NULL.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError
from greenai.store.ddl import SCHEMA_VERSION, migrations
from greenai.store.errors import StoreAccessError, StoreError, StoreUnavailableError
from greenai.store.tables import Connection, backfill

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["DEFAULT_SCHEMA", "PostgresBackend", "is_url", "redact"]

DEFAULT_SCHEMA = "greenai"
"""The PostgreSQL schema the store's tables live in, unless ``GREENAI_STORE_SCHEMA`` says."""

CONNECT_TIMEOUT_S = 5
"""How long opening a connection may take before the database counts as down."""

POOL_TIMEOUT_S = 5.0
"""How long a write waits for a pooled connection before the database counts as down."""

APPLICATION = "greenai run store"
_META = "greenai_schema"
_URL_PREFIXES = ("postgresql://", "postgres://")
_ACCESS_WORDS = ("authentication", "password", "does not exist", "permission denied", "role")


class _QuietPoolRetries(logging.Filter):
    """Drop psycopg_pool's "error connecting" lines for greenai's pools.

    A database that is down is reported once, by greenai (see :mod:`greenai.store.spool`);
    the pool's own retries would print a line each.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and str(args[0]).startswith("greenai:"))


logging.getLogger("psycopg.pool").addFilter(_QuietPoolRetries())


def is_url(spec: object) -> bool:
    """Whether ``spec`` names a PostgreSQL store (``postgresql://…`` or ``postgres://…``)."""
    return isinstance(spec, str) and spec.startswith(_URL_PREFIXES)


def redact(url: str) -> str:
    """``url`` without its password, for messages and listings."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:  # not parseable: show only the scheme
        return url.split("://", 1)[0] + "://…"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


def _modules() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigError(
            "a PostgreSQL run store needs psycopg 3 and psycopg_pool: "
            "pip install 'greenai[postgres]'"
        ) from exc
    return psycopg, psycopg_pool


@functools.lru_cache(maxsize=256)
def _sql(text: str) -> str:
    return text.replace("%", "%%").replace("?", "%s")


def _row(values: Any) -> tuple[Any, ...]:
    # SQLite binds NaN as NULL; PostgreSQL would store a NaN. Unknown stays NULL in both.
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)


class _Connection:
    """psycopg's connection with the SQLite backend's SQL: ``?`` placeholders, NaN as NULL."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self._conn.execute(_sql(sql), _row(parameters))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Any:
        cursor = self._conn.cursor()
        cursor.executemany(_sql(sql), (_row(r) for r in seq_of_parameters))
        return cursor


class PostgresBackend:
    """Transactions and reads on a PostgreSQL run store; psycopg errors become StoreError.

    Args:
        url: A libpq URL, ``postgresql://user:password@host:port/dbname``; the password may
            also come from ``PGPASSWORD`` or ``~/.pgpass``, as libpq reads them.
        schema: The PostgreSQL schema of greenai's tables; None reads
            ``GREENAI_STORE_SCHEMA``, else :data:`DEFAULT_SCHEMA`.
        read_only: Sessions are read-only; a missing schema is a store with no runs.
        home: The local folder for reports and exports (the default store's folder).
    """

    dialect = "postgresql"
    methods_sql = "string_agg(DISTINCT d.method, ',')"
    tags_sql = (
        "(SELECT string_agg(t.key || '=' || t.value, ',' ORDER BY t.key) FROM tags t"
        " WHERE t.run_id = runs.id)"
    )

    def __init__(
        self, url: str, *, schema: str | None, read_only: bool = False, home: Path
    ) -> None:
        self.url = url
        self.schema = schema or os.environ.get("GREENAI_STORE_SCHEMA") or DEFAULT_SCHEMA
        self.read_only = read_only
        self.location = redact(url) + ("" if self.schema == DEFAULT_SCHEMA else f" [{self.schema}]")
        self.home = home
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None

    def open(self) -> bool:
        """Check (and create or migrate) the schema, then open the pool.

        Returns False when read-only and the store does not exist yet (no runs).

        Raises:
            StoreAccessError: The server refused us (password, role, database, permission).
            StoreUnavailableError: The server cannot be reached.
            StoreError: The schema is another application's or a newer greenai's.
            ConfigError: psycopg is not installed.
        """
        psycopg, psycopg_pool = _modules()
        try:
            with psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            ) as conn:
                version = self._check(conn)
                if self.read_only and version == 0:
                    return False
                if not self.read_only and version < SCHEMA_VERSION:
                    self._migrate(conn)
        except psycopg.Error as exc:
            raise self._error(exc, "open") from exc
        self._pool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=self._configure,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_S,
            name=f"greenai:{self.location}",
            open=True,
        )
        return True

    def close(self) -> None:
        """Close the pool (safe to call twice)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction on a pooled connection.

        Raises:
            StoreUnavailableError: The database cannot be reached (the job's sink keeps
                checkpoints locally and sends them later).
            StoreError: Any other database error.
        """
        psycopg, psycopg_pool = _modules()
        try:
            with self._checked_pool.connection() as conn, conn.transaction():
                yield _Connection(conn)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._error(exc, "write") from exc

    def read(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query.

        Raises:
            StoreError: The query failed or the database cannot be reached.
        """
        psycopg, psycopg_pool = _modules()
        try:
            with self._checked_pool.connection() as conn:
                return list(conn.execute(_sql(sql), _row(args)).fetchall())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._error(exc, "read") from exc

    def columns(self, table: str) -> list[str]:
        """The columns ``table`` has in this store's schema, in order (none: no such table).

        Raises:
            StoreError: The database cannot be read.
        """
        rows = self.read(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ?"
            " AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        )
        return [str(r[0]) for r in rows]

    @staticmethod
    def is_duplicate(exc: BaseException) -> bool:
        """Whether ``exc`` is a unique-key violation."""
        import psycopg

        return isinstance(exc, psycopg.errors.UniqueViolation)

    # -- internals -------------------------------------------------------------------------

    @property
    def _checked_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        if self._pool is None:
            raise StoreError(
                f"run store {self.location} is not open; call open() or use `with RunStore(...)`"
            )
        return self._pool

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        if self.read_only:
            conn.execute("SET default_transaction_read_only = on")

    def _tables(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (self.schema,),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def _check(self, conn: psycopg.Connection[Any]) -> int:
        """The schema version of the store (0: no schema or an empty one); refuse others."""
        from psycopg import sql

        tables = self._tables(conn)
        if not tables:
            return 0
        if _META not in tables:
            found = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"the PostgreSQL schema {self.schema!r} of {redact(self.url)} holds another"
                f" application's tables ({found}), not a greenai run store; it was left as it"
                " is: set GREENAI_STORE_SCHEMA to another schema"
            )
        row = conn.execute(
            sql.SQL("SELECT version FROM {}.{}").format(
                sql.Identifier(self.schema), sql.Identifier(_META)
            )
        ).fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"run store {self.location} was created by a newer greenai (schema {version} >"
                f" {SCHEMA_VERSION}); upgrade greenai or use another --store"
            )
        return version

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        from psycopg import sql

        schema = sql.Identifier(self.schema)
        with conn.transaction():
            # Processes opening a new store at once: the first migrates, the others wait here
            # and then find the store at the current version.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"greenai:{self.schema}",))
            version = self._check(conn)
            if version >= SCHEMA_VERSION:
                return
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
            for script in migrations("postgresql")[version:]:
                for statement in script:
                    conn.execute(statement.encode())  # DDL: no parameters, no % to escape
            if version == 0:
                conn.execute(
                    f"CREATE TABLE {_META} (application TEXT NOT NULL, version INTEGER NOT NULL)"
                )
                conn.execute(
                    f"INSERT INTO {_META} (application, version) VALUES (%s, %s)",
                    (APPLICATION, SCHEMA_VERSION),
                )
            else:
                backfill(_Connection(conn))
                conn.execute(f"UPDATE {_META} SET version = %s", (SCHEMA_VERSION,))

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        text = " ".join(str(exc).split())
        import psycopg

        refused = any(word in text.lower() for word in _ACCESS_WORDS)
        if isinstance(exc, psycopg.OperationalError) and doing == "open" and refused:
            return StoreAccessError(
                f"the PostgreSQL server refused the run store {self.location}: {text}"
            )
        if isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.OperationalError):
            return StoreError(f"cannot {doing} the run store {self.location}: {text}")
        return StoreUnavailableError(
            f"cannot reach the run store {self.location} ({doing}): {text or type(exc).__name__}"
        )
