"""Stores on both backends: an SQLite file, and a schema of a real PostgreSQL server.

The PostgreSQL tests need ``GREENAI_TEST_POSTGRES`` (a URL; ``.ci/postgres.sh`` starts a
server and prints it). Without it they skip, except under ``CI`` where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from greenai.store import RunStore

ENV = "GREENAI_TEST_POSTGRES"


def postgres_url() -> str:
    """The test server's URL; fails under CI, skips elsewhere, when there is none."""
    url = os.environ.get(ENV)
    if not url:
        message = f'no PostgreSQL server: set {ENV} (eval "$(.ci/postgres.sh)")'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def pg_url() -> str:
    return postgres_url()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema name for this test, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"test_{secrets.token_hex(6)}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., RunStore]:
    """``make_store(read_only=False)``: a store on the parametrised backend, not opened."""
    if request.param == "sqlite":
        return lambda **kw: RunStore(tmp_path / "runs.db", **kw)
    url = postgres_url()
    schema = request.getfixturevalue("pg_schema")
    return lambda **kw: RunStore(url, schema=schema, **kw)


@pytest.fixture
def store(make_store: Callable[..., RunStore]) -> Iterator[RunStore]:
    with make_store() as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "runs.db") as s:
        yield s
