from __future__ import annotations

import math
import threading
import time
import warnings

import pytest

import greenai
from greenai.devices.base import Device, Reading
from greenai.guard import CounterGuard
from greenai.testing import FakeClock, FakeGPU


def test_guard_stitches_a_reset_and_fills_the_gap_from_power() -> None:
    g = CounterGuard("gpu0")
    assert g.check(0.0, 1000.0, 100.0) == 1000.0
    assert g.check(0.1, 1010.0, 100.0) == 1010.0
    assert math.isnan(g.check(0.2, 5.0, 100.0))  # held until the next read says why
    assert g.check(0.3, 15.0, 100.0) == pytest.approx(1010.0 + 10.0 + 10.0)
    assert g.resets == 1 and g.filled_j == pytest.approx(10.0)
    assert "went backwards" in g.notes()[0]


def test_guard_rejects_a_corrupt_spike_and_a_low_glitch() -> None:
    g = CounterGuard("gpu0")
    g.check(0.0, 1000.0)
    assert math.isnan(g.check(0.1, 1e16))  # a jump beyond any real power
    assert g.check(0.2, 1020.0) == 1020.0
    assert math.isnan(g.check(0.3, 3.0))  # one low value between two normal ones
    assert g.check(0.4, 1040.0) == 1040.0
    assert g.resets == 0 and g.rejected == 2


class Glitchy(FakeGPU):
    """A FakeGPU whose counter resets or gives a corrupt value at chosen reads."""

    def __init__(self, *, reset_at: float | None = None, spike_at: float | None = None, **kw):
        super().__init__(**kw)
        self.reset_at, self.spike_at = reset_at, spike_at
        self.shift = 0.0

    def read(self) -> Reading:
        r = super().read()
        elapsed = self._clock.now() - (self._origin or 0.0)
        if r.energy_j is None:
            return r
        if self.reset_at is not None and elapsed >= self.reset_at:
            if not self.shift:
                self.shift = r.energy_j - 1.0
            return Reading(energy_j=r.energy_j - self.shift, power_w=r.power_w)
        if self.spike_at is not None and abs(elapsed - self.spike_at) < 0.05:
            return Reading(energy_j=1e16, power_w=r.power_w)
        return r


@pytest.mark.parametrize("kind", ["reset", "spike"])
def test_a_job_stays_right_through_a_counter_fault(kind: str) -> None:
    clock = FakeClock()
    kw = {"reset_at": 4.0} if kind == "reset" else {"spike_at": 4.0}
    gpu = Glitchy(clock=clock, power_w=300.0, noise_w=0.0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with greenai.track(devices=[gpu], clock=clock, period_s=0.1) as job:
            for _ in range(100):
                clock.advance(0.1)
                job.step()
    truth = gpu.true_energy_j(job.start_s, job.start_s + job.result.duration_s)
    assert job.result.energy_j == pytest.approx(truth, rel=0.02)
    assert max(job.result.steps.energy_j) < 300.0 * 0.1 * 3
    assert any("counter" in n for n in job.result.notes)
    assert job.result.partial is (kind == "reset")


class Hangs(Device):
    name = "hang"
    kind = "other"
    method = "power"

    def __init__(self, after: int) -> None:
        self.after = after
        self.reads = 0
        self.release = threading.Event()

    def read(self) -> Reading:
        self.reads += 1
        if self.reads > self.after:
            self.release.wait(30)
        return Reading(power_w=50.0)


class NotAReading(Device):
    name = "odd"
    method = "power"

    def read(self):  # type: ignore[no-untyped-def]
        return 42.0


def test_a_hung_read_is_abandoned_and_stop_returns_promptly() -> None:
    hang = Hangs(after=3)
    good = FakeGPU("gpu0", power_w=200.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = greenai.track(devices=[hang, good], period_s=0.05).start()
        time.sleep(2.5)
        t = time.perf_counter()
        result = job.stop()
        took = time.perf_counter() - t
    hang.release.set()
    hang.close()  # the sampler abandons a device hung in a read, open: the test closes it
    assert took < 2 * 0.05 + 1.5
    assert result.partial
    assert result.device("gpu0").samples > 20  # the other device went on being read
    assert "did not return" in (result.device("hang").error or "")


def test_a_read_that_is_not_a_reading_is_a_failed_read_not_a_dead_sampler() -> None:
    clock = FakeClock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with greenai.track(
            devices=[NotAReading(), FakeGPU(clock=clock)], clock=clock, period_s=0.1
        ) as job:
            clock.advance(1.0)
    assert job.result.partial
    assert job.result.device("gpu0").samples >= 10


class Stalls(FakeGPU):
    """A FakeGPU on the real clock whose read stalls once for ``stall_s`` (a wedged driver)."""

    may_hang = True

    def __init__(self, stall_s: float, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.stall_s = stall_s
        self.stalled = False

    def read(self) -> Reading:
        if not self.stalled and self.reads > 5:
            self.stalled = True
            time.sleep(self.stall_s)
        return super().read()


def test_a_stalled_read_leaves_a_gap_not_a_lost_energy() -> None:
    gpu = Stalls(2.0, power_w=100.0, noise_w=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with greenai.track(devices=[gpu], period_s=0.05) as job:
            time.sleep(3.5)
    result = job.result
    start = job.snapshot().duration_s  # the result, once stopped
    opened_at_s = gpu.opened_at_s
    assert opened_at_s is not None
    truth = gpu.true_energy_j(opened_at_s, opened_at_s + start)
    assert result.partial
    # the counter carried the energy across the stall: not 1/3 of it as before
    assert result.energy_j == pytest.approx(100.0 * result.duration_s, rel=0.05)
    assert truth > 0


class BadPower(Device):
    name = "x"
    kind = "gpu"
    method = "power"
    may_hang = False

    def __init__(self, value: float) -> None:
        self.value = value

    def read(self) -> Reading:
        return Reading(power_w=self.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -50.0, 1e9])
def test_impossible_power_is_rejected_and_the_other_devices_are_kept(value: float) -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=300.0, noise_w=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with greenai.track(devices=[BadPower(value), gpu], clock=clock) as job:
            for _ in range(20):
                clock.advance(0.1)
                job.snapshot()
    assert [d.name for d in job.result.devices] == ["gpu0"]
    assert job.result.energy_j == pytest.approx(600.0, rel=0.02)
    assert any(n.startswith("x gave no usable reading") for n in job.result.notes)


def test_a_counter_reset_marks_its_device_partial_and_warns_once() -> None:
    clock = FakeClock()
    gpu = Glitchy(clock=clock, power_w=300.0, noise_w=0.0, reset_at=1.0)
    with pytest.warns(greenai.errors.MeasurementWarning, match="went backwards") as caught:
        with greenai.track(devices=[gpu], clock=clock, period_s=0.1) as job:
            clock.advance(3.0)
    assert job.result.device("gpu0").partial
    assert sum("went backwards" in str(w.message) for w in caught) == 1
