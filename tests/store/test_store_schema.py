from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from greenai.store import SCHEMA_VERSION, RunStore, StoreError, default_path


def test_a_new_store_is_wal_at_the_current_schema_with_every_table(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runs.db"
    with RunStore(path):
        pass
    with RunStore(path):  # reopening migrates nothing and loses nothing
        pass
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "devices", "phases", "timeline", "phase_spans"} <= tables


def test_a_store_from_a_newer_greenai_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 41}")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=rf"newer greenai \(schema {SCHEMA_VERSION + 41} > "):
        RunStore(path).open()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


@pytest.mark.parametrize(
    "content", [b"this is not sqlite " * 300, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="move it aside") as info:
        RunStore(path).open()
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_a_store_another_process_creates_while_this_one_reads_its_header_is_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI failure: the header (version 0, application id 0) was read before another
    # process created the store and the table list after, which looked like another
    # application's database. Here the other creator runs between those two reads.
    path = tmp_path / "runs.db"
    real_connect = sqlite3.connect
    others: list[threading.Thread] = []
    failures: list[BaseException] = []

    def create_elsewhere() -> None:
        try:
            RunStore(path).open().close()
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    def trace(statement: str) -> None:
        if not others and "FROM sqlite_master WHERE type" in statement:
            others.append(threading.Thread(target=create_elsewhere))
            others[0].start()
            time.sleep(0.5)  # a new store is made in a few ms when nothing holds it off

    def traced_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        if not others:
            conn.set_trace_callback(trace)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    with RunStore(path) as store:
        run_id = store.start_run("first")
    others[0].join(timeout=30)
    assert not failures
    with RunStore(path) as store:
        assert store.get(run_id).name == "first"


def test_an_unwritable_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="folder"):
        RunStore(blocker / "runs.db").open()


def test_greenai_home_sets_the_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENAI_HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / "runs.db"
    store = RunStore()
    assert store.path == tmp_path / "home" / "runs.db"
    with store:
        store.start_run("x")
    assert (tmp_path / "home" / "runs.db").is_file()


def test_without_greenai_home_the_store_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GREENAI_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_path() == Path(".greenai") / "runs.db"
    with RunStore() as store:
        store.start_run("x")
    assert (tmp_path / ".greenai" / "runs.db").is_file()


def test_a_version_2_store_gains_tags_and_kpi_columns_from_its_records(tmp_path: Path) -> None:
    import json

    from greenai.store.ddl import migrations

    path = tmp_path / "runs.db"
    record = {
        "energy_j": 7.2e6,
        "carbon": {"pue": 1.2, "co2e_market_kg": 0.5, "renewable_share": 0.4, "water_l": 3.0},
        "devices": [
            {"name": "gpu0", "method": "counter", "energy_j": 6e6},
            {"name": "cpu", "method": "model", "energy_j": 1.2e6},
        ],
        "flops": float("nan"),  # json.dumps writes NaN: old records may hold it
    }
    with closing(sqlite3.connect(path)) as conn:
        for script in migrations("sqlite")[:2]:
            for statement in script:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO runs (id, name, status, started_at, updated_at, host, measurement_json,"
            " energy_j) VALUES ('r1', 'old', 'completed', '2025-01-01', '2025-01-01', 'h', ?, ?)",
            (json.dumps(record), 7.2e6),
        )
        conn.commit()
    with RunStore(path) as store:
        assert list(store.runs()["id"]) == ["r1"]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        row = conn.execute(
            "SELECT pue, co2e_market_kg, renewable_share, water_l, measured_energy_j, flops"
            " FROM runs"
        ).fetchone()
    assert row == (1.2, 0.5, 0.4, 3.0, 6e6, None)


OLD_RUNS = (
    "INSERT INTO runs (id, name, status, started_at, updated_at, host, energy_j, pue)"
    " VALUES ('r1', 'old', 'completed', '2025-02-01T00:00', '2025-02-01', 'h', 7.2e6, 1.5),"
    " ('r2', 'old', 'running', '2025-03-01T00:00', '2025-03-01', 'h', 3.6e6, NULL)"
)
OLD_TAGS = (
    "INSERT INTO tags (run_id, key, value) VALUES ('r1', 'team', 'nlp'), ('r2', 'team', 'cv')"
)


def test_a_version_5_store_copies_its_runs_figures_into_the_tag_rows(tmp_path: Path) -> None:
    from greenai.report.kpi import fleet_kpis
    from greenai.store.ddl import migrations

    path = tmp_path / "runs.db"
    with closing(sqlite3.connect(path)) as conn:
        for script in migrations("sqlite")[:5]:
            for statement in script:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 5")
        conn.execute(OLD_RUNS)
        conn.execute(OLD_TAGS)
        conn.commit()
    with RunStore(path, read_only=True) as store:  # migrated on open (the file is writable)
        assert list(fleet_kpis(store, by=["team"])["team"]) == ["nlp"]
    with RunStore(path) as store:
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET status = 'failed' WHERE id = 'r2'")
        frame = fleet_kpis(store, by=["team"])
    assert list(zip(frame["team"], frame["jobs"], frame["it_kwh"], strict=True)) == [
        ("cv", 1, 1.0),
        ("nlp", 1, 2.0),
    ]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = conn.execute(
            "SELECT run_id, month, status, energy_j, pue FROM tags ORDER BY run_id"
        ).fetchall()
    assert rows == [("r1", 202502, "completed", 7.2e6, 1.5), ("r2", 202503, "failed", 3.6e6, None)]


def _old_store(path: Path, version: int) -> None:
    """A store as greenai left it at ``version``: its migrations, one run (and a tag)."""
    from greenai.store.ddl import migrations

    with closing(sqlite3.connect(path)) as conn:
        for script in migrations("sqlite")[:version]:
            for statement in script:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute(
            "INSERT INTO runs (id, name, status, started_at, updated_at, host, energy_j)"
            " VALUES ('r1', 'old', 'completed', '2025-02-01T00:00', '2025-02-01', 'h', 7.2e6)"
        )
        if version >= 3:  # the tags table came with schema 3
            conn.execute("INSERT INTO tags (run_id, key, value) VALUES ('r1', 'team', 'nlp')")
        conn.commit()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_reading_commands_work_on_an_older_store_and_bring_it_up_to_date(
    tmp_path: Path, version: int, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from greenai.cli import main

    path = tmp_path / "runs.db"
    _old_store(path, version)
    store = ["--store", str(path)]
    assert main(["runs", *store, "--format", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["r1"]
    with closing(sqlite3.connect(path)) as conn:  # migrated in place, as a write would
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert main(["kpi", *store, "--by", "team", "--format", "json"]) == 0
    assert main(["report", "r1", *store]) == 0
    assert "run r1" in capsys.readouterr().out


def test_an_older_store_this_process_cannot_write_is_read_through_a_migrated_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from greenai.cli import main
    from greenai.store import schema

    path = tmp_path / "runs.db"
    _old_store(path, 2)
    before = path.read_bytes()
    # Root (which runs the tests) may write anything: say what another user's store says.
    monkeypatch.setattr(schema.os, "access", lambda p, mode: not mode & os.W_OK)
    assert main(["runs", "--store", str(path), "--format", "csv"]) == 0
    assert "r1" in capsys.readouterr().out
    assert main(["kpi", "--store", str(path), "--by", "team"]) == 0
    assert path.read_bytes() == before  # the file is left as it is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


@pytest.mark.parametrize("version", [5, 6])
def test_store_copy_reads_an_older_stores_request_rows_it_cannot_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    import os

    from greenai.store import schema
    from greenai.store.copy import copy_runs

    path = tmp_path / "runs.db"
    _old_store(path, version)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "INSERT INTO requests (run_id, seq, request_id, status, start_s, end_s,"
            " prompt_tokens, completion_tokens, energy_j) VALUES"
            " ('r1', 1, 'a', 'ok', 0.0, 1.0, 3, 4, 2.5), ('r1', 2, 'b', 'ok', 0.5, 2.0, 5, 6, 1.5)"
        )
        conn.commit()
    before = path.read_bytes()
    monkeypatch.setattr(schema.os, "access", lambda p, mode: not mode & os.W_OK)
    with RunStore(path, read_only=True) as src, RunStore(tmp_path / "copy.db") as dst:
        assert copy_runs(src, dst) == (1, 0)
        got = dst.requests("r1")
    assert path.read_bytes() == before  # read through a migrated copy, the file as it was
    assert list(got["request_id"]) == ["a", "b"] and list(got["energy_j"]) == [2.5, 1.5]
    assert got["tokens"].isna().all() and got["notes"].isna().all()  # not known: NULL
