from __future__ import annotations

from pathlib import Path

import pytest

import greenai
from greenai.errors import ConfigError, MeasurementWarning
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU


def test_running_job_is_checkpointed_then_finished(tmp_path: Path) -> None:
    clock = FakeClock()
    db = tmp_path / "runs.db"
    job = greenai.track(
        "ckpt",
        devices=[FakeGPU(clock=clock)],
        clock=clock,
        store=db,
        checkpoint_s=1.0,
        meta={"purpose": "test"},
    ).start()
    assert job.run_id is not None
    for _ in range(35):
        clock.advance(0.1)
        job.step(samples=4)
    with RunStore(db) as store:
        live = store.get(job.run_id)
    assert live.status == "running" and live.meta["purpose"] == "test"
    assert live.measurement is not None
    assert live.measurement.duration_s == pytest.approx(3.0)
    # three checkpoints each appended only their new rows: every reading once, none lost
    assert not live.timeline.duplicated(["device", "t_s"]).any()
    n = len(live.timeline)
    # rows are stored once settled (a counter update or two behind the last reading)
    assert n >= 25 and list(live.timeline["t_s"]) == list(job.timeline()["t_s"][:n])
    result = job.stop()
    assert live.measurement.steps.count == 29  # the checkpoint at 3.0 s precedes step 30
    with RunStore(db) as store:
        done = store.get(job.run_id)
    assert done.status == "completed"
    assert done.measurement == result
    assert len(done.timeline) == len(job.timeline())


def test_a_failing_store_warns_but_never_stops_the_job(tmp_path: Path) -> None:
    clock = FakeClock()

    class Broken(RunStore):
        def checkpoint(self, *args: object, **kwargs: object) -> None:
            raise OSError("disk full")

    job = greenai.track(
        devices=[FakeGPU(clock=clock)],
        clock=clock,
        store=Broken(tmp_path / "b.db"),
        checkpoint_s=0.5,
    ).start()
    clock.advance(2.0)
    with pytest.warns(MeasurementWarning, match="disk full"):
        result = job.stop()
    assert result.energy_j > 0


def test_store_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="store must be"):
        greenai.track(store=42)
    with pytest.raises(ConfigError, match="checkpoint_s"):
        greenai.track(checkpoint_s=0)


def test_a_fork_during_the_first_checkpoint_cannot_deadlock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The live thread builds frames with pandas; importing it there held the import lock
    # when a fork pool started, and the child deadlocked. start() imports it instead.
    import subprocess
    import sys

    code = f"""
import multiprocessing as mp, sys
import greenai
from greenai.testing import FakeGPU
assert "pandas" not in sys.modules
job = greenai.track(devices=[FakeGPU()], store={str(tmp_path / "r.db")!r}, checkpoint_s=0.01)
job.start()
assert "pandas" in sys.modules, "start() must import what the live thread needs"
with mp.get_context("fork").Pool(2) as pool:
    assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
job.stop()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
