"""Shifted start offsets for regions shorter than a GPU sensor's update (greenai.protocol),
and how repeats at those offsets combine (greenai.windows.across_offsets)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from greenai.protocol import SHIFTS, needs_shifts, sensor_period_s, shift_s
from greenai.testing import FakeGPU
from greenai.windows import across_offsets


def test_shifts_are_one_per_slot_of_the_update_period() -> None:
    rng = random.Random(0)
    delays = [shift_s(i, 0.1, rng) for i in range(3 * SHIFTS)]
    for i, d in enumerate(delays):
        slot = i % SHIFTS
        assert slot * 0.1 / SHIFTS <= d < (slot + 1) * 0.1 / SHIFTS
    assert len({round(d, 9) for d in delays}) == len(delays)  # each randomly delayed


def test_only_regions_shorter_than_a_gpu_update_are_shifted() -> None:
    gpu = FakeGPU(power_w=100.0, update_period_s=0.1)
    assert sensor_period_s([gpu]) == pytest.approx(0.1)
    assert sensor_period_s([]) is None
    assert needs_shifts(0.05, 0.1) and not needs_shifts(0.1, 0.1)
    assert not needs_shifts(0.05, None)


def test_across_offsets_is_student_t_of_the_mean_in_quadrature() -> None:
    values = [10.0, 12.0, 11.0, 9.0, 13.0, 10.5, 11.5, 12.5]
    fig = across_offsets(values, 0.4)
    sd = statistics.stdev(values)
    spread = 2.3646 * sd / math.sqrt(8)  # t(0.975, 7), from tables
    assert fig.value == pytest.approx(statistics.fmean(values))
    assert fig.spread == pytest.approx(spread, rel=1e-3)
    assert fig.uncertainty == pytest.approx(math.hypot(spread, 0.4), rel=1e-3)
    assert fig.repeats == 8
    one = across_offsets([5.0], 0.3)
    assert (one.value, one.spread, one.uncertainty) == (5.0, 0.0, 0.3)
