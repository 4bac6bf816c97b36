from __future__ import annotations

import threading
import time

import pytest

import greenai
from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError, DeviceFailureWarning, DeviceReadError
from greenai.sampling import Sampler, default_period_s
from greenai.sampling import sampler as sampler_module
from greenai.testing import FakeClock, FakeGPU
from greenai.timeline import Timeline


class Flaky(Device):
    """Fails to read at the given read numbers (0-based)."""

    def __init__(self, name: str, clock: FakeClock, fail: set[int], fail_open: bool = False):
        self.name = name
        self.method = "power"
        self.clock = clock
        self.fail = fail
        self.fail_open = fail_open
        self.n = 0
        self.closed = False

    def open(self) -> None:
        if self.fail_open:
            raise DeviceReadError(f"{self.name}: no such device")

    def read(self) -> Reading:
        n, self.n = self.n, self.n + 1
        if n in self.fail:
            raise DeviceReadError(f"{self.name}: read {n} failed")
        return Reading(power_w=10.0 + n)

    def close(self) -> None:
        self.closed = True


def test_default_period_follows_the_slow_sources() -> None:
    class D(Device):
        def __init__(self, period: float) -> None:
            self.update_period_s = period

        def read(self) -> Reading:  # pragma: no cover
            return Reading()

    assert default_period_s([D(0.1), D(0.001)]) == 0.1  # RAPL (1 ms) does not set the pace
    assert default_period_s([D(0.25), D(0.5)]) == 0.25
    assert default_period_s([D(5.0)]) == 1.0
    assert default_period_s([]) == 0.1


@pytest.mark.parametrize("bad", [0, -0.1])
def test_non_positive_period_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="period_s"):
        Sampler([], Timeline([]), period_s=bad)


def test_thread_reads_on_the_period_with_a_fake_clock() -> None:
    clock = FakeClock(start=0.0)
    gpu = FakeGPU(clock=clock)
    tl = Timeline([gpu])
    s = Sampler([gpu], tl, period_s=0.25, clock=clock)
    s.start()
    assert s.running
    clock.advance(1.0)
    s.stop()
    assert not s.running
    # the last read at stop() repeats the instant of the last tick: kept once; then stop()
    # reads on, every min(period, the 100 ms update), until the counter changes twice more
    assert tl.series["gpu0"].t == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.1, 1.2])


def test_failing_device_is_warned_once_gap_recorded_others_go_on() -> None:
    clock = FakeClock(start=0.0)
    bad = Flaky("bad", clock, fail={2, 3, 4})
    good = Flaky("good", clock, fail=set())
    tl = Timeline([bad, good])
    s = Sampler([bad, good], tl, period_s=0.1, clock=clock)
    s.start()
    clock.advance(1.0)
    with pytest.warns(DeviceFailureWarning, match="bad failed mid-run") as record:
        s.stop()
    assert len(record) == 1
    assert len(tl.series["good"].t) == 12
    assert len(tl.series["bad"].t) == 9
    ((g0, g1),) = tl.series["bad"].gaps
    assert g0 == pytest.approx(0.2) and g1 == pytest.approx(0.5)
    assert "bad" in s.failed and "good" not in s.failed
    assert bad.closed and good.closed


def test_device_that_cannot_open_is_dropped_with_a_warning() -> None:
    clock = FakeClock(start=0.0)
    dead = Flaky("dead", clock, fail=set(), fail_open=True)
    tl = Timeline([dead])
    s = Sampler([dead], tl, clock=clock)
    s.start()
    assert not s.running  # nothing left to sample
    with pytest.warns(DeviceFailureWarning, match="could not be opened"):
        s.stop()
    assert tl.series["dead"].t == []


def test_real_clock_thread_stops_promptly() -> None:
    gpu = FakeGPU()
    s = Sampler([gpu], Timeline([gpu]), period_s=10.0)
    s.start()
    t = time.perf_counter()
    s.stop()  # must not wait out the 10 s period
    assert not s.running
    # the start's and the stop's reads, and the stop's tail: a read after each of the
    # counter's next two 100 ms updates, at most 2.5 updates later
    assert gpu.reads == 4
    assert time.perf_counter() - t < 5.0


class _OpenHangs(Device):
    """A device whose open() blocks until released (a wedged driver)."""

    name = "wedged"
    kind = "gpu"
    method = "counter"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = False

    def open(self) -> None:
        self.release.wait(30.0)

    def close(self) -> None:
        self.closed = True

    def read(self) -> Reading:
        return Reading(energy_j=0.0, power_w=0.0)


def test_an_open_that_hangs_skips_the_device_and_the_job_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sampler_module, "OPEN_TIMEOUT_S", 0.3)
    wedged, clock = _OpenHangs(), FakeClock()
    good = FakeGPU("good", clock=clock)
    try:
        with pytest.warns(DeviceFailureWarning, match="wedged could not be opened"):
            with greenai.track(devices=[wedged, good], clock=clock) as job:
                clock.advance(2.0)
        result = job.result
        assert [d.name for d in result.devices] == ["good"]
        assert result.energy_j is not None and result.energy_j > 0
        assert any("wedged gave no reading" in n and "0.3 s" in n for n in result.notes)
    finally:
        wedged.release.set()


def test_open_all_passes_errors_through_and_closes_an_open_that_returns_late() -> None:
    class Broken(_OpenHangs):
        def open(self) -> None:
            raise OSError("no driver")

    late = _OpenHangs()
    broken, good = Broken(), FakeGPU("good", clock=FakeClock())
    results = sampler_module.open_all([late, broken, good], 0.2)
    assert isinstance(results[0], TimeoutError) and "0.2 s" in str(results[0])
    assert isinstance(results[1], OSError) and results[2] is None
    assert good.open_count == 1
    late.release.set()  # its open() returns now; nobody measures it: it is closed again
    for _ in range(100):
        if late.open_count == 0 and late.closed:
            break
        time.sleep(0.02)
    assert late.open_count == 0 and late.closed
    good.close()


def test_a_tail_that_fails_keeps_the_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    # stop() reads on after the job's end (the tail); whatever goes wrong there, the job's
    # figure is kept and stop() returns.
    def boom(self: Sampler) -> None:
        raise RuntimeError("tail")

    monkeypatch.setattr(Sampler, "_read_tail", boom)
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=200.0)
    job = greenai.track("j", devices=[gpu], clock=clock).start()
    clock.advance(2.0)
    result = job.stop()
    assert result.energy_j == pytest.approx(400.0, rel=0.05)
