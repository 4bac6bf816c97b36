"""Write a serving job's settled requests to its run store, one row each, as they settle.

:class:`RequestRows` is a :class:`~greenai.serving.ServingMeter`'s ``on_settled``: each
settling pass writes only the requests it finished (one transaction), and the store keeps
the newest ``keep`` rows of the run (:meth:`greenai.store.RunStore.add_requests`). A write
that fails (the store locked or unreachable) keeps its rows, at most ``keep``, for the next
pass; the serving never stops for it.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError
from greenai.serving.attribution import one_line_notes

if TYPE_CHECKING:
    from greenai.serving.attribution import RequestEnergy
    from greenai.store import RunStore

__all__ = ["RequestRows", "request_row"]


def request_row(seq: int, r: RequestEnergy) -> dict[str, Any]:
    """The store row of the ``seq``-th settled request (columns of ``REQUEST_COLUMNS``).

    ``notes``: the request's notes, a line each (each collapsed to one line).
    """
    return {
        "seq": seq,
        "request_id": r.request_id,
        "model": r.model,
        "status": r.status,
        "start_s": r.start_s,
        "end_s": r.end_s,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "energy_j": r.energy_j,
        "uncertainty_j": r.uncertainty_j,
        "prefill_energy_j": r.prefill_energy_j,
        "decode_energy_j": r.decode_energy_j,
        "method": r.method,
        "rule": r.rule,
        "tokens": r.tokens,
        "notes": "\n".join(one_line_notes(r.notes)),  # a line each: one_line()
    }


class RequestRows:
    """Per-request rows of one run, written at each settling pass.

    Args:
        store: An open, writable :class:`~greenai.store.RunStore`.
        run_id: The serving job's run (``job.run_id``).
        keep: Rows kept in the store for this run (the newest), and rows held while the
            store cannot be written.
        own_store: :meth:`close` closes ``store``.

    Attributes:
        written: Rows written so far. failures: Writes that failed (rows kept for later).
        last_error: The last write's error, None after a write that succeeded.

    Raises:
        ConfigError: ``keep`` is not an int >= 1.
    """

    def __init__(
        self, store: RunStore, run_id: str, *, keep: int = 10_000, own_store: bool = False
    ) -> None:
        if not isinstance(keep, int) or keep < 1:
            raise ConfigError(f"keep must be an int >= 1 (request rows kept), got {keep!r}")
        self._store = store
        self._own = own_store
        self.run_id = run_id
        self.keep = keep
        self._seq = 0
        self._pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None

    def __call__(self, settled: list[RequestEnergy]) -> None:
        """Write ``settled`` (and any rows a failed write kept); never raises."""
        with self._lock:
            for r in settled:
                self._seq += 1
                self._pending.append(request_row(self._seq, r))
            self._flush_locked()

    def flush(self) -> None:
        """Retry rows a failed write kept; never raises."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        rows = {c: [row[c] for row in self._pending] for c in self._pending[0]}
        try:
            self._store.add_requests(self.run_id, rows, keep=self.keep)
        except Exception as exc:  # a store failing never stops the serving
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        self.written += len(self._pending)
        self._pending.clear()
        self.last_error = None

    def close(self) -> None:
        """Retry kept rows once more, then close the store if it is this writer's."""
        self.flush()
        if self._own:
            self._store.close()
