"""Per-request rows of a serving job: written as requests settle, bounded, read as a frame.

One row per request a :class:`greenai.serving.ServingMeter` charged, numbered ``seq`` (1, 2,
...) in the order they settled. A write adds only the new rows and drops the run's rows
older than the newest ``keep`` by ``seq`` (the primary key's order), so it costs what is new
and what is dropped, never the run's history. The SQL is the store's shared layer: it runs
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError
from greenai.store.tables import Connection, Table, _column, _has, _length, _require

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["REQUEST_COLUMNS", "append_requests", "empty_requests", "requests_from_rows"]

REQUEST_COLUMNS = [
    "seq",
    "request_id",
    "model",
    "status",
    "start_s",
    "end_s",
    "prompt_tokens",
    "completion_tokens",
    "energy_j",
    "uncertainty_j",
    "prefill_energy_j",
    "decode_energy_j",
    "method",
    "rule",
    "tokens",
    "notes",
]
"""Columns of a request frame (the ``requests`` table less ``run_id``); energies in J
(above the baseline, ``uncertainty_j`` about 95%), times in s on the job's timeline;
``tokens`` says what the token counts are (``counted``, or the estimates of
:data:`greenai.serving.attribution.TOKEN_COUNTS`; empty in rows stored before it was);
``notes`` what the request's figures could not do (``RequestEnergy.notes`` of
:mod:`greenai.serving.attribution`), one a line, ``""`` for none, empty (NULL: not
known) in rows stored before it was."""

_INTS = ["seq", "prompt_tokens", "completion_tokens"]
_FLOATS = ["start_s", "end_s", "energy_j", "uncertainty_j", "prefill_energy_j", "decode_energy_j"]
_TEXTS = ["request_id", "model", "status", "method", "rule", "tokens", "notes"]
_OPTIONAL = {"tokens", "notes"}
"""Columns a writer may leave out (one from before they were): stored empty."""


def empty_requests() -> pd.DataFrame:
    """A request frame with no rows."""
    return requests_from_rows([])


def requests_from_rows(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """A frame with :data:`REQUEST_COLUMNS` from rows in that order (NULL energy: NaN)."""
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(rows, columns=REQUEST_COLUMNS)
    frame[_INTS] = frame[_INTS].astype(int)
    frame[_FLOATS] = frame[_FLOATS].astype(float)
    frame[_TEXTS] = frame[_TEXTS].astype(object)
    return frame


def append_requests(conn: Connection, run_id: str, requests: Table, keep: int | None) -> None:
    """Add request rows (a ``seq`` already stored is left as it is); keep the newest ``keep``.

    Raises:
        ConfigError: A column of :data:`REQUEST_COLUMNS` is missing, or ``keep`` < 0.
    """
    _require(requests, [c for c in REQUEST_COLUMNS if c not in _OPTIONAL], "requests")
    if keep is not None and (not isinstance(keep, int) or keep < 0):
        raise ConfigError(f"keep must be an int >= 0 (rows kept per run), got {keep!r}")
    if not _length(requests):
        return
    n = _length(requests)
    columns = [
        _column(requests, c) if c not in _OPTIONAL or _has(requests, c) else [None] * n
        for c in REQUEST_COLUMNS
    ]
    rows = [
        (run_id, *(_cell(c, v) for c, v in zip(REQUEST_COLUMNS, row, strict=True)))
        for row in zip(*columns, strict=True)
    ]
    conn.executemany(
        "INSERT INTO requests (run_id, "
        + ", ".join(REQUEST_COLUMNS)
        + ") VALUES ("
        + ", ".join("?" * (len(REQUEST_COLUMNS) + 1))
        + ") ON CONFLICT (run_id, seq) DO NOTHING",
        rows,
    )
    if keep is not None:
        newest = max(int(r[1]) for r in rows)
        conn.execute("DELETE FROM requests WHERE run_id = ? AND seq <= ?", (run_id, newest - keep))


def _cell(column: str, value: Any) -> Any:
    if column in _INTS:
        return int(value)
    if column in _FLOATS:
        x = None if value is None else float(value)
        return None if x is None or math.isnan(x) else x
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)
