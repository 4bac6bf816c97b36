"""Learning rows: bounded in the callbacks, stored in the run's meta, drawn with energy."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import greenai
from greenai.errors import ConfigError
from greenai.integrations.learning import MAX_ROWS, LearningLog
from greenai.report.learning import learning_rows
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU


def test_the_rows_stay_bounded_and_spread_over_the_whole_run() -> None:
    log = LearningLog()
    for step in range(1, 100_001):
        log.note(step, step / 10, loss=1.0 / step)
    assert len(log.rows) <= MAX_ROWS + 1
    steps = [r["step"] for r in log.rows]
    assert steps[0] == 1 and steps[-1] == 100_000 and steps == sorted(steps)
    assert max(b - a for a, b in itertools.pairwise(steps)) < 100_000 / 50


def test_a_row_per_step_and_non_numbers_left_out() -> None:
    log = LearningLog()
    log.note(3, 0.5, loss=0.7, accuracy=None)
    log.note(3, 0.5, eval_loss=0.9, accuracy="n/a")
    log.note(4, 1.0, loss=float("nan"))  # nothing numeric: no row
    assert log.rows == [{"step": 3, "epoch": 0.5, "loss": 0.7, "eval_loss": 0.9}]


def test_update_meta_refuses_what_json_cannot_hold() -> None:
    job = greenai.Tracker("m", devices=[FakeGPU(seed=1)])
    with pytest.raises(ConfigError, match="JSON"):
        job.update_meta({"x": object()})
    with pytest.raises(ConfigError, match="dict"):
        job.update_meta([("x", 1)])  # type: ignore[arg-type]


def test_rows_given_while_running_are_stored_and_carry_their_steps_energy(tmp_path: Path) -> None:
    clock = FakeClock()
    gpu = FakeGPU(power_w=200.0, clock=clock, seed=1)
    store = tmp_path / "runs.db"
    log = LearningLog()
    with greenai.track("fit", devices=[gpu], clock=clock, store=store, meta={"a": 1}) as job:
        for epoch in range(3):
            for _ in range(4):
                clock.advance(0.5)
                job.step()
            with job.phase("eval", in_steps=False):
                clock.advance(2.0)
            log.note(job.steps, epoch, loss=1.0 / (epoch + 1), accuracy=0.5 + epoch / 10)
        log.publish(job)
    with RunStore(store, read_only=True) as runs:
        run = runs.get("latest")
    assert run.meta["a"] == 1 and "host" in run.meta  # what start() recorded is kept
    assert [r["step"] for r in run.meta["learning"]] == [4, 8, 12]
    rows = learning_rows(run.meta, run.measurement)
    # each epoch: 4 steps of 0.5 s at 200 W; eval is in no step
    assert [r["energy_j"] for r in rows] == pytest.approx([400.0] * 3, rel=0.05)
    assert all(r["uncertainty_j"] is not None and r["uncertainty_j"] >= 0 for r in rows)
    assert learning_rows({}, run.measurement) == []
