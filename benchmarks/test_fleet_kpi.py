"""A quarterly roll-up of many runs, on SQLite and on PostgreSQL: the target is 1,000,000
runs in at most 5 s on each, for the whole fleet and per team (a tag).

The runs are generated in the database in bulk (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL): a spread of energies, PUEs, FLOPs and grids over two
years, one in ten without FLOPs and one in seven without PUE, 20 teams. CI rolls up
100,000 (``GREENAI_FLEET_RUNS`` sets the count; the full size's numbers are in
docs/fleet.md). PostgreSQL needs ``GREENAI_TEST_POSTGRES``; under CI its absence fails.

    GREENAI_FLEET_RUNS=1000000 python -m pytest benchmarks/test_fleet_kpi.py -s
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenai.report.kpi import fleet_kpis
from greenai.store import RunStore

RUNS = int(os.environ.get("GREENAI_FLEET_RUNS", "100000"))
BUDGET_S = 5.0

_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {runs} - 1)
INSERT INTO runs (id, name, status, started_at, updated_at, host, energy_j, uncertainty_j,
                  flops, pue, co2e_kg, co2e_market_kg, renewable_share, water_l,
                  measured_energy_j)
SELECT printf('r%08d', i), 'train', 'completed',
       strftime('%Y-%m-%dT%H:%M:%S', 1704067200 + i * {step}, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%S', 1704067200 + i * {step}, 'unixepoch'), 'node',
       1e6 + (i % 1000) * 1e4, 1e4 + (i % 13) * 100,
       CASE WHEN i % 10 = 0 THEN NULL ELSE 1e15 + (i % 97) * 1e13 END,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 1.1 + (i % 5) * 0.05 END,
       0.1 + (i % 11) * 0.01, 0.05 + (i % 11) * 0.005, (i % 10) / 10.0, 1.0 + (i % 3),
       CASE WHEN i % 4 = 0 THEN 0.0 ELSE 1e6 + (i % 1000) * 1e4 END
FROM n;
INSERT INTO tags (run_id, key, value)
SELECT id, 'team', 'team' || (CAST(substr(id, 2) AS INTEGER) % 20) FROM runs
"""

_POSTGRES = """
INSERT INTO runs (id, name, status, started_at, updated_at, host, energy_j, uncertainty_j,
                  flops, pue, co2e_kg, co2e_market_kg, renewable_share, water_l,
                  measured_energy_j)
SELECT 'r' || lpad(i::text, 8, '0'), 'train', 'completed',
       to_char(to_timestamp(1704067200 + i * {step}) AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS'),
       to_char(to_timestamp(1704067200 + i * {step}) AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS'), 'node',
       1e6 + (i % 1000) * 1e4, 1e4 + (i % 13) * 100,
       CASE WHEN i % 10 = 0 THEN NULL ELSE 1e15 + (i % 97) * 1e13 END,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 1.1 + (i % 5) * 0.05 END,
       0.1 + (i % 11) * 0.01, 0.05 + (i % 11) * 0.005, (i % 10) / 10.0, 1.0 + (i % 3),
       CASE WHEN i % 4 = 0 THEN 0.0 ELSE 1e6 + (i % 1000) * 1e4 END
FROM generate_series(0, {runs} - 1) AS i;
INSERT INTO tags (run_id, key, value)
SELECT id, 'team', 'team' || (substr(id, 2)::int % 20) FROM runs;
ANALYZE runs;
ANALYZE tags
"""


def _fill(store: RunStore, script: str) -> None:
    step = max(1, int(2 * 365 * 86400 / RUNS))  # two years of runs
    with store.transaction() as conn:
        for statement in script.format(runs=RUNS, step=step).split(";"):
            if statement.strip():
                conn.execute(statement)


def _postgres_url() -> str:
    url = os.environ.get("GREENAI_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server: set GREENAI_TEST_POSTGRES")
        pytest.skip("no PostgreSQL server: set GREENAI_TEST_POSTGRES")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "sqlite":
        store = RunStore(tmp_path / "fleet.db")
        script = _SQLITE
    else:
        schema = f"bench_{secrets.token_hex(4)}"
        store = RunStore(_postgres_url(), schema=schema)
        script = _POSTGRES
    t0 = time.perf_counter()
    with store:
        _fill(store, script)
        print(f"\n{request.param}: {RUNS} runs generated in {time.perf_counter() - t0:.1f} s")
        yield store
        if request.param == "postgresql":
            with store.transaction() as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize("by", [(), ("team",)], ids=["fleet", "per-team"])
def test_quarterly_roll_up_of_many_runs(benchmark, filled: RunStore, by: tuple[str, ...]) -> None:
    frame = benchmark.pedantic(
        fleet_kpis, args=(filled,), kwargs={"period": "quarter", "by": by}, rounds=3, iterations=1
    )
    assert int(frame["jobs"].sum()) == RUNS
    assert len(frame) == 8 * (20 if by else 1)  # two years of quarters (of 20 teams)
    assert int(frame["jobs_without_flops"].sum()) == len(range(0, RUNS, 10))
    if benchmark.stats is None:  # --benchmark-disable: the roll-up ran once, untimed
        return
    worst = max(benchmark.stats.stats.data)
    benchmark.extra_info.update({"runs": RUNS, "backend": filled.backend, "worst_s": worst})
    print(f"{filled.backend} {RUNS} runs, by={list(by)}: worst of 3 {worst:.2f} s")
    assert worst <= BUDGET_S * max(1.0, RUNS / 1_000_000)
