"""Rows in and out of the run store's tables: timeline, phase spans, devices, phases.

pandas NaN becomes SQL NULL on the way in and NaN again on the way out. The SQL is written
once for SQLite and PostgreSQL: ``?`` placeholders (the PostgreSQL connection translates
them), upserts that name the table, no function only one of them has.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Union

from greenai.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from greenai.measurement import Measurement

__all__ = [
    "MEASURED_METHODS",
    "SPAN_COLUMNS",
    "TIMELINE_COLUMNS",
    "Connection",
    "Cursor",
    "Table",
    "append_spans",
    "append_timeline",
    "backfill",
    "compact_timeline",
    "empty_spans",
    "empty_timeline",
    "replace_spans",
    "save_measurement",
    "save_tags",
    "spans_from_rows",
    "timeline_from_rows",
]

TIMELINE_COLUMNS = ["t_s", "device", "method", "power_w", "counter_j", "energy_j", "peak_power_w"]
SPAN_COLUMNS = ["phase", "depth", "start_s", "end_s"]
_TIMELINE_FLOATS = ["t_s", "power_w", "counter_j", "energy_j", "peak_power_w"]
_BUCKET_COLUMNS = ["device", "t_s", "power_w", "counter_j", "energy_j", "peak_power_w"]

Table = Union["pd.DataFrame", Mapping[str, Any]]
"""Rows to write: a DataFrame, or its columns as a mapping of lists or numpy arrays."""

MEASURED_METHODS = ("counter", "power")
"""Methods whose energy was measured; ``model`` is an estimate."""


class Cursor(Protocol):
    """What a query returns: rows."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows."""


class Connection(Protocol):
    """The part of a DB-API connection the store uses, with ``?`` placeholders.

    ``sqlite3.Connection`` is one; the PostgreSQL backend wraps psycopg's.
    """

    def execute(self, sql: str, parameters: Any = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Any:
        """Run one statement for each row of parameters."""


def empty_timeline() -> pd.DataFrame:
    """A timeline frame with no rows."""
    return timeline_from_rows([])


def empty_spans() -> pd.DataFrame:
    """A phase-span frame with no rows."""
    return spans_from_rows([])


def timeline_from_rows(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """A frame with :data:`TIMELINE_COLUMNS` from rows in that order."""
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
    frame[_TIMELINE_FLOATS] = frame[_TIMELINE_FLOATS].astype(float)
    frame[["device", "method"]] = frame[["device", "method"]].astype(object)
    return frame


def spans_from_rows(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """A frame with :data:`SPAN_COLUMNS` from rows in that order."""
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(rows, columns=SPAN_COLUMNS)
    frame["phase"] = frame["phase"].astype(object)
    frame["depth"] = frame["depth"].astype(int)
    frame[["start_s", "end_s"]] = frame[["start_s", "end_s"]].astype(float)
    return frame


def append_timeline(conn: Connection, run_id: str, timeline: Table) -> None:
    """Append the rows of ``timeline`` later than what is stored for each device."""
    _require(timeline, ["t_s", "device", "power_w", "counter_j", "energy_j"], "timeline")
    if not _length(timeline):
        return
    # Plain lists: pandas row operations cost more than the inserts themselves.
    devices = [str(d) for d in _column(timeline, "device")]
    n = len(devices)
    methods = _column(timeline, "method") if _has(timeline, "method") else [None] * n
    last_method: dict[str, Any] = {}
    for d, m in zip(devices, methods, strict=True):
        last_method[d] = m
    # Devices get rows in the timeline's order; their rowids keep that order for reading back.
    conn.executemany(
        "INSERT INTO devices (run_id, name, method) VALUES (?, ?, ?)"
        " ON CONFLICT (run_id, name)"
        " DO UPDATE SET method = coalesce(excluded.method, devices.method)",
        ((run_id, device, _text(method)) for device, method in last_method.items()),
    )
    # One indexed MAX per device (O(log n)); a GROUP BY would scan every stored row.
    stored = {
        d: conn.execute(
            "SELECT MAX(t_s) FROM timeline WHERE run_id = ? AND device = ?", (run_id, d)
        ).fetchone()[0]
        for d in last_method
    }
    peak = _column(timeline, "peak_power_w") if _has(timeline, "peak_power_w") else [None] * n
    conn.executemany(
        "INSERT INTO timeline (run_id, device, t_s, power_w, counter_j, energy_j, peak_power_w)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (run_id, d, t, p, c, e, k)  # floats from tolist(); SQLite binds NaN as NULL
            for d, t, p, c, e, k in zip(
                devices,
                _column(timeline, "t_s"),
                _column(timeline, "power_w"),
                _column(timeline, "counter_j"),
                _column(timeline, "energy_j"),
                peak,
                strict=True,
            )
            if stored[d] is None or t > stored[d]
        ),
    )


def compact_timeline(conn: Connection, run_id: str, buckets: Table) -> None:
    """Replace full-resolution rows by the buckets they were thinned to.

    For each device, the single-reading rows up to its last bucket (and after the bucket
    before the first new one) are deleted and the bucket rows inserted: the cost is the rows
    replaced, not the run's size.
    """
    if not _length(buckets):
        return
    # Plain lists grouped by device: a pandas groupby costs more than the writes.
    by_device: dict[str, list[tuple[Any, ...]]] = {}
    for d, t, p, c, e, k in zip(
        *(_column(buckets, name) for name in _BUCKET_COLUMNS),
        strict=True,
    ):
        by_device.setdefault(str(d), []).append((run_id, str(d), t, p, c, e, k))
    for device, rows in by_device.items():
        times = [r[2] for r in rows]
        # The stored bucket before the first new one: searched back from there, past only the
        # single rows the first new bucket replaces (not the run's older rows).
        prev = conn.execute(
            "SELECT MAX(t_s) FROM timeline WHERE run_id = ? AND device = ? AND t_s < ?"
            " AND peak_power_w IS NOT NULL",
            (run_id, device, min(times)),
        ).fetchone()[0]
        conn.execute(
            "DELETE FROM timeline WHERE run_id = ? AND device = ? AND t_s > ? AND t_s <= ?"
            " AND peak_power_w IS NULL",
            (run_id, device, -1e300 if prev is None else prev, max(times)),
        )
        conn.executemany(  # floats from tolist(); SQLite binds NaN as NULL
            "INSERT INTO timeline (run_id, device, t_s, power_w, counter_j, energy_j,"
            " peak_power_w) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def append_spans(conn: Connection, run_id: str, spans: Table, keep_after_s: float) -> None:
    """Add ``spans`` and drop stored spans that ended before ``keep_after_s``."""
    _require(spans, SPAN_COLUMNS, "phase_spans")
    conn.execute("DELETE FROM phase_spans WHERE run_id = ? AND end_s < ?", (run_id, keep_after_s))
    conn.executemany(
        "INSERT INTO phase_spans (run_id, phase, depth, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
        (
            (run_id, str(p), int(d), float(a), float(b))
            for p, d, a, b in zip(*(_column(spans, name) for name in SPAN_COLUMNS), strict=True)
            if b >= keep_after_s
        ),
    )


def replace_spans(conn: Connection, run_id: str, spans: Table) -> None:
    """Replace the run's phase spans with ``spans``."""
    _require(spans, SPAN_COLUMNS, "phase_spans")
    conn.execute("DELETE FROM phase_spans WHERE run_id = ?", (run_id,))
    conn.executemany(
        "INSERT INTO phase_spans (run_id, phase, depth, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
        (
            (run_id, str(p), int(d), float(a), float(b))
            for p, d, a, b in zip(*(_column(spans, name) for name in SPAN_COLUMNS), strict=True)
        ),
    )


def save_measurement(conn: Connection, run_id: str, m: Measurement) -> None:
    """Store ``m`` as the run's record, its summary columns, devices and phases."""
    conn.execute(
        "UPDATE runs SET measurement_json = ?, "
        + ", ".join(f"{c} = ?" for c in SUMMARY_COLUMNS)
        + " WHERE id = ?",
        (json.dumps(m.to_dict()), *summary(m.to_dict()), run_id),
    )
    for d in m.devices:
        conn.execute(
            "INSERT INTO devices (run_id, name, kind, method, energy_j, uncertainty_j,"
            " avg_power_w, peak_power_w, samples, partial) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, name) DO UPDATE SET kind = excluded.kind,"
            " method = excluded.method, energy_j = excluded.energy_j,"
            " uncertainty_j = excluded.uncertainty_j, avg_power_w = excluded.avg_power_w,"
            " peak_power_w = excluded.peak_power_w, samples = excluded.samples,"
            " partial = excluded.partial",
            (
                run_id,
                d.name,
                d.kind,
                d.method,
                _real(d.energy_j),
                _real(d.uncertainty_j),
                _real(d.avg_power_w),
                _real(d.peak_power_w),
                d.samples,
                int(d.partial),
            ),
        )
    conn.execute("DELETE FROM phases WHERE run_id = ?", (run_id,))
    conn.executemany(
        "INSERT INTO phases (run_id, name, count, duration_s, energy_j, uncertainty_j)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            (run_id, p.name, p.count, p.duration_s, _real(p.energy_j), _real(p.uncertainty_j))
            for p in m.phases
        ),
    )


SUMMARY_COLUMNS = (
    "energy_j",
    "uncertainty_j",
    "duration_s",
    "co2e_kg",
    "flops",
    "pue",
    "co2e_market_kg",
    "renewable_share",
    "water_l",
    "measured_energy_j",
)
"""Columns of ``runs`` copied from the record, for listings and for KPIs summed in SQL."""


def summary(record: Mapping[str, Any]) -> tuple[float | None, ...]:
    """The :data:`SUMMARY_COLUMNS` of a Measurement's ``to_dict()`` record (None: unknown)."""
    carbon = record.get("carbon") or {}
    devices = record.get("devices") or []
    measured = [
        d.get("energy_j") for d in devices if d.get("method") in MEASURED_METHODS
    ]  # a run whose devices are all modelled measured 0 J of its energy
    return (
        _real(record.get("energy_j")),
        _real(record.get("uncertainty_j")),
        _real(record.get("duration_s")),
        _real(carbon.get("co2e_kg")),
        _real(record.get("flops")),
        _real(carbon.get("pue")),
        _real(carbon.get("co2e_market_kg")),
        _real(carbon.get("renewable_share")),
        _real(carbon.get("water_l")),
        _real(sum(_real(e) or 0.0 for e in measured)) if devices else None,
    )


def save_tags(conn: Connection, run_id: str, tags: Mapping[str, str]) -> None:
    """Set the run's tags (keys already there take the new value)."""
    conn.executemany(
        "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
        ((run_id, str(k), str(v)) for k, v in tags.items()),
    )


def backfill(conn: Connection) -> None:
    """Fill the summary columns of version 3 for runs stored before it, from their records."""
    rows = conn.execute(
        "SELECT id, measurement_json FROM runs WHERE measurement_json IS NOT NULL"
    ).fetchall()
    conn.executemany(
        "UPDATE runs SET " + ", ".join(f"{c} = ?" for c in SUMMARY_COLUMNS) + " WHERE id = ?",
        ((*summary(json.loads(text)), rid) for rid, text in rows),
    )


def _names(table: Table) -> list[str]:
    return [str(c) for c in (table.columns if hasattr(table, "columns") else table)]


def _has(table: Table, name: str) -> bool:
    return name in _names(table)


def _column(table: Table, name: str) -> list[Any]:
    """One column as a plain list (a frame's Series, a numpy array or a list)."""
    values = table[name]
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _length(table: Table) -> int:
    if hasattr(table, "columns"):  # a DataFrame
        return len(table)
    return len(next(iter(table.values()), ()))


def _require(table: Table, columns: list[str], what: str) -> None:
    missing = [c for c in columns if not _has(table, c)]
    if missing:
        raise ConfigError(f"{what} lacks columns {missing}; it has {_names(table)}")


def _real(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)
