"""A load that varies inside every update while the counter reads each update alike (issue
23): with one power value per segment, the update-to-update spread sized the edges, and it
sees nothing of such a load. What the part-time power values miss against the counter does
(``curve.FLAT_MISS_SHARE``)."""

from __future__ import annotations

import numpy as np
import pytest

import greenai
from greenai.curve import CurveStats
from greenai.testing import SquareWave, Steps
from tests.fakejobs import fake_job


def _coverage(length_s: float) -> float:
    """Coverage of ``length_s`` windows at random times on a 35/45 ms square wave."""
    covered = total = 0
    for seed in range(4):
        run = fake_job(12.0, seed=seed, power_w=SquareWave(0.035, 0.045, high_w=600.0, low_w=200.0))
        a = run.t0 + 0.5 + np.random.default_rng(seed).uniform(0.0, 11.0 - length_s, 40)
        energy, width = run.job.curves()[run.gpu.name].window(a, a + length_s)
        truth = np.array([run.gpu.true_energy_j(x, x + length_s) for x in a])
        covered += int(np.sum(np.abs(energy - truth) <= width))
        total += len(a)
    return covered / total


def test_windows_of_a_wave_the_counter_sees_alike_are_covered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 80 ms periods in 100 ms updates: each update holds 1.25 periods, so the counter's
    # updates differ by 1-4 J while the load's running energy strays 3 J from a line
    # inside each; the 25 ms power values miss the updates by 15-17 J
    assert _coverage(0.05) >= 0.93
    monkeypatch.setattr(greenai.curve, "FLAT_MISS_SHARE", 0.0)
    assert _coverage(0.05) < 0.85  # the update-to-update spread alone


def test_the_misses_leave_out_segments_next_to_load_changes() -> None:
    # a steady load stepping 150/650 W every 2 s: the segments holding a step miss by
    # hundreds of joules, which says nothing of how the load moves inside an update
    run = fake_job(20.0, power_w=Steps([(2.0, 150.0), (2.0, 650.0)] * 5), sensor_noise_w=2.0)
    curve = run.job.curves()[run.gpu.name]
    steady = fake_job(20.0, power_w=400.0, sensor_noise_w=2.0).job.curves()["gpu0"]
    assert curve._flat_rms_j < 3.0 * max(steady._flat_rms_j, 0.1)


def test_the_misses_are_running_sums() -> None:
    stats = CurveStats()
    run = fake_job(5.0, power_w=SquareWave(0.035, 0.045, high_w=600.0, low_w=200.0))
    curve = run.job.curves()[run.gpu.name]
    curve.settle_into(stats, curve.tau[-1], curve.tau[0])
    assert stats.miss_n == int(curve._trusted.sum()) > 0
    assert stats.miss_sq_j2 == pytest.approx(float(np.square(curve._resid[curve._trusted]).sum()))


def test_a_load_whose_updates_read_alike_is_sized_by_its_misses() -> None:
    # 90/30 ms on 100 ms updates: in about half the runs the counter reads each update
    # alike (not varying) while the values miss by 23-25 J, which no sensor noise explains;
    # 5-23% of 5 s windows were covered there when the misses counted only on varying loads
    covered = total = 0
    for seed in (701, 702, 703, 704):
        run = fake_job(12.0, seed=seed, power_w=SquareWave(0.09, 0.03))
        curve = run.job.curves()[run.gpu.name]
        a = run.t0 + 0.5 + np.random.default_rng(seed).uniform(0.0, 6.0, 30)
        energy, width = curve.window(a, a + 5.0)
        truth = np.array([run.gpu.true_energy_j(x, x + 5.0) for x in a])
        covered += int(np.sum(np.abs(energy - truth) <= width))
        total += len(a)
        assert curve._miss_varies
    assert covered / total >= 0.9
