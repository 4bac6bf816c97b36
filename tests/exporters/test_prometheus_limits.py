"""The exporter lives in the training process: it must never take its descriptors (issue 28)."""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

import greenai
from greenai.exporters import PrometheusExporter, prometheus
from greenai.testing import FakeGPU


def _poll(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        threading.Event().wait(0.02)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _scrape(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return b"greenai_job_running" in response.read()
    except OSError:
        return False


@pytest.fixture
def many_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < 2200:
        pytest.skip(f"the descriptor limit here is {hard}: too low to open 1,000 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _greenai_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("greenai-prometheus")]


def test_a_thousand_half_open_connections_take_a_bounded_number_of_descriptors(
    many_fds: None,
) -> None:
    job = greenai.track("train", devices=[FakeGPU()])
    with job:
        exporter = PrometheusExporter(job, port=0).start()
        base = _fds()
        clients = []
        try:
            for _ in range(1000):  # connect and say nothing: each would hold a thread before
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", exporter.port))
                clients.append(s)
            # waitress counts its listener and wake-up pipe among the connections it holds
            _poll(lambda: _fds() - base - len(clients) >= prometheus.CONNECTION_LIMIT - 2)
            held = _fds() - base - len(clients)
            assert held <= prometheus.CONNECTION_LIMIT + 2, held
            assert len(_greenai_threads()) <= 1 + prometheus.THREADS
        finally:
            for s in clients:
                s.close()
        _poll(lambda: _scrape(exporter.url))  # the held ones are closed: it serves again
        exporter.stop()
    assert _fds() <= base, "the exporter's sockets outlived stop()"
    assert not _greenai_threads()


def test_an_idle_connection_is_closed_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "CHANNEL_TIMEOUT_S", 1)
    job = greenai.track("train", devices=[FakeGPU()])
    with job, PrometheusExporter(job, port=0) as exporter:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=30) as s:
            t = time.monotonic()
            assert s.recv(1) == b""  # closed by the server, not by us
            assert time.monotonic() - t < 15
        assert _scrape(exporter.url)
