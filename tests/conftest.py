from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from greenai.devices.base import open_devices
from greenai.store import RunStore

LEAK_WAIT_S = 5.0
"""How long a test's greenai threads get to end after it (a sink left hanging is released
by its test's ``finally``, and ends a moment later)."""


def _leaks(wait_s: float) -> tuple[list[str], list[str]]:
    """greenai threads still alive and devices still open after polling up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        threads = [t.name for t in threading.enumerate() if t.name.startswith("greenai")]
        devices = [repr(d) for d in open_devices()]
        if not (threads or devices) or time.monotonic() > deadline:
            return threads, devices
        time.sleep(0.01)  # polling with a deadline, not waiting on a guess


@pytest.fixture(autouse=True)
def no_greenai_thread_or_device_left() -> Iterator[None]:
    """Before and after every test: no greenai-* thread running, no device left open.

    The check before catches what an earlier test (or an import) left behind; the check
    after names the test that leaked (STYLE.md: never leak a thread).
    """
    threads, devices = _leaks(LEAK_WAIT_S)
    assert not threads and not devices, f"left by an earlier test: {threads} {devices}"
    yield
    threads, devices = _leaks(LEAK_WAIT_S)
    for device in open_devices():  # so that the next test starts clean
        while device.open_count:
            device.close()
    assert not threads, f"greenai thread(s) left running: {threads}"
    assert not devices, f"device(s) left open: {devices}"


# -- run stores on both backends (SQLite, and a real PostgreSQL server) ------------------
# The PostgreSQL tests need GREENAI_TEST_POSTGRES (a URL; `.ci/postgres.sh` starts a server
# and prints it). Without it they skip, except under CI where they fail.
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


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``target``; :meth:`down` refuses and cuts every link."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._links: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._spawn(self._accept, listener)

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # shutdown wakes the blocked accept() on Linux
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            links, self._links = self._links, []
        for s in links:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(timeout=10)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links += [client, server]
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(pg_url: str) -> Iterator[Proxy]:
    """A proxy in front of the test server, up: ``proxy.down()`` cuts the database off."""
    parts = urlsplit(pg_url)
    p = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    p.up()
    yield p
    p.down()


@pytest.fixture
def via_proxy(pg_url: str, proxy: Proxy) -> str:
    """The test server's URL through :func:`proxy`."""
    parts = urlsplit(pg_url)
    return pg_url.replace(f"@{parts.hostname}:{parts.port}", f"@127.0.0.1:{proxy.port}")
