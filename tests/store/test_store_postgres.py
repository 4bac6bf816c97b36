"""The shared store on a real PostgreSQL server: schema ownership, faults, many writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from greenai.store import SCHEMA_VERSION, RunStore, StoreError
from greenai.store.copy import copy_runs
from greenai.store.errors import StoreAccessError, StoreUnavailableError
from tests.store.runs import small_measurement, tracked_job


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenai", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _tables(url: str, schema: str) -> dict[str, list[tuple[object, ...]]]:
    """Every table of ``schema`` with its rows: to show a refused schema was left as it was."""
    with psycopg.connect(url, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " ORDER BY table_name",
                (schema,),
            )
        ]
        return {
            n: conn.execute(
                sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(
                    sql.Identifier(schema), sql.Identifier(n)
                )
            ).fetchall()
            for n in names
        }


def test_a_new_store_creates_its_schema_and_records_its_version(
    pg_url: str, pg_schema: str
) -> None:
    with RunStore(pg_url, schema=pg_schema) as store:
        assert store.backend == "postgresql"
        assert "greenai:" not in store.location and "@127.0.0.1" in store.location
        run_id = store.start_run("x", tags={"team": "vision"})
    tables = _tables(pg_url, pg_schema)
    assert {"runs", "devices", "phases", "timeline", "phase_spans", "tags"} <= set(tables)
    assert tables["greenai_schema"] == [("greenai run store", SCHEMA_VERSION)]
    assert [row[:3] for row in tables["tags"]] == [(run_id, "team", "vision")]


def test_a_store_from_a_newer_greenai_is_refused_untouched(pg_url: str, pg_schema: str) -> None:
    with RunStore(pg_url, schema=pg_schema) as store:
        store.start_run("x")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.greenai_schema SET version = %s").format(sql.Identifier(pg_schema)),
            (SCHEMA_VERSION + 7,),
        )
    before = _tables(pg_url, pg_schema)
    for read_only in (False, True):
        with pytest.raises(StoreError, match=rf"newer greenai \(schema {SCHEMA_VERSION + 7} >"):
            RunStore(pg_url, schema=pg_schema, read_only=read_only).open()
    assert _tables(pg_url, pg_schema) == before


def test_another_applications_schema_is_refused_untouched(pg_url: str, pg_schema: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {}.runs (id int, payroll text)").format(sql.Identifier(pg_schema))
        )
        conn.execute(
            sql.SQL("INSERT INTO {}.runs VALUES (1, 'secret')").format(sql.Identifier(pg_schema))
        )
    before = _tables(pg_url, pg_schema)
    with pytest.raises(StoreError, match="another application's tables"):
        RunStore(pg_url, schema=pg_schema).open()
    assert _tables(pg_url, pg_schema) == before


def test_a_read_only_open_of_a_missing_store_creates_nothing(pg_url: str, pg_schema: str) -> None:
    with RunStore(pg_url, schema=pg_schema, read_only=True) as store:
        assert store.runs().empty
    assert _tables(pg_url, pg_schema) == {}


def test_a_wrong_password_is_an_access_error_and_one_line_exit_2(
    pg_url: str, pg_schema: str
) -> None:
    bad = pg_url.replace(":greenai@", ":not-the-password@")
    assert bad != pg_url
    with pytest.raises(StoreAccessError, match="password authentication failed"):
        RunStore(bad, schema=pg_schema).open()
    proc = _run_cli("runs", "--store", bad)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("greenai: error:")
    assert "not-the-password" not in proc.stderr  # the password is never printed
    assert "Traceback" not in proc.stderr


def test_a_server_that_is_down_is_unavailable_quickly(pg_schema: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="cannot reach"):
        RunStore("postgresql://greenai:x@127.0.0.1:9/postgres", schema=pg_schema).open()
    assert time.monotonic() - t0 < 30


CONCURRENT_OPEN = """
import sys
from greenai.store import RunStore
with RunStore(sys.argv[1], schema=sys.argv[2]) as store:
    store.start_run("opener")
"""


def test_processes_creating_one_store_at_once_migrate_it_once(pg_url: str, pg_schema: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_OPEN, pg_url, pg_schema],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    tables = _tables(pg_url, pg_schema)
    assert tables["greenai_schema"] == [("greenai run store", SCHEMA_VERSION)]
    assert len(tables["runs"]) == 6


WRITER = """
import sys
import pandas as pd
from greenai.measurement import Measurement
from greenai.store import RunStore

url, schema, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with RunStore(url, schema=schema) as store:
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's go: every process writes at the same time
    for i in range(n):
        run_id = store.start_run(f"{tag}-{i}", meta={"i": i}, tags={"team": tag})
        for k in range(3):
            t = [k + 0.0, k + 0.5]
            timeline = pd.DataFrame(
                {"t_s": t, "device": "gpu0", "method": "counter", "power_w": [100.0, 110.0],
                 "counter_j": [100.0 * x for x in t], "energy_j": [100.0 * x for x in t]}
            )
            store.checkpoint(run_id, timeline=timeline)
        m = Measurement(name=tag, status="completed", started_at="", duration_s=2.5,
                        energy_j=250.0 + i, uncertainty_j=0.1, avg_power_w=105.0,
                        peak_power_w=120.0)
        store.finish_run(run_id, m, timeline=timeline)
print("done", flush=True)
"""

READER = """
import sys, time
from greenai.store import RunStore
url, schema = sys.argv[1], sys.argv[2]
seen = []
with RunStore(url, schema=schema, read_only=True) as store:
    sys.stdin.readline()
    while True:
        frame = store.runs(limit=None)
        seen.append(len(frame))
        if len(frame) and (frame["status"] == "completed").sum() == int(sys.argv[3]):
            break
        store.get("latest")
print(" ".join(map(str, seen)), flush=True)
"""


def test_sixteen_writer_processes_and_a_reader_lose_nothing(pg_url: str, pg_schema: str) -> None:
    with RunStore(pg_url, schema=pg_schema):
        pass  # created first: the writers' own concurrent creation is the test above
    writers, n = 16, 8
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), pg_url, pg_schema, f"w{w}", str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, pg_url, pg_schema, str(writers * n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise AssertionError(p.communicate(timeout=120)[1])
        for p in [*procs, reader]:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=300) for p in procs]
        seen, reader_err = reader.communicate(timeout=300)
    finally:
        for p in [*procs, reader]:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "done"
    assert reader.returncode == 0, reader_err
    counts = [int(x) for x in seen.split()]
    assert counts == sorted(counts) and counts[-1] == writers * n  # never saw a run vanish

    with RunStore(pg_url, schema=pg_schema) as store:
        runs = store.runs(limit=None)
        assert len(runs) == writers * n
        assert set(runs["name"]) == {f"w{w}-{i}" for w in range(writers) for i in range(n)}
        assert set(runs["status"]) == {"completed"}
        assert len(store.runs(tags={"team": "w3"}, limit=None)) == n
        run = store.get("latest")
        assert list(run.timeline["t_s"]) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    tables = _tables(pg_url, pg_schema)
    assert len(tables["timeline"]) == 6 * writers * n


def test_a_killed_writer_is_interrupted_with_its_last_checkpoint(
    pg_url: str, pg_schema: str
) -> None:
    code = (
        "import os, signal, sys\n"
        "from greenai.store import RunStore\n"
        "from greenai.measurement import Measurement\n"
        "store = RunStore(sys.argv[1], schema=sys.argv[2]).open()\n"
        "run_id = store.start_run('doomed')\n"
        "m = Measurement(name='d', status='running', started_at='', duration_s=2.0,"
        " energy_j=100.0, uncertainty_j=1.0, avg_power_w=50.0, peak_power_w=60.0)\n"
        "store.checkpoint(run_id, m)\n"
        "print(run_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, pg_url, pg_schema],
        capture_output=True,
        text=True,
        timeout=120,
    )
    run_id = proc.stdout.strip()
    assert run_id, proc.stderr
    with RunStore(pg_url, schema=pg_schema) as store:
        run = store.get(run_id)
    assert run.status == "interrupted"
    assert run.measurement is not None and run.measurement.energy_j == 100.0


def test_store_copy_moves_sqlite_runs_into_postgresql_once(
    tmp_path: Path, pg_url: str, pg_schema: str
) -> None:
    job = tracked_job()
    with RunStore(tmp_path / "runs.db") as local:
        first = local.start_run("train", tags={"team": "nlp", "site": "par1"}, meta={"k": 1})
        local.finish_run(first, job.result, job.timeline(), job.phase_spans())
        second = local.start_run("eval")
        local.finish_run(second, small_measurement("eval"))
        expected = local.get(first)
    with (
        RunStore(tmp_path / "runs.db", read_only=True) as src,
        RunStore(pg_url, schema=pg_schema) as dst,
    ):
        assert copy_runs(src, dst) == (2, 0)
        assert copy_runs(src, dst) == (0, 2)  # again: nothing doubled
        got = dst.get(first)
        assert len(dst.runs()) == 2
    assert got.tags == {"site": "par1", "team": "nlp"} and got.meta == {"k": 1}
    assert got.measurement is not None and expected.measurement is not None
    assert got.measurement.energy_j == expected.measurement.energy_j
    assert got.timeline.equals(expected.timeline)
    assert got.phase_spans.equals(expected.phase_spans)

    env = {**__import__("os").environ, "GREENAI_STORE_SCHEMA": pg_schema}
    proc = _run_cli("store", "copy", str(tmp_path / "runs.db"), pg_url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "copied 0 runs" in proc.stdout and "2 were there already" in proc.stdout
    proc = _run_cli("store", "copy", str(tmp_path / "missing.db"), pg_url, env=env)
    assert proc.returncode == 2 and "no run store at" in proc.stderr
    assert not (tmp_path / "missing.db").exists()


def test_every_listing_command_reads_a_postgresql_store(
    tmp_path: Path, pg_url: str, pg_schema: str
) -> None:
    env = {
        **__import__("os").environ,
        "GREENAI_STORE": pg_url,
        "GREENAI_STORE_SCHEMA": pg_schema,
        "GREENAI_HOME": str(tmp_path / "home"),
    }
    proc = _run_cli(
        "run",
        "--tag",
        "team=vision",
        "--tag",
        "model=resnet",
        "--",
        sys.executable,
        "-c",
        "0",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "postgresql://" in proc.stderr and ":greenai@" not in proc.stderr
    runs = _run_cli("runs", "--format", "json", "--tag", "team=vision", env=env)
    assert runs.returncode == 0, runs.stderr
    assert '"status":"completed"' in runs.stdout.replace(" ", "")
    assert _run_cli("runs", "--tag", "team=other", env=env).stdout.strip() == (
        "no runs match these filters"
    )
    report = _run_cli("report", "latest", "--format", "json", env=env)
    assert report.returncode == 0 and '"exit_code": 0' in report.stdout, report.stderr
    export = _run_cli("export", "latest", "--dir", str(tmp_path / "x"), env=env)
    assert export.returncode == 0, export.stderr
    assert (tmp_path / "x" / "summary.csv").is_file()
    html = _run_cli("report", "latest", "--format", "html", env=env)
    assert html.returncode == 0, html.stderr
    assert list((tmp_path / "home" / "reports").glob("*.html"))


def test_a_version_5_schema_copies_its_runs_figures_into_the_tag_rows(
    pg_url: str, pg_schema: str
) -> None:
    from greenai.report.kpi import fleet_kpis
    from greenai.store.ddl import migrations

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        for script in migrations("postgresql")[:5]:
            for statement in script:
                conn.execute(statement.encode())
        conn.execute("CREATE TABLE greenai_schema (application TEXT NOT NULL, version INTEGER)")
        conn.execute("INSERT INTO greenai_schema VALUES ('greenai run store', 5)")
        conn.execute(
            "INSERT INTO runs (id, name, status, started_at, updated_at, host, energy_j)"
            " VALUES ('r1', 'old', 'completed', '2025-02-01T00:00', '2025-02-01', 'h', 7.2e6),"
            " ('r2', 'old', 'running', '2025-03-01T00:00', '2025-03-01', 'h', 3.6e6)"
        )
        conn.execute(
            "INSERT INTO tags (run_id, key, value)"
            " VALUES ('r1', 'team', 'nlp'), ('r2', 'team', 'cv')"
        )
    with RunStore(pg_url, schema=pg_schema) as store:
        with store.transaction() as tx:
            tx.execute("UPDATE runs SET status = 'failed' WHERE id = 'r2'")
        frame = fleet_kpis(store, by=["team"])
    assert list(zip(frame["team"], frame["jobs"], frame["it_kwh"], strict=True)) == [
        ("cv", 1, 1.0),
        ("nlp", 1, 2.0),
    ]
    tables = _tables(pg_url, pg_schema)
    assert tables["greenai_schema"] == [("greenai run store", SCHEMA_VERSION)]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT run_id, month, status, energy_j FROM {}.tags ORDER BY run_id").format(
                sql.Identifier(pg_schema)
            )
        ).fetchall()
    assert rows == [("r1", 202502, "completed", 7.2e6), ("r2", 202503, "failed", 3.6e6)]


def test_a_version_6_schema_read_without_migrating_shows_its_request_rows(
    pg_url: str, pg_schema: str
) -> None:
    from greenai.store.ddl import migrations

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        for script in migrations("postgresql")[:6]:
            for statement in script:
                conn.execute(statement.encode())
        conn.execute("CREATE TABLE greenai_schema (application TEXT NOT NULL, version INTEGER)")
        conn.execute("INSERT INTO greenai_schema VALUES ('greenai run store', 6)")
        conn.execute(
            "INSERT INTO runs (id, name, status, started_at, updated_at, host)"
            " VALUES ('r1', 'old', 'completed', '2025-02-01T00:00', '2025-02-01', 'h')"
        )
        conn.execute(
            "INSERT INTO requests (run_id, seq, request_id, status, start_s, end_s,"
            " prompt_tokens, completion_tokens, energy_j) VALUES"
            " ('r1', 1, 'a', 'ok', 0.0, 1.0, 3, 4, 2.5)"
        )
    with RunStore(pg_url, schema=pg_schema, read_only=True) as store:
        frame = store.requests("r1")  # no tokens column there: read as empty
    assert list(frame["completion_tokens"]) == [4] and frame["tokens"].isna().all()
    with RunStore(pg_url, schema=pg_schema) as store:  # opened to write: migrated
        assert list(store.requests("r1")["tokens"].isna()) == [True]
    assert _tables(pg_url, pg_schema)["greenai_schema"] == [("greenai run store", SCHEMA_VERSION)]


def _old_schema(pg_url: str, pg_schema: str, version: int) -> None:
    """A PostgreSQL store as greenai left it at ``version`` (>= 5), never migrated since:
    one run with two request rows (their ``tokens`` from version 7)."""
    from greenai.store.ddl import migrations

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        for script in migrations("postgresql")[:version]:
            for statement in script:
                conn.execute(statement.encode())
        conn.execute("CREATE TABLE greenai_schema (application TEXT NOT NULL, version INTEGER)")
        conn.execute("INSERT INTO greenai_schema VALUES ('greenai run store', %s)", (version,))
        conn.execute(
            "INSERT INTO runs (id, name, status, started_at, updated_at, host)"
            " VALUES ('r1', 'old', 'completed', '2025-02-01T00:00', '2025-02-01', 'h')"
        )
        conn.execute(
            "INSERT INTO requests (run_id, seq, request_id, model, status, start_s, end_s,"
            " prompt_tokens, completion_tokens, energy_j, uncertainty_j, prefill_energy_j,"
            " decode_energy_j, method, rule) VALUES"
            " ('r1', 1, 'a', 'tiny', 'ok', 0.0, 1.0, 3, 4, 2.5, 0.5, 1.0, 1.5, 'power', 'spans'),"
            " ('r1', 2, 'b', NULL, 'timeout', 0.5, 2.0, 5, 0, NULL, NULL, NULL, NULL, NULL, NULL)"
        )
        if version >= 7:
            conn.execute("UPDATE requests SET tokens = 'estimated' WHERE seq = 2")


@pytest.mark.parametrize("version", [5, 6, 7])
def test_store_copy_reads_a_never_migrated_schemas_request_rows(
    tmp_path: Path, pg_url: str, pg_schema: str, version: int
) -> None:
    _old_schema(pg_url, pg_schema, version)
    with (
        RunStore(pg_url, schema=pg_schema, read_only=True) as src,
        RunStore(tmp_path / "copy.db") as dst,
    ):
        assert copy_runs(src, dst) == (1, 0)
        got = dst.requests("r1")
    # the source was read as it is (a read-only open does not migrate PostgreSQL)
    assert _tables(pg_url, pg_schema)["greenai_schema"] == [("greenai run store", version)]
    assert list(got["request_id"]) == ["a", "b"] and list(got["status"]) == ["ok", "timeout"]
    assert list(got["prompt_tokens"]) == [3, 5] and list(got["completion_tokens"]) == [4, 0]
    assert got["energy_j"][0] == 2.5 and got["energy_j"].isna()[1]
    texts = {c: [x if isinstance(x, str) else None for x in got[c]] for c in got}
    assert texts["method"] == ["power", None] and texts["model"] == ["tiny", None]
    # columns the source did not have are NULL (not known), never a made-up value
    assert texts["notes"] == [None, None]
    assert texts["tokens"] == ([None, "estimated"] if version >= 7 else [None, None])
