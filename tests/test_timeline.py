from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import greenai
from greenai.devices.base import Device, Reading
from greenai.testing import FakeClock, FakeGPU
from greenai.timeline import Timeline


class Spec(Device):
    """A device description only: these tests feed readings to the timeline by hand."""

    def __init__(self, method: str, update_period_s: float = 0.1, rel: float = 0.05) -> None:
        self.name = "d"
        self.kind = "gpu"
        self.method = method  # type: ignore[assignment]
        self.update_period_s = update_period_s
        self.counter_resolution_j = 0.001 if method == "counter" else 0.0
        self.relative_uncertainty = rel

    def read(self) -> Reading:  # pragma: no cover - never read
        raise AssertionError


def curve_of(method: str, rows: list[tuple[float, float | None, float | None]], **kw: float):
    tl = Timeline([Spec(method, **kw)])
    for t, e, p in rows:
        tl.add("d", t, Reading(energy_j=e, power_w=p))
    return tl.curves()["d"]


def test_power_only_integrates_piecewise_linear_power_exactly() -> None:
    # power ramps 100 W -> 300 W over 2 s, then holds 300 W for 1 s
    curve = curve_of("power", [(0.0, None, 100.0), (2.0, None, 300.0), (3.0, None, 300.0)])
    e, _ = curve.window(np.array([0.0, 0.0, 1.0]), np.array([2.0, 3.0, 2.5]))
    ramp = (100 + 300) / 2 * 2.0
    assert e[0] == pytest.approx(ramp)
    assert e[1] == pytest.approx(ramp + 300.0)
    # 1.0 -> 2.0 on the ramp (200 -> 300 W: 250 J) plus 0.5 s at 300 W
    assert e[2] == pytest.approx(250.0 + 150.0)
    assert curve.method == "power"


def test_counter_without_power_is_linear_between_anchors_and_exact_at_reads() -> None:
    rows = [(0.1 * i, 1000.0 + 20.0 * i + (5.0 if i >= 5 else 0.0), None) for i in range(11)]
    curve = curve_of("counter", rows, update_period_s=0.001)
    e, u = curve.window(np.array([0.1]), np.array([0.9]))
    # tau lags each read by half the 1 ms update period; the counter between reads is exact
    expected = rows[9][1] - rows[1][1]  # type: ignore[operator]
    assert e[0] == pytest.approx(expected, abs=0.2)
    assert u[0] < 2.0
    assert curve.method == "counter"


def test_short_window_inside_one_counter_update_gets_energy_not_zero() -> None:
    # counter updates every 100 ms, reads every 100 ms, steady 500 W with instant power
    rows = [(0.1 * i, 50.0 * i, 500.0) for i in range(30)]
    curve = curve_of("counter", rows)
    e, u = curve.window(np.array([1.01]), np.array([1.038]))
    assert e[0] == pytest.approx(500.0 * 0.028, rel=0.01)
    assert u[0] > 0


def test_windows_are_additive() -> None:
    rng = np.random.default_rng(1)
    p = 300 + 50 * rng.standard_normal(60)
    counter = np.concatenate([[10.0], 10.0 + np.cumsum(p[1:] * 0.1)])
    curve = curve_of("counter", [(0.1 * i, counter[i], p[i]) for i in range(60)])
    edges = np.sort(rng.uniform(0.3, 5.5, 40))
    tiles, _ = curve.window(edges[:-1], edges[1:])
    whole, _ = curve.window(edges[:1], edges[-1:])
    assert tiles.sum() == pytest.approx(whole[0], rel=1e-12)


def test_counter_that_never_changes_falls_back_to_power_and_says_so() -> None:
    curve = curve_of("counter", [(0.0, 7.0, 200.0), (0.02, 7.0, 200.0)])
    e, _ = curve.window(np.array([0.0]), np.array([0.02]))
    assert curve.method == "power"
    assert e[0] == pytest.approx(4.0)


def test_gap_in_power_readings_widens_uncertainty() -> None:
    tl = Timeline([Spec("power")])
    for i in range(10):
        tl.add("d", 0.1 * i, Reading(power_w=100.0))
    tl.mark_failure("d", 1.0)
    tl.add("d", 2.0, Reading(power_w=100.0))
    tl.add("d", 2.1, Reading(power_w=100.0))
    curve = tl.curves()["d"]
    assert curve.gaps == [(1.0, 2.0)]
    e, u = curve.window(np.array([0.0, 0.9]), np.array([0.9, 2.1]))
    assert e == pytest.approx([90.0, 120.0])
    assert u[1] / e[1] > u[0] / e[0] + 0.3


def test_uncertainty_is_capped_by_the_bracketing_counter_values() -> None:
    # wildly wrong power shape: the true value still lies between two counter values
    rows = [(0.1 * i, 30.0 * i, 1000.0 if i % 2 else 0.0) for i in range(20)]
    curve = curve_of("counter", rows)
    e, u = curve.window(np.array([0.52]), np.array([0.58]))
    assert 0 <= e[0] <= 30.0
    assert u[0] <= 30.0 + 2 * 1000.0 * 0.05 + 0.01


def test_timeline_frame_keeps_only_rows_after_a_time() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock)
    with greenai.track("t", devices=[gpu], clock=clock, period_s=0.1) as job:
        clock.advance(1.0)
    whole = job.timeline()
    later = job.timeline(after_s=0.5)
    assert len(whole) > len(later) > 0
    assert (later["t_s"] > 0.5).all()
    pd.testing.assert_frame_equal(
        whole[whole["t_s"] > 0.5].reset_index(drop=True), later.reset_index(drop=True)
    )
    assert job.timeline(after_s=99.0).empty
