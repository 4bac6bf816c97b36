"""Whole jobs on a load already running when tracking begins (issue 23).

The update holding a job's start or end is split on the power values like any other; the
edge rule's share there (``curve.OUTER_EDGE_SPREADS``) was calibrated on steady loads and
on kernels that FakeGPU held at a constant 700 W before every job, a false step at the
start that widened their ± and hid how far such a load strays inside those updates.
"""

from __future__ import annotations

import numpy as np
import pytest

import greenai
from greenai.errors import ConfigError
from greenai.points import CurveModel
from greenai.testing import Running, SquareWave
from greenai.windows import sampling_j
from tests.fakejobs import fake_job


def _wave(seed: int) -> Running:
    """A 35/45 ms square wave at the seed's phase, running before the job."""
    phase = 0.08 * ((seed * 0.37) % 1.0)
    return Running(SquareWave(0.035, 0.045, high_w=600.0, low_w=200.0, start_s=phase))


def _coverage(seeds: range) -> float:
    """Coverage of 3.07 s jobs on the wave (38.4 of its periods: the edges err apart)."""
    jobs = [fake_job(3.07, seed=s, power_w=_wave(s), power_limit_w=700.0) for s in seeds]
    return float(np.mean([job.covered for job in jobs]))


def test_running_keeps_the_load_s_history_before_the_job() -> None:
    inner = SquareWave(0.035, 0.045, high_w=600.0, low_w=200.0)
    load = Running(inner, lead_s=1.0)
    for t in (-0.5, -0.01, 0.0, 0.3):
        assert load.power_w(t) == inner.power_w(t + 1.0)
    assert load.energy_j(0.0) == 0.0
    assert load.energy_j(0.25) - load.energy_j(-0.25) == pytest.approx(
        inner.energy_j(1.25) - inner.energy_j(0.75)
    )
    with pytest.raises(ConfigError, match="lead_s"):
        Running(inner, lead_s=0.0)


def test_outer_updates_of_a_varying_load_get_the_whole_edge_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # read every 10 ms, the counter sees the wave's updates nearly alike while it strays
    # 3 J from a line inside each: 85% of 48 jobs covered with the steady share at the
    # job's start and end updates (kernels of 5-20 ms, 2 s jobs: 84% in the calibration)
    seeds = range(48)
    assert _coverage(seeds) >= 0.9
    share = greenai.curve.OUTER_EDGE_SPREADS
    monkeypatch.setattr(greenai.curve.EnergyCurve, "_outer_share", lambda self: share)
    assert _coverage(seeds) < 0.9


def test_a_steady_load_keeps_the_outer_share() -> None:
    run = fake_job(1.0, power_w=700.0)
    curve = run.job.curves()[run.gpu.name]
    assert curve._outer_share() == greenai.curve.OUTER_EDGE_SPREADS


def test_part_time_spread_from_few_segments_is_wider() -> None:
    few = CurveModel(seg_scatter_j=5.0, seg_s=0.1, varying=True, scatter_n=10)
    many = CurveModel(seg_scatter_j=5.0, seg_s=0.1, varying=True, scatter_n=500)
    assert float(sampling_j(few, 1.0)) > 1.3 * float(sampling_j(many, 1.0))
