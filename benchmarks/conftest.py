"""Shared guards for greenai's own benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_sampler_left_running() -> Iterator[None]:
    """Fail a benchmark that leaves a greenai sampler thread alive (it would skew the next)."""
    yield
    alive = [t.name for t in threading.enumerate() if t.name == "greenai-sampler" and t.is_alive()]
    assert not alive, f"sampler thread(s) still running after the benchmark: {alive}"
