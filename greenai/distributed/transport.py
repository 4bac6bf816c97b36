"""Gather payloads to rank 0 through the process group's key-value store, with a deadline.

``torch.distributed.gather_object`` is a collective: if one rank has died it blocks every
other rank forever. Here each rank instead writes its payload under its own key in the
store the process group was built on (a ``TCPStore`` under torchrun and ``env://``,
whatever the backend: gloo or nccl) and goes on at once; rank 0 waits for the keys until a
deadline and records the ranks that never wrote. No rank other than 0 ever waits.
Each job's keys are named by the tracker's name and its per-name count on the rank.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import quote

from greenai.errors import ConfigError

__all__ = ["GATHER_TIMEOUT_ENV", "KeyValueStore", "StoreGather", "gather_timeout_s"]

GATHER_TIMEOUT_ENV = "GREENAI_GATHER_TIMEOUT_S"
DEFAULT_GATHER_TIMEOUT_S = 25.0
"""Below torchrun's 30 s grace between SIGTERM and SIGKILL, so rank 0 finishes in it."""


class KeyValueStore(Protocol):
    """The part of ``torch.distributed.Store`` used here (TCPStore, FileStore, HashStore)."""

    def set(self, key: str, value: bytes) -> None: ...  # noqa: D102

    def get(self, key: str) -> bytes: ...  # noqa: D102

    def add(self, key: str, amount: int) -> int: ...  # noqa: D102

    def check(self, keys: list[str]) -> bool: ...  # noqa: D102

    def delete_key(self, key: str) -> bool: ...  # noqa: D102


def gather_timeout_s(environ: dict[str, str] | None = None) -> float:
    """Seconds rank 0 waits for the other ranks at stop: ``$GREENAI_GATHER_TIMEOUT_S``, or 25.

    Raises:
        ConfigError: The variable is set but is not a positive number.
    """
    env = os.environ if environ is None else environ
    text = env.get(GATHER_TIMEOUT_ENV)
    if not text:
        return DEFAULT_GATHER_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(
            f"{GATHER_TIMEOUT_ENV} must be a positive number of seconds; got {text!r}"
        )
    return value


class StoreGather:
    """One job's gather: :meth:`begin` at start, :meth:`send` or :meth:`collect` at stop.

    Args:
        store: The process group's store (or any :class:`KeyValueStore`).
        rank: This process's rank; rank 0 collects.
        world_size: Ranks in the job.
        timeout_s: How long rank 0 waits for the last payload, from the start of
            :meth:`collect`.
        prefix: Key prefix, to keep greenai's keys apart from the user's.
        poll_s: Seconds between two looks at the store while rank 0 waits.
        now, sleep: Time source and sleep (injectable for tests).
    """

    def __init__(
        self,
        store: KeyValueStore,
        rank: int,
        world_size: int,
        *,
        timeout_s: float = DEFAULT_GATHER_TIMEOUT_S,
        prefix: str = "greenai",
        poll_s: float = 0.02,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.rank = rank
        self.world_size = world_size
        self.timeout_s = timeout_s
        self._prefix = prefix
        self._poll_s = poll_s
        self._now = now
        self._sleep = sleep
        self._job: str | None = None
        self.stop_waiting: Callable[[], bool] = lambda: False
        """Checked between two polls: True ends :meth:`collect` early (rank 0 got SIGTERM)."""

    @property
    def job(self) -> str | None:
        """This job's key (``greenai/<name>/<n>``), None before :meth:`begin`."""
        return self._job

    def begin(self, name: str = "job") -> str:
        """Number this tracked job: the n-th tracker named ``name`` on a rank is job n.

        The counter is per name (a tracker that runs on rank 0 alone, under another name,
        does not put the others out of step) and lives in the store, so separate Tracker
        objects never reuse a key. Rank 0 checks the name and number each payload carries.
        """
        tag = quote(name, safe="")
        seq = self.store.add(f"{self._prefix}/rank{self.rank}/jobs/{tag}", 1)
        self._job = f"{self._prefix}/{tag}/{seq}"
        return self._job

    def key(self, rank: int) -> str:
        """The store key of ``rank``'s payload for this job."""
        if self._job is None:
            raise ConfigError("StoreGather.begin() must be called before the gather")
        return f"{self._job}/rank{rank}"

    def send(self, payload: bytes) -> None:
        """Write this rank's payload (ranks other than 0), then count it done; never waits."""
        self.store.set(self.key(self.rank), payload)
        self.store.add(f"{self.key(0)}/done", 1)

    def collect(self) -> tuple[dict[int, bytes], tuple[int, ...]]:
        """On rank 0: the other ranks' payloads by rank, and the ranks missing at the deadline.

        Rank 0 polls one counter (one round trip per poll, whatever the world size), then
        reads every payload in one ``multi_get``; it stops early when :attr:`stop_waiting`
        says so. Keys read are deleted so a long-lived store does not grow with every job.
        """
        others = [r for r in range(self.world_size) if r != self.rank]
        done_key = f"{self.key(0)}/done"
        deadline = self._now() + self.timeout_s
        while self.store.add(done_key, 0) < len(others):
            if self._now() >= deadline or self.stop_waiting():
                others = [r for r in others if self.store.check([self.key(r)])]
                break
            self._sleep(self._poll_s)
        keys = [self.key(r) for r in others]
        values = _multi_get(self.store, keys) if keys else []
        for key in [*keys, done_key]:
            self.store.delete_key(key)
        received = {r: bytes(v) for r, v in zip(others, values, strict=True)}
        missing = tuple(r for r in range(self.world_size) if r != self.rank and r not in received)
        return received, missing


def _multi_get(store: KeyValueStore, keys: list[str]) -> list[bytes]:
    """All ``keys`` in one round trip where the store can (TCPStore, HashStore), else one by one."""
    multi = getattr(store, "multi_get", None)
    if multi is not None:
        return [bytes(v) for v in multi(keys)]
    return [bytes(store.get(k)) for k in keys]
