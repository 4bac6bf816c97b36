"""Required sinks (``required = True``, the run store): they must start, and are waited for.

The store is an ordinary sink on its own worker: these tests check that a required sink's
failed start fails ``start()`` before anything else starts, that a slow required sink is
never dropped, and that the store's writes happen on its worker, not the job's thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import greenai
from greenai import sinks
from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.store import RunStore
from greenai.testing import FakeGPU


class Recording:
    """A sink that notes each call (and, when required, may fail or crawl)."""

    def __init__(self, fail_start: bool = False, block_update: threading.Event | None = None):
        self.calls: list[str] = []
        self.fail_start = fail_start
        self.block_update = block_update
        self.blocked_at: float | None = None

    def start(self, job: Any) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise ConfigError("the ledger cannot be opened")

    def update(self, snapshot: Measurement) -> None:
        self.calls.append("update")
        if self.block_update is not None and self.blocked_at is None:
            self.blocked_at = time.monotonic()
            self.block_update.wait(30.0)

    def finish(self, result: Measurement) -> None:
        self.calls.append("finish")


class Required(Recording):
    required = True


def _poll(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        threading.Event().wait(0.01)


def test_a_required_sink_that_cannot_start_fails_start_before_the_others_start() -> None:
    other, required = Recording(), Required(fail_start=True)
    job = greenai.track("j", devices=[FakeGPU()], sinks=[other, required])
    with pytest.raises(ConfigError, match="the ledger cannot be opened"):
        job.start()
    assert required.calls == ["start"]
    assert other.calls == []  # the required sinks start first, and alone
    assert not job.running


def test_a_required_sink_that_hangs_in_start_fails_start_within_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sinks, "START_TIMEOUT_S", 0.5)
    release = threading.Event()

    class Hangs(Required):
        def start(self, job: Any) -> None:
            release.wait(30.0)

    job = greenai.track("j", devices=[FakeGPU()], sinks=[Hangs()])
    t0 = time.monotonic()
    try:
        with pytest.raises(ConfigError, match=r"Hangs.start\(\) did not return within 0.5 s"):
            job.start()
        assert time.monotonic() - t0 < 10.0
    finally:
        release.set()
    _poll(lambda: not any(t.name == "greenai-sink-Hangs" for t in threading.enumerate()))


def test_a_slow_required_sink_is_never_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "UPDATE_TIMEOUT_S", 0.2)
    release = threading.Event()
    required, other = Required(block_update=release), Recording()
    job = greenai.track("j", devices=[FakeGPU()], sinks=[required, other], checkpoint_s=0.05)
    job.start()
    try:
        _poll(lambda: required.blocked_at is not None)
        blocked_at = required.blocked_at
        assert blocked_at is not None
        seen = other.calls.count("update")
        # The live thread went on publishing to the other sink past the update deadline.
        _poll(lambda: other.calls.count("update") > seen + 3)
        _poll(lambda: time.monotonic() - blocked_at > 0.5)
        _poll(lambda: other.calls.count("update") > seen + 6)
    finally:
        release.set()
    result = job.stop()
    assert required.calls[0] == "start" and required.calls[-1] == "finish"
    assert required.calls.count("update") >= 2  # the latest snapshot after the slow one
    assert not [n for n in result.notes if "Required" in n], result.notes


def test_the_store_is_written_on_its_own_worker(tmp_path: Path) -> None:
    threads: dict[str, set[str]] = {}

    class Where(RunStore):
        def _note(self, what: str) -> None:
            threads.setdefault(what, set()).add(threading.current_thread().name)

        def start_run(self, *args: Any, **kwargs: Any) -> str:
            self._note("start_run")
            return super().start_run(*args, **kwargs)

        def checkpoint(self, *args: Any, **kwargs: Any) -> None:
            self._note("checkpoint")
            super().checkpoint(*args, **kwargs)

        def finish_run(self, *args: Any, **kwargs: Any) -> None:
            self._note("finish_run")
            super().finish_run(*args, **kwargs)

    store = Where(tmp_path / "runs.db")
    job = greenai.track("j", devices=[FakeGPU()], store=store, checkpoint_s=0.05).start()
    assert job.run_id is not None  # known when start() returns: the store was waited for
    _poll(lambda: "checkpoint" in threads)
    job.stop()
    assert threads == {
        "start_run": {"greenai-sink-StoreSink"},
        "checkpoint": {"greenai-sink-StoreSink"},
        "finish_run": {"greenai-sink-StoreSink"},
    }
    with RunStore(tmp_path / "runs.db") as reader:
        assert reader.get(job.run_id).status == "completed"
