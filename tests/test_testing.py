"""The fakes: loads with exact integrals, and FakeGPU's sensor model."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from greenai.errors import ConfigError, DeviceReadError
from greenai.testing import (
    FakeClock,
    FakeGPU,
    Load,
    RandomKernels,
    SquareWave,
    Steady,
    Steps,
)


def numeric_energy_j(load: Load, t0: float, t1: float, dt: float = 1e-5) -> float:
    """Midpoint-rule integral of ``load.power_w`` (exact for piecewise levels up to dt)."""
    t = np.arange(t0 + dt / 2, t1, dt)
    return float(sum(load.power_w(float(x)) for x in t) * dt)


def opened(clock: FakeClock, **kwargs: object) -> FakeGPU:
    gpu = FakeGPU(clock=clock, **kwargs)  # type: ignore[arg-type]
    gpu.open()
    return gpu


# --- loads ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "load",
    [
        Steady(420.0),
        Steps([(0.3, 100.0), (0.2, 700.0), (0.1, 250.0)]),
        SquareWave(0.025, 0.075),
        SquareWave(0.030, 0.030, high_w=650.0, low_w=80.0, start_s=0.013),
        RandomKernels(seed=3),
    ],
    ids=repr,
)
def test_load_energy_is_the_integral_of_its_power(load: Load) -> None:
    for t0, t1 in [(0.0, 0.5), (0.0137, 0.2911), (0.4, 0.9)]:
        exact = load.energy_j(t1) - load.energy_j(t0)
        assert exact == pytest.approx(numeric_energy_j(load, t0, t1), rel=2e-4, abs=1e-6)


def test_load_before_zero_holds_the_first_level() -> None:
    load = SquareWave(0.025, 0.075, start_s=0.05)  # low at 0
    assert load.energy_j(-2.0) == pytest.approx(-2.0 * 100.0)


def test_square_wave_mean_power_over_whole_periods() -> None:
    wave = SquareWave(0.025, 0.075, high_w=700.0, low_w=100.0, start_s=0.0123)
    day_s = 86_400.0
    assert wave.energy_j(day_s) == pytest.approx(250.0 * day_s, rel=1e-12)


def test_random_kernels_alternate_with_lengths_in_range() -> None:
    load = RandomKernels(min_s=0.010, max_s=0.040, seed=5)
    t = np.arange(0.0, 20.0, 0.0005)
    levels = np.array([load.power_w(float(x)) for x in t])
    assert set(np.unique(levels)) == {100.0, 700.0}
    change = np.flatnonzero(np.diff(levels) != 0)
    lengths = np.diff(change) * 0.0005
    assert lengths.min() >= 0.010 - 0.001 and lengths.max() <= 0.040 + 0.001
    assert np.all(levels[change] != levels[change + 1])  # every change alternates
    assert 0.020 < lengths.mean() < 0.030


def test_random_kernels_are_seeded_and_rebuilt_identically() -> None:
    a, b, c = RandomKernels(seed=1), RandomKernels(seed=1), RandomKernels(seed=2)
    early = a.energy_j(0.7531)
    a.energy_j(3600.0)  # far ahead: the early block leaves the cache and is rebuilt
    assert a.energy_j(0.7531) == early == b.energy_j(0.7531)
    assert c.energy_j(0.7531) != early


def test_steps_need_a_segment() -> None:
    with pytest.raises(ConfigError, match="segment"):
        Steps([])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high_s": 0.0, "low_s": 0.05},
        {"high_s": 0.05, "low_s": -1.0},
    ],
)
def test_square_wave_rejects_empty_stretches(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="SquareWave"):
        SquareWave(**kwargs)


def test_random_kernels_reject_a_bad_range() -> None:
    with pytest.raises(ConfigError, match="min_s"):
        RandomKernels(min_s=0.05, max_s=0.01)


# --- FakeGPU: the sensor model ---------------------------------------------------------------
def test_exact_counter_holds_the_true_energy_at_each_update() -> None:
    clock = FakeClock(0.0)
    gpu = opened(clock, power_w=RandomKernels(seed=2), update_phase_s=0.04, noise_w=5.0)
    start = gpu.read().energy_j  # at 0 s: the update of -60 ms (the trace holds before open)
    assert start is not None
    for _ in range(30):
        clock.advance(0.1)  # reads at 0.1 s + n·0.1 s: 60 ms after each update
        reading = gpu.read()
        assert reading.energy_j is not None
        truth = gpu.true_energy_j(-0.06, clock.now() - 0.06)
        assert reading.energy_j - start == pytest.approx(truth, abs=0.002)


def test_power_value_averages_only_the_sampling_window() -> None:
    """A 25/75 ms wave locked to the updates: the window decides what power is seen."""
    clock = FakeClock(0.0)
    wave = SquareWave(0.025, 0.075, start_s=0.0)  # high over [0, 25 ms) of each 100 ms
    common = {"power_w": wave, "noise_w": 0.0, "sensor_noise_w": 0.0, "update_phase_s": 0.0}
    on_high = opened(clock, sensor_offset_s=0.0, **common)
    on_low = opened(clock, **common)  # default: the window's last 25 ms, all low
    whole = opened(clock, sensor_window_s=0.1, **common)
    clock.advance(1.05)
    assert on_high.read().power_w == pytest.approx(700.0)
    assert on_low.read().power_w == pytest.approx(100.0)
    assert whole.read().power_w == pytest.approx(250.0)


@pytest.mark.parametrize(("offset_s", "rate_w"), [(0.0, 700.0), (0.05, 100.0)])
def test_sampled_counter_adds_period_times_the_power_value(offset_s: float, rate_w: float) -> None:
    clock = FakeClock(0.0)
    kwargs = {
        "power_w": SquareWave(0.025, 0.075),
        "noise_w": 0.0,
        "update_phase_s": 0.0,
        "sensor_offset_s": offset_s,
    }
    sampled = opened(clock, counter_mode="sampled", **kwargs)
    exact = opened(clock, counter_mode="exact", **kwargs)
    clock.advance(0.05)
    s0, e0 = sampled.read().energy_j, exact.read().energy_j
    clock.advance(3.0)
    s1, e1 = sampled.read().energy_j, exact.read().energy_j
    assert s0 is not None and s1 is not None and e0 is not None and e1 is not None
    assert s1 - s0 == pytest.approx(rate_w * 3.0, abs=0.002)  # 30 updates of 100 ms
    assert e1 - e0 == pytest.approx(250.0 * 3.0, abs=0.002)  # the wave's mean power


def test_a_full_time_sensor_makes_the_sampled_counter_exact() -> None:
    clock = FakeClock(0.0)
    kwargs = {"power_w": RandomKernels(seed=4), "noise_w": 8.0, "seed": 9}
    sampled = opened(clock, counter_mode="sampled", sensor_window_s=0.1, **kwargs)
    exact = opened(clock, counter_mode="exact", sensor_window_s=0.1, **kwargs)
    for _ in range(20):
        clock.advance(0.37)
        s, e = sampled.read().energy_j, exact.read().energy_j
        assert s is not None and e is not None
        assert s == pytest.approx(e, abs=0.003)


def test_sampled_counter_misreads_a_varying_load_the_exact_one_does_not() -> None:
    clock = FakeClock(0.0)
    kwargs = {"power_w": RandomKernels(seed=6), "noise_w": 0.0, "seed": 1}
    sampled = opened(clock, counter_mode="sampled", **kwargs)
    exact = opened(clock, counter_mode="exact", **kwargs)
    errors_sampled, errors_exact = [], []
    for _ in range(40):
        a = clock.now()
        s0, e0 = sampled.counter_j(a), exact.counter_j(a)
        clock.advance(1.0)
        s1, e1 = sampled.counter_j(clock.now()), exact.counter_j(clock.now())
        assert s0 is not None and s1 is not None and e0 is not None and e1 is not None
        # Both counters span the same ten updates: the truth between those instants.
        u0 = math.floor((a - sampled.update_phase_s) / 0.1) * 0.1 + sampled.update_phase_s
        truth = exact.true_energy_j(u0, u0 + 1.0)
        errors_sampled.append(abs(s1 - s0 - truth) / truth)
        errors_exact.append(abs(e1 - e0 - truth) / truth)
    assert max(errors_exact) < 1e-9
    assert np.median(errors_sampled) > 0.02


def test_averaged_power_is_the_mean_of_the_last_second_of_values() -> None:
    clock = FakeClock(0.0)
    steps = [(5.0, 100.0), (100.0, 700.0)]
    common = {"power_w": steps, "noise_w": 0.0, "sensor_noise_w": 0.0, "update_phase_s": 0.0}
    averaged = opened(clock, instant=False, **common)
    clock.advance(5.55)  # the last update at 5.5 s: 5 of its 10 values are after the step
    assert averaged.read().power_w == pytest.approx(400.0)
    clock.advance(1.0)
    assert averaged.read().power_w == pytest.approx(700.0)


def test_reads_within_one_update_repeat_the_same_values() -> None:
    clock = FakeClock(0.0)
    gpu = opened(clock, power_w=RandomKernels(), update_phase_s=0.0, sensor_noise_w=3.0)
    clock.advance(0.101)
    first = gpu.read()
    clock.advance(0.09)
    assert gpu.read() == first
    clock.advance(0.01)
    assert gpu.read() != first


def test_wander_is_continuous_across_its_chunks() -> None:
    """The AR(1) state carries over each 10 s chunk boundary (no jump of ~noise_w there)."""
    clock = FakeClock(0.0)
    noise_w = 20.0
    gpu = opened(clock, power_w=500.0, noise_w=noise_w, seed=12)
    bin_s = 0.001

    def bin_power(t: float) -> float:
        return gpu.true_energy_j(t, t + bin_s) / bin_s

    inside = np.array([bin_power(x) for x in np.arange(1.0, 9.0, bin_s)])
    assert np.std(inside) == pytest.approx(noise_w, rel=0.5)
    shock_w = noise_w * math.sqrt(1 - 0.99**2)
    jumps = [abs(bin_power(10.0 * c) - bin_power(10.0 * c - bin_s)) for c in range(1, 16)]
    assert max(jumps) < 5 * shock_w


def test_a_day_of_simulated_time_keeps_exact_energy() -> None:
    clock = FakeClock(0.0)
    gpu = opened(clock, power_w=SquareWave(0.05, 0.05), noise_w=0.0, update_phase_s=0.0)
    clock.advance(86_400.0)
    assert gpu.true_energy_j(0.0, clock.now()) == pytest.approx(400.0 * 86_400.0, rel=1e-12)
    before = gpu.read().energy_j
    clock.advance(1.0)
    after = gpu.read().energy_j
    assert before is not None and after is not None
    assert after - before == pytest.approx(400.0, abs=0.002)


def test_detail_names_the_sensor_model() -> None:
    gpu = FakeGPU(counter_mode="sampled", sensor_window_s=0.02)
    assert "20 ms of each 100 ms" in gpu.detail() and "sampled counter" in gpu.detail()


def test_failures_raise_read_errors() -> None:
    clock = FakeClock(0.0)
    gpu = opened(clock, failures=[(1.0, 1.5)])
    clock.advance(1.2)
    with pytest.raises(DeviceReadError, match="simulated read failure"):
        gpu.read()
    clock.advance(0.5)
    assert gpu.read().energy_j is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"update_period_s": 0.0}, "update_period_s"),
        ({"sensor_window_s": 0.2}, "sensor_window_s"),
        ({"sensor_window_s": 0.0}, "sensor_window_s"),
        ({"sensor_offset_s": 0.08}, "sensor_offset_s"),
        ({"sensor_offset_s": -0.01}, "sensor_offset_s"),
        ({"counter_mode": "partial"}, "counter_mode"),
        ({"update_phase_s": 0.1}, "update_phase_s"),
    ],
)
def test_bad_sensor_settings_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FakeGPU(**kwargs)  # type: ignore[arg-type]


def test_read_before_open_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="not opened"):
        FakeGPU(clock=FakeClock()).read()


def test_threads_due_at_one_instant_act_in_the_order_they_attached() -> None:
    """The sampler's read and the live thread's pass, due together, never race (a run's
    figures differed from one try to the next)."""
    clock = FakeClock(start=0.0)
    order: list[str] = []
    stop = threading.Event()

    def loop(name: str, delay_s: float) -> None:
        try:
            while not clock.wait_until(name, clock.now() + 0.01, stop):
                time.sleep(delay_s)  # the first to attach is the slower to act
                order.append(name)
        finally:
            clock.detach(name)

    threads = []
    for name, delay_s in (("first", 0.002), ("second", 0.0)):
        clock.attach(name)
        threads.append(threading.Thread(target=loop, args=(name, delay_s)))
    for th in threads:
        th.start()
    clock.advance(0.2)
    stop.set()
    for th in threads:
        th.join(5.0)
    assert order[:36] == ["first", "second"] * 18
