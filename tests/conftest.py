from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_sampler_left_running() -> Iterator[None]:
    """Every test must stop the sampler threads it starts (STYLE.md: never leak a thread)."""
    yield
    names = ("greenai-sampler", "greenai-checkpoint")
    leaked = [t for t in threading.enumerate() if t.name in names and t.is_alive()]
    for t in leaked:
        t.join(timeout=2.0)
    assert not [t for t in leaked if t.is_alive()], "a greenai thread was left running"
