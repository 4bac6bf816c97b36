"""Copy runs from one store to another: SQLite files into a shared PostgreSQL store.

Each run is copied whole (its row, devices, phases, timeline, phase spans, tags and
request rows) in one transaction; runs the destination already holds (by id) are left as
they are, so a copy that stopped half-way can simply be run again. The source may be
opened read-only and be of an older schema (from version 2): the summary columns KPIs add
up are recomputed from each run's record, so a store written before they existed copies
whole, and request rows are read with the columns the source has (a later one, such as
``tokens`` or ``notes``, is copied as NULL: not known).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from greenai.store import tables
from greenai.store.errors import StoreError
from greenai.store.requests import REQUEST_COLUMNS, append_requests
from greenai.store.runstore import RunStore

__all__ = ["RUN_TABLE_COLUMNS", "copy_run", "copy_runs", "merge_run"]

RUN_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "id", "name", "status", "started_at", "ended_at", "updated_at", "host", "pid",
        "command", "meta_json", "measurement_json", *tables.SUMMARY_COLUMNS,
    ),
    "devices": (
        "run_id", "name", "kind", "method", "energy_j", "uncertainty_j", "avg_power_w",
        "peak_power_w", "samples", "partial",
    ),
    "phases": ("run_id", "name", "count", "duration_s", "energy_j", "uncertainty_j"),
    "timeline": ("run_id", "device", "t_s", "power_w", "counter_j", "energy_j", "peak_power_w"),
    "phase_spans": ("run_id", "phase", "depth", "start_s", "end_s"),
    "tags": ("run_id", "key", "value"),
    "requests": ("run_id", *REQUEST_COLUMNS),
}  # fmt: skip
"""Every column of each table, in the order they are copied (``runs`` first)."""

_BASE_RUN_COLUMNS = RUN_TABLE_COLUMNS["runs"][: -len(tables.SUMMARY_COLUMNS)]
_ORDER = {
    "devices": "rowid",
    "timeline": "device, t_s",
    "phase_spans": "rowid",
    "requests": "seq",
}


def copy_runs(
    source: RunStore,
    destination: RunStore,
    *,
    on_run: Callable[[str, bool], None] | None = None,
) -> tuple[int, int]:
    """Copy every run of ``source`` that ``destination`` lacks; both must be open.

    ``source`` may be read-only.

    A run still ``running`` in the source is copied as it stands (its last checkpoint).
    ``on_run(run_id, copied)`` is called for each run, in start order.

    Returns:
        (runs copied, runs the destination already had).

    Raises:
        StoreError: Either store cannot be read or written.
    """
    ids = [r[0] for r in source.rows("SELECT id FROM runs ORDER BY started_at, id", [])]
    copied = skipped = 0
    for run_id in ids:
        if destination.rows("SELECT 1 FROM runs WHERE id = ?", [run_id]):
            skipped += 1
            if on_run is not None:
                on_run(run_id, False)
            continue
        copy_run(source, destination, run_id)
        copied += 1
        if on_run is not None:
            on_run(run_id, True)
    return copied, skipped


def copy_run(source: RunStore, destination: RunStore, run_id: str) -> None:
    """Copy one run whole, in one transaction of ``destination`` (which must not hold it).

    Raises:
        StoreError: Either store cannot be read or written, or the run is already there.
    """
    data = {
        table: _read(source, table, columns, run_id) for table, columns in RUN_TABLE_COLUMNS.items()
    }
    with destination.transaction() as conn:
        for table, columns in RUN_TABLE_COLUMNS.items():
            marks = ", ".join("?" * len(columns))
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", data[table]
            )


def merge_run(source: RunStore, destination: RunStore, run_id: str) -> None:
    """Bring ``destination``'s copy of a run up to ``source``'s, in one transaction.

    For a run whose first checkpoints reached ``destination`` and whose later ones were
    kept in ``source`` (a spool): timeline rows later than those stored are appended, bucket
    rows replace the rows they cover, phase spans and request rows (by ``seq``: one stored
    already is left as it is) are added, and the record, status, end time, command and meta
    become ``source``'s. Merging twice adds nothing twice.

    Raises:
        StoreError: Either store cannot be read or written.
    """
    (status, ended, updated, command, meta, record) = source.rows(
        "SELECT status, ended_at, updated_at, command, meta_json, measurement_json FROM runs"
        " WHERE id = ?",
        [run_id],
    )[0]
    rows = source.rows(
        "SELECT t.device, t.t_s, t.power_w, t.counter_j, t.energy_j, t.peak_power_w, d.method"
        " FROM timeline t LEFT JOIN devices d ON d.run_id = t.run_id AND d.name = t.device"
        " WHERE t.run_id = ? ORDER BY t.device, t.t_s",
        [run_id],
    )
    names = ["device", "t_s", "power_w", "counter_j", "energy_j", "peak_power_w", "method"]
    single = {n: [r[i] for r in rows if r[5] is None] for i, n in enumerate(names)}
    buckets = {n: [r[i] for r in rows if r[5] is not None] for i, n in enumerate(names)}
    spans = source.rows(
        "SELECT phase, depth, start_s, end_s FROM phase_spans WHERE run_id = ? ORDER BY rowid",
        [run_id],
    )
    requests = _read(source, "requests", RUN_TABLE_COLUMNS["requests"], run_id)
    with destination.transaction() as conn:
        tables.compact_timeline(conn, run_id, buckets)
        tables.append_timeline(conn, run_id, single)
        # A send cut off between this commit and the spool's delete is repeated: drop the
        # spans it added then, so they are not counted twice.
        conn.executemany(
            "DELETE FROM phase_spans WHERE run_id = ? AND phase = ? AND depth = ? AND start_s = ?"
            " AND end_s = ?",
            ((run_id, *span) for span in spans),
        )
        conn.executemany(
            "INSERT INTO phase_spans (run_id, phase, depth, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
            ((run_id, *span) for span in spans),
        )
        if requests:  # ON CONFLICT (run_id, seq) DO NOTHING: a repeated send adds none twice
            columns = list(zip(*(r[1:] for r in requests), strict=True))
            append_requests(conn, run_id, dict(zip(REQUEST_COLUMNS, columns, strict=True)), None)
        if record is not None:
            from greenai.measurement import Measurement

            tables.save_measurement(conn, run_id, Measurement.from_dict(json.loads(record)))
        conn.execute(
            "UPDATE runs SET status = ?, ended_at = ?, updated_at = ?, command = ?, meta_json = ?"
            " WHERE id = ?",
            (status, ended, updated, command, meta, run_id),
        )


def _read(store: RunStore, table: str, columns: tuple[str, ...], run_id: str) -> list[Any]:
    if table == "runs":  # summary columns from the record: they may predate schema 3
        rows = store.rows(f"SELECT {', '.join(_BASE_RUN_COLUMNS)} FROM runs WHERE id = ?", [run_id])
        return [
            (*row, *tables.summary({} if row[10] is None else json.loads(row[10]))) for row in rows
        ]
    order = f" ORDER BY {_ORDER[table]}" if table in _ORDER else ""
    chosen = ", ".join(columns)
    if table == "requests":  # came with schema 5, tokens with 7, notes with 8: NULL, unknown
        have = set(store.columns(table))
        if not have:
            return []
        chosen = ", ".join(c if c in have else "NULL" for c in columns)
    sql = f"SELECT {chosen} FROM {table} WHERE run_id = ?{order}"
    if table == "tags":  # came with schema 3
        try:
            return store.rows(sql, [run_id])
        except StoreError:
            return []
    return store.rows(sql, [run_id])
