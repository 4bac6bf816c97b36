from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

import greenai
from greenai.errors import ConfigError, GreenAIError
from greenai.store import RunStore, StoreError
from greenai.testing import FakeClock, FakeGPU
from tests.store.runs import small_measurement, tracked_job


def test_a_tracked_run_round_trips_with_timeline_and_phase_spans(store: RunStore) -> None:
    job = tracked_job()
    m = job.result
    run_id = store.start_run("train", meta={"lr": 0.1}, command="python train.py")
    store.finish_run(run_id, m, timeline=job.timeline(), phase_spans=job.phase_spans())

    run = store.get(run_id)
    assert (run.id, run.name, run.status, run.command) == (
        run_id,
        "train",
        "completed",
        "python train.py",
    )
    assert run.meta == {"lr": 0.1}
    assert run.ended_at is not None and run.ended_at >= run.started_at
    assert run.measurement == m
    assert run.measurement is not None and run.measurement.to_dict() == m.to_dict()
    pd.testing.assert_frame_equal(run.timeline, job.timeline(), check_dtype=False)
    pd.testing.assert_frame_equal(run.phase_spans, job.phase_spans(), check_dtype=False)
    assert set(run.timeline["method"]) == {"counter", "power"}
    assert run.timeline["counter_j"].isna().any()  # gpu1 has no counter: NaN survives

    row = store.runs().iloc[0]
    assert row["id"] == run_id
    assert row["energy_j"] == pytest.approx(m.energy_j)
    assert row["uncertainty_j"] == pytest.approx(m.uncertainty_j)
    assert row["duration_s"] == pytest.approx(m.duration_s)
    assert row["co2e_kg"] == pytest.approx(m.co2e_kg)


def test_the_devices_and_phases_tables_hold_the_measurement_aggregates(
    sqlite_store: RunStore, tmp_path: Path
) -> None:
    job = tracked_job()
    run_id = sqlite_store.start_run("train")
    sqlite_store.finish_run(run_id, job.result, timeline=job.timeline())
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        devices = conn.execute(
            "SELECT name, method, energy_j FROM devices WHERE run_id = ? ORDER BY name", (run_id,)
        ).fetchall()
        phases = dict(conn.execute("SELECT name, energy_j FROM phases WHERE run_id = ?", (run_id,)))
    assert [(n, meth) for n, meth, _ in devices] == [("gpu0", "counter"), ("gpu1", "power")]
    assert devices[0][2] == pytest.approx(job.result.device("gpu0").energy_j)
    assert phases["fwd"] == pytest.approx(job.result.phase("fwd").energy_j)
    assert "fwd/attn" in phases


def test_checkpoint_appends_only_timeline_rows_newer_than_those_stored(
    sqlite_store: RunStore, tmp_path: Path
) -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=300.0, seed=3)
    run_id = sqlite_store.start_run("train")
    with greenai.track("train", devices=[gpu], clock=clock) as job:
        clock.advance(1.0)
        first = job.timeline()
        sqlite_store.checkpoint(run_id, timeline=first, phase_spans=job.phase_spans())
        sqlite_store.checkpoint(run_id, timeline=first)  # nothing new: nothing added
        with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
            before = conn.execute(
                "SELECT rowid, t_s FROM timeline WHERE run_id = ? ORDER BY rowid", (run_id,)
            ).fetchall()
        assert len(before) == len(first)
        with job.phase("eval"):
            clock.advance(1.0)
        sqlite_store.checkpoint(run_id, timeline=job.timeline(), phase_spans=job.phase_spans())
    sqlite_store.finish_run(
        run_id, job.result, timeline=job.timeline(), phase_spans=job.phase_spans()
    )

    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        after = conn.execute(
            "SELECT rowid, t_s FROM timeline WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
    assert after[: len(before)] == before  # earlier rows were neither rewritten nor re-added
    run = sqlite_store.get(run_id)
    assert len(run.timeline) == len(job.timeline()) > len(first)
    assert run.timeline["t_s"].is_monotonic_increasing
    assert list(run.phase_spans["phase"]) == ["eval"]


def test_checkpoint_keeps_the_latest_measurement_and_bumps_updated_at(
    sqlite_store: RunStore, tmp_path: Path
) -> None:
    run_id = sqlite_store.start_run("train")
    sqlite_store.checkpoint(run_id, small_measurement())
    first = sqlite_store.get(run_id)
    assert first.status == "running" and first.ended_at is None
    assert first.measurement is not None and first.measurement.energy_j == 100.0

    sqlite_store.checkpoint(run_id, dataclasses.replace(small_measurement(), energy_j=200.0))
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        (updated,) = conn.execute("SELECT updated_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    assert updated >= first.started_at
    latest = sqlite_store.get(run_id).measurement
    assert latest is not None and latest.energy_j == 200.0
    assert sqlite_store.runs()["energy_j"].iloc[0] == 200.0


def test_finished_runs_take_no_checkpoints_and_status_defaults_to_the_measurement(
    store: RunStore,
) -> None:
    run_id = store.start_run("train")
    store.finish_run(run_id, small_measurement(status="failed"))
    assert store.get(run_id).status == "failed"
    with pytest.raises(StoreError, match="failed"):
        store.checkpoint(run_id, small_measurement())
    other = store.start_run("train")
    store.finish_run(other, small_measurement(), status="interrupted")
    assert store.get(other).status == "interrupted"
    with pytest.raises(ConfigError):
        store.finish_run(other, small_measurement(), status="running")


def test_runs_filters_and_orders_newest_first(store: RunStore) -> None:
    ids = []
    for i in range(6):
        run_id = store.start_run("a" if i % 2 else "b")
        if i < 4:
            store.finish_run(run_id, small_measurement(status="failed" if i == 1 else "completed"))
        ids.append(run_id)

    listed = store.runs()
    assert list(listed["id"]) == ids[::-1]
    assert list(listed.columns) == [
        "id",
        "name",
        "status",
        "started_at",
        "duration_s",
        "energy_j",
        "uncertainty_j",
        "methods",
        "co2e_kg",
        "flops",
        "host",
        "tags",
    ]
    assert set(listed["tags"]) == {""}
    assert list(store.runs(name="a")["id"]) == [ids[5], ids[3], ids[1]]
    assert list(store.runs(status="failed")["id"]) == [ids[1]]
    assert list(store.runs(status="running")["id"]) == [ids[5], ids[4]]
    assert list(store.runs(limit=2)["id"]) == [ids[5], ids[4]]
    assert len(store.runs(limit=10**20)) == len(store.runs())  # past SQL's largest: all
    assert store.runs(name="nobody").empty

    started = store.get(ids[2]).started_at
    assert list(store.runs(since=started)["id"]) == ids[2:][::-1]
    assert list(store.runs(until=started)["id"]) == ids[:3][::-1]
    now = datetime.now(timezone.utc)
    assert store.runs(since=now + timedelta(hours=1)).empty
    assert len(store.runs(since=(now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))) == 6
    assert len(store.runs(until=datetime.now() + timedelta(hours=1))) == 6  # naive: local
    with pytest.raises(ConfigError):
        store.runs(status="done")
    with pytest.raises(ConfigError):
        store.runs(since="yesterday")


def test_get_accepts_latest_and_unique_prefixes(store: RunStore) -> None:
    with pytest.raises(StoreError, match="no runs"):
        store.get("latest")
    first = store.start_run("a")
    second = store.start_run("b")
    assert store.get("latest").id == second
    assert store.get(first[:-1]).id == first
    assert store.get(first).id == first
    shared = first[:8]  # the date, shared by both
    with pytest.raises(StoreError, match="several"):
        store.get(shared)
    with pytest.raises(StoreError, match="greenai runs") as info:
        store.get("nope")
    assert isinstance(info.value, GreenAIError)
    with pytest.raises(StoreError, match="greenai runs"):
        store.checkpoint("nope", small_measurement())


def test_run_ids_sort_by_time_and_are_unique(store: RunStore) -> None:
    ids = [store.start_run("x") for _ in range(200)]
    assert len(set(ids)) == 200
    stamps = [r[:15] for r in ids]  # YYYYMMDD-HHMMSS, UTC
    assert stamps == sorted(stamps)
    assert all(len(r.split("-")) == 3 and len(r.split("-")[0]) == 8 for r in ids)


def test_a_closed_store_says_to_open_it(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    assert not (tmp_path / "runs.db").exists()  # the constructor does no I/O
    with pytest.raises(StoreError, match="open"):
        store.runs()
    store.open()
    store.open()  # a second open is harmless
    store.close()
    store.close()


def test_bad_timeline_and_meta_are_config_errors(store: RunStore) -> None:
    run_id = store.start_run("x")
    with pytest.raises(ConfigError, match="energy_j"):
        store.checkpoint(run_id, timeline=pd.DataFrame({"t_s": [0.0], "device": ["g"]}))
    with pytest.raises(ConfigError, match="JSON"):
        store.start_run("x", meta={"f": object()})


def test_checkpoints_take_columns_as_well_as_frames(tmp_path: Path) -> None:
    clock = FakeClock()
    with RunStore(tmp_path / "r.db") as store:
        job = greenai.track("cols", devices=[FakeGPU(clock=clock)], clock=clock).start()
        run_id = store.start_run("cols")
        clock.advance(3.0)
        snap = job.snapshot()
        columns = job.timeline(as_frame=False)
        frame = job.timeline()
        spans, _ = job.phase_spans_since(0, as_frame=False)
        store.checkpoint(run_id, snap, columns, spans, keep_spans_after_s=0.0)
        job.stop()
        stored = store.get(run_id).timeline
        assert len(stored) == len(frame) > 0
        assert stored["energy_j"].tolist() == pytest.approx(frame["energy_j"].tolist())
        with pytest.raises(ConfigError, match="lacks columns"):
            store.checkpoint(run_id, snap, {"t_s": [1.0]}, spans)


def test_a_url_of_another_scheme_is_refused_not_made_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("mysql://me:secret@db/runs", "sqlite:///runs.db"):
        with pytest.raises(ConfigError, match=r"postgresql:// URL") as info:
            RunStore(url)
        assert "secret" not in str(info.value)
    with RunStore(tmp_path / "a.db"):
        pass
    proc = subprocess.run(
        [sys.executable, "-m", "greenai", "store", "copy", "a.db", "mysql://db/runs"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "mysql://" in proc.stderr and [p.name for p in tmp_path.iterdir()] == ["a.db"]


def test_a_url_of_another_scheme_in_greenai_store_is_refused_not_made_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenai.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREENAI_STORE", "mysql://me:secret@db/runs")
    with pytest.raises(ConfigError, match=r"mysql://… \(from \$GREENAI_STORE\)"):
        RunStore()
    assert main(["runs"]) == 2  # was "no runs stored yet in mysql:/me:secret@db/runs"
    assert main(["run", "--", sys.executable, "-c", "pass"]) == 2  # was a file in ./mysql:
    err = capsys.readouterr().err
    assert err.count("greenai: error: the run store mysql://…") == 2 and "secret" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_empty_store_path_is_refused_not_read_as_this_folder(tmp_path: Path) -> None:
    for spec in ("", " "):
        with pytest.raises(ConfigError, match="empty path"):
            RunStore(spec)
    for argv in (["store", "copy", "", "b.db"], ["kpi", "--store", ""], ["runs", "--store", ""]):
        proc = subprocess.run(
            [sys.executable, "-m", "greenai", *argv],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "empty path" in proc.stderr
    assert list(tmp_path.iterdir()) == []
