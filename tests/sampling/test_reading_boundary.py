"""The one validation boundary every reading crosses before it becomes a float (issue 28)."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenai
from greenai.devices.base import Reading, checked_reading
from greenai.errors import ConfigError, DeviceReadError
from greenai.testing import FakeClock, FakeGPU

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.decimals(),
    st.fractions(),
    st.just(np.float32(1.5)),
    st.just(np.int64(7)),
    st.just(np.array([1.0, 2.0])),
    st.builds(object),
)


@given(energy=ANYTHING, power=ANYTHING)
@settings(max_examples=300, deadline=None)
def test_any_value_is_a_float_or_a_clear_read_error(energy: Any, power: Any) -> None:
    try:
        reading = checked_reading(Reading(energy_j=energy, power_w=power))
    except DeviceReadError as exc:
        assert "read() gave" in str(exc)
        return
    for value in (reading.energy_j, reading.power_w):
        assert value is None or type(value) is float


@pytest.mark.parametrize("value", ["abc", 1j, [1], 10**400, True, b"1", Decimal("1")])
def test_the_reported_cases_are_rejected(value: object) -> None:
    with pytest.raises(DeviceReadError):
        checked_reading(Reading(power_w=value))  # type: ignore[arg-type]


def test_numbers_of_every_real_kind_pass_as_floats() -> None:
    r = checked_reading(Reading(energy_j=np.int64(5), power_w=Fraction(1, 2)))
    assert r == Reading(energy_j=5.0, power_w=0.5)
    assert math.isnan(checked_reading(Reading(power_w=math.nan)).power_w)  # type: ignore[arg-type]


class Hostile(FakeGPU):
    """A GPU whose reads go bad for a while: a bad value, or an exception of any kind."""

    def __init__(self, bad: Any, clock: FakeClock) -> None:
        super().__init__(clock=clock, power_w=300.0, noise_w=0.0)
        self.bad = bad
        self.window = (2.0, 3.0)
        self.fake_clock = clock
        self.t_open = clock.now()

    def read(self) -> Reading:
        good = super().read()
        t = self.fake_clock.now() - self.t_open
        if not self.window[0] <= t < self.window[1]:
            return good
        if isinstance(self.bad, type) and issubclass(self.bad, BaseException):
            raise self.bad()
        return Reading(energy_j=good.energy_j, power_w=self.bad)


@pytest.mark.parametrize("bad", ["abc", 1j, [1], 10**400, SystemExit, KeyboardInterrupt])
def test_a_bad_read_is_a_noted_gap_never_a_lost_measurement(bad: object) -> None:
    clock = FakeClock()
    gpu = Hostile(bad, clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with greenai.track(devices=[gpu], clock=clock, period_s=0.1) as job:
            for _ in range(60):
                clock.advance(0.1)
                job.step()
    result = job.result
    assert result.status == "completed"
    assert any("gpu0 failed" in n for n in result.notes), result.notes
    assert any("gpu0 failed mid-run" in str(w.message) for w in caught)
    # the energy across the bad second is filled from the counter: nothing is silently lost
    assert result.energy_j == pytest.approx(300.0 * result.duration_s, rel=0.05)


@given(bad=ANYTHING)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_tracker_survives_any_value_from_a_device(bad: Any) -> None:
    clock = FakeClock()
    gpu = Hostile(bad, clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with greenai.track(devices=[gpu], clock=clock, period_s=0.1) as job:
            for _ in range(40):
                clock.advance(0.1)
    assert job.result.status == "completed"
    assert job.result.energy_j is not None and job.result.energy_j > 0


def test_a_step_with_one_bad_count_counts_nothing() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
        job.step(samples=3)
        with pytest.raises(ConfigError, match="tokens"):
            job.step(samples=7, tokens="bad")  # type: ignore[arg-type]
        clock.advance(1.0)
    assert job.result.steps.count == 1
    assert job.result.steps.samples == 3
