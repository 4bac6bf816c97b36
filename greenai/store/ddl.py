"""The run store's tables, once for both databases: versioned migration scripts.

Each script is written once and rendered for SQLite or PostgreSQL: the few words that differ
(float and integer types, the insertion-order column SQLite gives every table as ``rowid``,
reading a number out of the stored JSON) are placeholders. Migration ``k`` (1-based) takes a
store from schema version ``k - 1`` to ``k``; both databases go through the same versions.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["SCHEMA_VERSION", "TABLES", "Dialect", "migrations"]

Dialect = Literal["sqlite", "postgresql"]

TABLES = frozenset({"runs", "devices", "phases", "timeline", "phase_spans"})
"""Tables every greenai store has had since version 1."""

_V1 = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    started_at TEXT NOT NULL,
    ended_at TEXT,
    updated_at TEXT NOT NULL,
    host TEXT NOT NULL,
    pid {int},
    command TEXT,
    meta_json TEXT NOT NULL DEFAULT '{{}}',
    measurement_json TEXT,
    energy_j {real},
    uncertainty_j {real},
    duration_s {real},
    co2e_kg {real},
    flops {real}
);
CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_name ON runs (name, started_at);
CREATE INDEX runs_status ON runs (status, host);

CREATE TABLE devices (
    {rowid}run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT,
    method TEXT,
    energy_j {real},
    uncertainty_j {real},
    avg_power_w {real},
    peak_power_w {real},
    samples {int},
    partial {int},
    PRIMARY KEY (run_id, name)
);

CREATE TABLE phases (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    count {int} NOT NULL,
    duration_s {real} NOT NULL,
    energy_j {real},
    uncertainty_j {real},
    PRIMARY KEY (run_id, name)
);

CREATE TABLE timeline (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    t_s {real} NOT NULL,
    power_w {real},
    counter_j {real},
    energy_j {real}
);
CREATE INDEX timeline_run ON timeline (run_id, device, t_s);

CREATE TABLE phase_spans (
    {rowid}run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    phase TEXT NOT NULL,
    depth {int} NOT NULL,
    start_s {real} NOT NULL,
    end_s {real} NOT NULL
);
CREATE INDEX phase_spans_run ON phase_spans (run_id);
"""

_V2 = """
ALTER TABLE timeline ADD COLUMN peak_power_w {real};
CREATE INDEX phase_spans_end ON phase_spans (run_id, end_s);
"""
"""Version 2: rows that stand for a bucket of older readings keep their peak power; spans
older than the retention are pruned by end time."""

_V3 = """
ALTER TABLE runs ADD COLUMN pue {real};
ALTER TABLE runs ADD COLUMN co2e_market_kg {real};
ALTER TABLE runs ADD COLUMN renewable_share {real};
ALTER TABLE runs ADD COLUMN water_l {real};
ALTER TABLE runs ADD COLUMN measured_energy_j {real};
CREATE TABLE tags (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX tags_key_value ON tags (key, value, run_id)
"""
"""Version 3: what fleet KPIs add up (PUE, market-based CO2e, renewable share, water, the
energy measured rather than modelled) as columns, and first-class tags, indexed. The columns
of runs stored before are filled from their records by :func:`greenai.store.tables.backfill`."""

_V4 = """
ALTER TABLE runs ADD COLUMN month {int} GENERATED ALWAYS AS
    (CAST(substr(started_at, 1, 4) AS INTEGER) * 100 + CAST(substr(started_at, 6, 2) AS INTEGER))
    {generated};
CREATE INDEX runs_kpi ON runs (month, status, energy_j, uncertainty_j, pue, flops, co2e_kg,
    co2e_market_kg, renewable_share, water_l, measured_energy_j, id)
"""
"""Version 4: the UTC month of each run's start (``YYYYMM``), computed by the database, and
an index that holds every figure a KPI roll-up sums, in month order: a roll-up reads the
index alone, already grouped, instead of every run's row."""

_V5 = """
CREATE TABLE requests (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq {int} NOT NULL,
    request_id TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL,
    start_s {real} NOT NULL,
    end_s {real} NOT NULL,
    prompt_tokens {int} NOT NULL,
    completion_tokens {int} NOT NULL,
    energy_j {real},
    uncertainty_j {real},
    prefill_energy_j {real},
    decode_energy_j {real},
    method TEXT,
    rule TEXT,
    PRIMARY KEY (run_id, seq)
)
"""
"""Version 5: one row per request a serving job charged (``greenai serve-proxy``), numbered
in the order they settled; the newest ones are kept (older ones are pruned by ``seq``, the
primary key's order, so pruning costs the rows dropped)."""

_KPI = (
    "started_at, month, status, energy_j, uncertainty_j, pue, flops, co2e_kg, co2e_market_kg,"
    " renewable_share, water_l, measured_energy_j"
)
_NEW_KPI = ", ".join(f"NEW.{c.strip()}" for c in _KPI.split(","))
_RUN_KPI = ", ".join(f"r.{c.strip()}" for c in _KPI.split(","))
_WATCHED = _KPI.replace(" month,", "")  # a generated column is set through started_at

_V6 = """
ALTER TABLE tags ADD COLUMN started_at TEXT;
ALTER TABLE tags ADD COLUMN month {int};
ALTER TABLE tags ADD COLUMN status TEXT;
ALTER TABLE tags ADD COLUMN energy_j {real};
ALTER TABLE tags ADD COLUMN uncertainty_j {real};
ALTER TABLE tags ADD COLUMN pue {real};
ALTER TABLE tags ADD COLUMN flops {real};
ALTER TABLE tags ADD COLUMN co2e_kg {real};
ALTER TABLE tags ADD COLUMN co2e_market_kg {real};
ALTER TABLE tags ADD COLUMN renewable_share {real};
ALTER TABLE tags ADD COLUMN water_l {real};
ALTER TABLE tags ADD COLUMN measured_energy_j {real};
UPDATE tags SET (KPI) = (SELECT RUN_KPI FROM runs r WHERE r.id = tags.run_id);
CREATE INDEX tags_kpi ON tags (key, month, value, status, energy_j, uncertainty_j, pue, flops,
    co2e_kg, co2e_market_kg, renewable_share, water_l, measured_energy_j, started_at, run_id);
{triggers}
""".replace("RUN_KPI", _RUN_KPI).replace("KPI", _KPI)
"""Version 6: each tag row carries a copy of its run's start, month, status and KPI figures,
kept by triggers (a run's figures or status changing, a tag added), and an index that holds
them in (tag, month, value) order: a per-tag roll-up reads that index alone, already grouped,
with no join to the runs and no sort (docs/fleet.md has the plans and timings)."""

_SQLITE_TRIGGERS = f"""
CREATE TRIGGER tags_kpi_of_run AFTER UPDATE OF {_WATCHED} ON runs
BEGIN UPDATE tags SET ({_KPI}) = ({_NEW_KPI}) WHERE run_id = NEW.id; END;
CREATE TRIGGER tags_kpi_of_tag AFTER INSERT ON tags
BEGIN UPDATE tags SET ({_KPI}) = (SELECT {_RUN_KPI} FROM runs r WHERE r.id = NEW.run_id)
 WHERE run_id = NEW.run_id AND key = NEW.key; END
"""

_POSTGRES_TRIGGERS = f"""
CREATE FUNCTION tags_kpi_of_run() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$ BEGIN UPDATE tags SET ({_KPI}) = ({_NEW_KPI}) WHERE run_id = NEW.id; RETURN NULL; END $$;
CREATE TRIGGER tags_kpi_of_run AFTER UPDATE OF {_WATCHED} ON runs
FOR EACH ROW EXECUTE FUNCTION tags_kpi_of_run();
CREATE FUNCTION tags_kpi_of_tag() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$ BEGIN SELECT {_RUN_KPI} INTO {_NEW_KPI} FROM runs r
 WHERE r.id = NEW.run_id; RETURN NEW; END $$;
CREATE TRIGGER tags_kpi_of_tag BEFORE INSERT ON tags
FOR EACH ROW EXECUTE FUNCTION tags_kpi_of_tag()
"""

_V7 = """
ALTER TABLE requests ADD COLUMN tokens TEXT;
"""
"""Version 7: what each request's token counts are (``counted``, or a proxy's estimates
where the server sent no ``usage``); empty for rows stored before."""

_V8 = """
ALTER TABLE requests ADD COLUMN notes TEXT;
"""
"""Version 8: what each request's figures could not do (its notes, one a line; empty: none);
NULL for rows stored before (unknown)."""

_SCRIPTS = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)

SCHEMA_VERSION = len(_SCRIPTS)

_WORDS: dict[str, dict[str, str]] = {
    # SQLite adds only virtual generated columns to a table (its index stores the values).
    "sqlite": {
        "real": "REAL",
        "int": "INTEGER",
        "rowid": "",
        "generated": "VIRTUAL",
        "triggers": _SQLITE_TRIGGERS,
    },
    "postgresql": {
        "real": "DOUBLE PRECISION",
        "int": "BIGINT",
        "generated": "STORED",
        "triggers": _POSTGRES_TRIGGERS,
        # SQLite's implicit insertion order, made explicit under the same name so one SQL
        # text (ORDER BY rowid) reads both.
        "rowid": "rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,\n    ",
    },
}


def migrations(dialect: Dialect) -> tuple[tuple[str, ...], ...]:
    """The statements of each migration for ``dialect``; entry ``k - 1`` reaches version ``k``.

    Statements end with ``;`` at the end of a line; a ``;`` inside a line (a trigger's body)
    stays in its statement.
    """
    words = _WORDS[dialect]
    return tuple(
        tuple(s.strip() for s in re.split(r";[ \t]*\n", script.format(**words)) if s.strip())
        for script in _SCRIPTS
    )
