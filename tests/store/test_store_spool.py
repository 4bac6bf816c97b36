"""The database down at start or mid-run: the job goes on, spools, and sends later."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from greenai.errors import MeasurementWarning
from greenai.measurement import Measurement
from greenai.store import RunStore
from greenai.store.spool import SpooledStore, spool_path


def rows(t0: float, t1: float) -> pd.DataFrame:
    t = [t0, (t0 + t1) / 2]
    return pd.DataFrame(
        {"t_s": t, "device": "gpu0", "method": "counter", "power_w": [100.0, 100.0],
         "counter_j": [100.0 * x for x in t], "energy_j": [100.0 * x for x in t]}
    )  # fmt: skip


def measurement(energy_j: float, status: str = "running") -> Measurement:
    return Measurement(
        name="train", status=status, started_at="", duration_s=energy_j / 100.0,  # type: ignore[arg-type]
        energy_j=energy_j, uncertainty_j=1.0, avg_power_w=100.0, peak_power_w=100.0,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GREENAI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_database_lost_mid_run_spools_once_and_sends_everything_back(
    pg_url: str, pg_schema: str, proxy: Any, via_proxy: str, home: Path
) -> None:
    now = [0.0]
    store = SpooledStore(via_proxy, schema=pg_schema, monotonic=lambda: now[0]).open()
    run_id = store.start_run("train", tags={"team": "vision"})
    store.checkpoint(run_id, measurement(100.0), rows(0.0, 1.0))
    proxy.down()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.checkpoint(run_id, measurement(200.0), rows(1.0, 2.0))
        now[0] += 10.0  # before the retry: straight to the spool
        store.checkpoint(run_id, measurement(300.0), rows(2.0, 3.0))
        proxy.up()
        now[0] += 10.0
        store.checkpoint(run_id, measurement(400.0), rows(3.0, 4.0))
        assert store.spooling
        with RunStore(pg_url, schema=pg_schema) as db:  # the database has the first only
            assert list(db.get(run_id).timeline["t_s"]) == [0.0, 0.5]
        now[0] += 30.0  # the retry finds it back: the spool is sent, then the final write
        store.finish_run(run_id, measurement(500.0, "completed"), rows(4.0, 5.0))
    store.close()
    spooled = [w for w in caught if issubclass(w.category, MeasurementWarning)]
    assert len(spooled) == 1 and "spool" in str(spooled[0].message)
    assert not store.spooling
    with RunStore(pg_url, schema=pg_schema) as db:
        run = db.get(run_id)
    assert run.status == "completed" and run.tags == {"team": "vision"}
    assert run.measurement is not None and run.measurement.energy_j == 500.0
    assert list(run.timeline["t_s"]) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    with RunStore(spool_path(store)) as spool:
        assert spool.runs().empty  # sent, then dropped from the spool


def test_a_database_down_at_start_keeps_the_run_until_a_later_job_sends_it(
    pg_url: str, pg_schema: str, proxy: Any, via_proxy: str, home: Path
) -> None:
    proxy.down()
    with pytest.warns(MeasurementWarning, match="cannot reach"):
        store = SpooledStore(via_proxy, schema=pg_schema).open()
    run_id = store.start_run("offline", tags={"site": "par1"})
    store.checkpoint(run_id, measurement(100.0), rows(0.0, 1.0))
    store.finish_run(run_id, measurement(200.0, "completed"), rows(1.0, 2.0))
    store.record_outcome(run_id, command="python train.py", exit_code=0)
    store.close()
    assert spool_path(store).is_file() and spool_path(store).parent == home / "spool"
    with RunStore(pg_url, schema=pg_schema, read_only=True) as db:
        assert db.runs().empty

    proxy.up()
    with SpooledStore(via_proxy, schema=pg_schema) as later:  # the next job on this machine
        assert not later.spooling
    with RunStore(pg_url, schema=pg_schema) as db:
        run = db.get(run_id)
    assert run.status == "completed" and run.exit_code == 0 and run.tags == {"site": "par1"}
    assert run.measurement is not None and run.measurement.energy_j == 200.0
    assert list(run.timeline["t_s"]) == [0.0, 0.5, 1.0, 1.5]


def test_greenai_run_with_the_database_down_runs_the_command_and_warns_once(
    pg_url: str, pg_schema: str, proxy: Any, via_proxy: str, tmp_path: Path
) -> None:
    proxy.down()
    env = {
        **os.environ,
        "GREENAI_STORE": via_proxy,
        "GREENAI_STORE_SCHEMA": pg_schema,
        "GREENAI_HOME": str(tmp_path / "home"),
    }
    command = [sys.executable, "-m", "greenai", "run", "--", sys.executable, "-c", "print('hi')"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("greenai: warning: cannot reach the run store") == 1, proc.stderr
    proxy.up()
    again = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert again.returncode == 0, again.stderr
    with RunStore(pg_url, schema=pg_schema) as db:
        runs = db.runs()
    assert list(runs["status"]) == ["completed", "completed"]
    assert list(runs["name"]) == ["python -c", "python -c"]


def requests(seqs: list[int], energy_j: float) -> dict[str, list[Any]]:
    """Request rows numbered ``seqs``, each charged ``energy_j``."""
    n = len(seqs)
    return {
        "seq": seqs, "request_id": [f"r{k}" for k in seqs], "model": ["tiny"] * n,
        "status": ["ok"] * n, "start_s": [float(k) for k in seqs],
        "end_s": [k + 0.5 for k in seqs], "prompt_tokens": [16] * n,
        "completion_tokens": [10 * k for k in seqs], "energy_j": [energy_j] * n,
        "uncertainty_j": [0.1 * energy_j] * n, "prefill_energy_j": [0.2 * energy_j] * n,
        "decode_energy_j": [0.8 * energy_j] * n, "method": ["counter"] * n,
        "rule": ["spans"] * n,
    }  # fmt: skip


def test_merging_a_spooled_run_twice_adds_nothing_twice(store: RunStore, tmp_path: Path) -> None:
    from greenai.store.copy import merge_run

    run_id = store.start_run("train")
    store.checkpoint(run_id, measurement(100.0), rows(0.0, 1.0))
    store.add_requests(run_id, requests([1, 2], 5.0))  # written before the database went
    with RunStore(tmp_path / "spool.db") as spool:
        with spool.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, name, status, started_at, updated_at, host, meta_json)"
                " VALUES (?, 'train', 'running', '2026-01-01', '2026-01-01', 'h', '{}')",
                (run_id,),
            )
        spans = pd.DataFrame({"phase": ["fwd"], "depth": [0], "start_s": [1.0], "end_s": [1.5]})
        spool.checkpoint(run_id, measurement(200.0), rows(1.0, 2.0), spans)
        spool.finish_run(run_id, measurement(300.0, "completed"), rows(2.0, 3.0))
        # the spool holds 2 again (a write retried after a failure) and 3, 4 (spooled only)
        spool.add_requests(run_id, requests([2, 3, 4], 7.0))
        merge_run(spool, store, run_id)
        merge_run(spool, store, run_id)  # as if the first send was cut off before the delete
    run = store.get(run_id)
    frame = store.requests(run_id)
    assert list(frame["seq"]) == [1, 2, 3, 4]
    assert list(frame["energy_j"]) == [5.0, 5.0, 7.0, 7.0]  # a stored seq is left as it was
    assert list(frame["request_id"]) == ["r1", "r2", "r3", "r4"]
    assert frame["decode_energy_j"].tolist() == pytest.approx([4.0, 4.0, 5.6, 5.6])
    assert list(run.timeline["t_s"]) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert list(run.phase_spans["phase"]) == ["fwd"]
    assert run.status == "completed"
    assert run.measurement is not None and run.measurement.energy_j == 300.0


def test_request_rows_written_while_the_database_is_down_reach_it(
    pg_url: str, pg_schema: str, proxy: Any, via_proxy: str, home: Path
) -> None:
    """As `greenai serve-proxy --store postgresql://...`: the job's store and the request rows'
    own connection both spool while the database is down; the rows reach it once it is back."""
    now = [0.0]
    job = SpooledStore(via_proxy, schema=pg_schema, monotonic=lambda: now[0]).open()
    run_id = job.start_run("serve-proxy")
    job.checkpoint(run_id, measurement(100.0), rows(0.0, 1.0))
    writer = SpooledStore(via_proxy, schema=pg_schema, monotonic=lambda: now[0]).open()
    writer.follow(run_id)
    writer.add_requests(run_id, requests([1], 5.0), keep=100)
    proxy.down()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job.checkpoint(run_id, measurement(200.0), rows(1.0, 2.0))
        writer.add_requests(run_id, requests([2, 3], 6.0), keep=100)
        assert writer.spooling
        with RunStore(spool_path(writer)) as spool:
            assert list(spool.requests(run_id)["seq"]) == [2, 3]
        with RunStore(pg_url, schema=pg_schema) as db:
            assert list(db.requests(run_id)["seq"]) == [1]
        proxy.up()
        now[0] += 60.0  # past the retry: the next write finds the database and sends the spool
        writer.add_requests(run_id, requests([4], 7.0), keep=100)
        job.finish_run(run_id, measurement(300.0, "completed"), rows(2.0, 3.0))
    writer.close()
    job.close()
    with RunStore(pg_url, schema=pg_schema) as db:
        run = db.get(run_id)
        frame = db.requests(run_id)
    assert run.status == "completed"
    assert list(frame["seq"]) == [1, 2, 3, 4]
    assert list(frame["energy_j"]) == [5.0, 6.0, 6.0, 7.0]
    with RunStore(spool_path(job)) as spool:
        assert spool.runs().empty
