"""Write a running job to the run store: at start, every few seconds, and at the end.

The checkpoint thread is separate from the sampler so a slow disk never disturbs sampling.
Store failures are logged and warned about, never raised into the user's job: the
in-memory Measurement is always returned.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenai.clock import Clock
from greenai.errors import ConfigError, MeasurementWarning

if TYPE_CHECKING:
    import pandas as pd

    from greenai.measurement import Measurement
    from greenai.store import RunStore

log = logging.getLogger("greenai")

Snapshot = Callable[[], "tuple[Measurement, pd.DataFrame, pd.DataFrame]"]
StoreSpec = "RunStore | str | os.PathLike[str] | bool | None"


def resolve_store(spec: Any) -> RunStore | None:
    """``True`` → the default store; a path → a store there; a RunStore as is; else None."""
    if spec is None or spec is False:
        return None
    from greenai.store import RunStore

    if spec is True:
        return RunStore()
    if isinstance(spec, RunStore):
        return spec
    if isinstance(spec, str | os.PathLike):
        return RunStore(spec)
    raise ConfigError(f"store must be True, a path or a RunStore, got {spec!r}")


class Checkpointer:
    """Records one run: ``start()`` opens the store and the run, ``finish()`` closes both."""

    def __init__(
        self,
        store: RunStore,
        name: str,
        snapshot: Snapshot,
        *,
        clock: Clock,
        period_s: float = 5.0,
        meta: Mapping[str, Any] | None = None,
        command: str | None = None,
    ) -> None:
        if not period_s > 0:
            raise ConfigError(
                f"checkpoint_s must be a positive number of seconds, got {period_s!r}"
            )
        self.store = store
        self.name = name
        self.run_id: str | None = None
        self._snapshot = snapshot
        self._clock = clock
        self._period_s = period_s
        self._meta = dict(meta or {})
        self._command = command
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: list[str] = []

    def start(self) -> None:
        """Open the store and record the run as running. Store errors raise (nothing ran yet)."""
        self.store.open()
        self.run_id = self.store.start_run(self.name, meta=self._meta, command=self._command)
        self._clock.attach(self)
        self._thread = threading.Thread(target=self._run, name="greenai-checkpoint", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self._clock.detach(self)
            raise

    def _run(self) -> None:
        try:
            deadline = self._clock.now() + self._period_s
            while not self._clock.wait_until(self, deadline, self._stop):
                self.checkpoint()
                deadline = max(deadline + self._period_s, self._clock.now())
        finally:
            self._clock.detach(self)

    def checkpoint(self) -> None:
        """Write the current snapshot (called by the thread; public for tests)."""
        try:
            measurement, timeline, spans = self._snapshot()
            assert self.run_id is not None
            self.store.checkpoint(self.run_id, measurement, timeline, spans)
        except Exception as exc:  # a store problem must never stop the user's job
            self._problem(f"checkpoint of run {self.run_id} failed: {exc}")

    def finish(self, measurement: Measurement, timeline: pd.DataFrame, spans: pd.DataFrame) -> None:
        """Stop the thread and write the final result."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        try:
            assert self.run_id is not None
            self.store.finish_run(self.run_id, measurement, timeline, spans)
        except Exception as exc:
            self._problem(f"run {self.run_id} could not be stored: {exc}")
        finally:
            self.store.close()
        for message in self._pending:  # warned on the caller's thread, once each kind
            warnings.warn(message, MeasurementWarning, stacklevel=3)
        self._pending.clear()

    def _problem(self, message: str) -> None:
        log.warning("greenai: %s", message)
        if len(self._pending) < 2 and not any(m[:30] == message[:30] for m in self._pending):
            self._pending.append(message)
