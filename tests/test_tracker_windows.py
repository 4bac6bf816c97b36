"""Tracker.energy_between: energy over windows marked outside phases (benchmark rounds)."""

from __future__ import annotations

import pytest

import greenai
from greenai.errors import TrackerStateError
from greenai.testing import FakeClock, FakeGPU


def test_windows_energy_matches_the_truth_within_uncertainty() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(1.0, 100.0), (2.0, 500.0)], seed=5)
    job = greenai.track("rounds", devices=[gpu], clock=clock).start()
    with pytest.raises(TrackerStateError, match="stopped"):
        job.energy_between([clock.now()], [clock.now() + 1])
    windows = []
    for _ in range(6):
        start = clock.now()
        clock.advance(0.4)
        windows.append((start, clock.now()))
        clock.advance(0.1)  # a gap between rounds, left out
    job.stop()
    starts, ends = zip(*windows, strict=True)
    got = job.energy_between(starts, ends)
    truth = sum(gpu.true_energy_j(a, b) for a, b in windows)
    assert got.count == 6 and got.duration_s == pytest.approx(2.4)
    assert got.energy_j is not None and got.uncertainty_j is not None
    assert abs(got.energy_j - truth) <= got.uncertainty_j
    whole = job.result.energy_j
    assert whole is not None and got.energy_j < whole  # the gaps are not in it


def test_without_devices_there_is_no_energy() -> None:
    clock = FakeClock()
    job = greenai.track("none", devices=[], clock=clock).start()
    clock.advance(1.0)
    job.stop()
    assert job.energy_between([clock.now() - 1.0], [clock.now()]).energy_j is None
