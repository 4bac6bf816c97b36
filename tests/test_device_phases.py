"""Devices updating at phases apart err apart (issue 23: 8 GPUs read 2-3x wide), and loads
steady between steps every few updates (a training loop: edges sized by the steps)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import greenai
from greenai.curve import update_phase
from greenai.errors import MeasurementWarning
from greenai.points import CurveModel
from greenai.testing import FakeClock, FakeGPU, RandomKernels
from greenai.windows import device_correlation, sum_devices
from tests.fakejobs import fake_job


def test_update_phase_is_where_the_anchors_fall_modulo_the_update() -> None:
    rng = np.random.default_rng(1)
    tau = 1000.0 + 0.037 + 0.1 * np.arange(40) + rng.uniform(-0.004, 0.004, 40)
    assert update_phase(tau, 0.1, 0.005) == pytest.approx(0.037, abs=0.002)
    # across the wrap: anchors at 99 ms and 1 ms of the update are 2 ms apart, not 98
    wrap = 1000.0 + 0.1 * np.arange(40) + np.where(np.arange(40) % 2, 0.099, 0.101)
    assert min(update_phase(wrap, 0.1, 0.005), 0.1 - update_phase(wrap, 0.1, 0.005)) < 0.002


def test_update_phase_is_not_told_read_once_per_update_or_scattered() -> None:
    tau = 1000.0 + 0.1 * np.arange(40)
    assert math.isnan(update_phase(tau, 0.1, 0.05))  # read once per update
    assert math.isnan(update_phase(tau[:3], 0.1, 0.005))  # too few anchors
    scattered = tau + np.random.default_rng(2).uniform(0, 0.1, 40)
    assert math.isnan(update_phase(scattered, 0.1, 0.005))


def _model(phase_s: float, update_s: float = 0.1, half_bracket_s: float = 0.005) -> CurveModel:
    return CurveModel(
        half_bracket_s=half_bracket_s, update_s=update_s, update_phase_s=phase_s, varying=True
    )


def test_device_correlation_falls_with_the_phases_distance() -> None:
    rho = device_correlation(
        [_model(0.010), _model(0.015), _model(0.030), _model(0.060), _model(0.098)]
    )
    assert rho[0, 1] == 1.0  # 5 ms apart: within the phases' own slack
    assert rho[0, 2] == pytest.approx(0.5)  # 20 ms apart, 10 ms slack, over 20 ms more
    assert rho[0, 3] == 0.0  # 50 ms apart
    assert rho[0, 4] == pytest.approx(0.9)  # 12 ms apart across the wrap: 0.9
    assert np.allclose(rho, rho.T) and np.all(np.diag(rho) == 1.0)


def test_device_correlation_keeps_linear_where_phases_are_not_told() -> None:
    rho = device_correlation([_model(math.nan), _model(0.05), _model(0.0, update_s=0.001)])
    assert rho[0, 1] == 1.0 and rho[1, 2] == 1.0 and rho[0, 2] == 1.0


def test_sum_devices_adds_independent_parts_by_their_correlation() -> None:
    parts = [(np.array([10.0]), np.array([3.0]), np.array([1.0]))] * 2
    linear = sum_devices(parts, 1)
    apart = sum_devices(parts, 1, np.eye(2))
    assert linear.independent_j[0] == 6.0 and linear.shared_j[0] == 2.0
    assert apart.independent_j[0] == pytest.approx(math.sqrt(18.0))
    assert apart.shared_j[0] == 2.0 and apart.energy_j[0] == 20.0


def _job(phases: list[float], period_s: float, seed: int = 3) -> tuple[greenai.Measurement, float]:
    clock = FakeClock()
    gpus = [
        FakeGPU(
            name=f"gpu{i}",
            clock=clock,
            seed=seed * 100 + i,
            power_w=RandomKernels(seed=seed),
            update_phase_s=p,
            power_limit_w=700.0,
        )
        for i, p in enumerate(phases)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("dp", devices=gpus, clock=clock, period_s=period_s).start()
        t0 = clock.now()
        clock.advance(2.0)
        r = job.stop()
    truth = sum(g.true_energy_j(t0, t0 + 2.0) for g in gpus)
    return r, truth


def test_gpus_updating_apart_add_less_than_linearly_and_say_nothing() -> None:
    r, truth = _job([0.0, 0.034, 0.067], 0.01)
    linear = sum(d.uncertainty_j for d in r.devices)
    shared = sum(d.shared_uncertainty_j for d in r.devices)
    independent = [d.uncertainty_j - d.shared_uncertainty_j for d in r.devices]
    assert r.uncertainty_j is not None and r.energy_j is not None
    assert r.uncertainty_j == pytest.approx(shared + math.sqrt(sum(u * u for u in independent)))
    assert r.uncertainty_j < 0.8 * linear
    assert abs(r.energy_j - truth) <= r.uncertainty_j
    assert not any("add their ± linearly" in n for n in r.notes)


def test_gpus_updating_in_phase_add_linearly() -> None:
    r, _ = _job([0.03] * 4, 0.01)
    assert r.uncertainty_j == pytest.approx(sum(d.uncertainty_j for d in r.devices))
    assert not any("add their ± linearly" in n for n in r.notes)  # told: in phase


def test_gpus_read_once_per_update_add_linearly_and_say_so() -> None:
    r, _ = _job([0.0, 0.05, 0.025, 0.075], 0.1)
    assert r.uncertainty_j == pytest.approx(sum(d.uncertainty_j for d in r.devices))
    note = next(n for n in r.notes if "add their ± linearly" in n)
    assert note.startswith("gpu0, gpu1, gpu2, gpu3 add their ± linearly")


# --- a load steady between steps every few updates (a training loop's iterations) -------


def test_range_bound_is_the_worst_load_within_the_range() -> None:
    from greenai.windows import edge_j, range_bound_j

    f = np.array([0.5, 0.1, 0.5])
    bound = range_bound_j(np.full(3, 0.1), 500.0, f, np.array([0.5, 0.1, 0.6]), np.full(3, 40.0))
    assert bound == pytest.approx([12.5, 4.5, 16.5])  # f(1-f) L range + |f - fe| delta
    hard = edge_j(np.full(3, 40.0), f, np.ones(3, dtype=bool), 1.0, 0.0, 3.0, math.inf, bound)
    assert hard == pytest.approx([12.5, 4.5, 16.5])  # below delta x max(f, 1-f): 20, 36, 20
    assert np.all(range_bound_j(np.full(3, 0.1), math.inf, f, f, np.full(3, 40.0)) == math.inf)


def test_spread_between_frequent_steps_is_the_noise_not_the_steps() -> None:
    from greenai.curve import _spread_and_jumps

    rng = np.random.default_rng(4)
    levels, level = [], 150.0
    while len(levels) < 200:  # levels held 1-3 whole updates, a step's update partway
        held = int(rng.integers(1, 4))
        nxt = 650.0 if level == 150.0 else 150.0
        levels += [level] * held + [level + (nxt - level) * float(rng.uniform())]
        level = nxt
    power = np.asarray(levels[:200]) + rng.normal(0.0, 3.0, 200)
    loose, _, _ = _spread_and_jumps(power)  # no shape told: the median's spread
    steady, jump, rate = _spread_and_jumps(power, shape_w=5.0)
    assert loose > 100.0 and steady < 0.1 * loose
    assert jump > 300.0 and rate > 0.15  # the steps are found as steps
    kernels = rng.uniform(100.0, 700.0, 200)  # varies alike at every update: unchanged
    assert _spread_and_jumps(kernels, 5.0) == _spread_and_jumps(kernels)


def test_a_job_stepping_every_few_updates_is_covered_without_the_steps_as_spread() -> None:
    """150/650 W every 0.2-0.5 s, 10 ms reads, 2 s jobs: ± 30-77 J on errors under 3 J."""
    widths = []
    for seed in range(12):
        clock = FakeClock()
        load = RandomKernels(seed=seed, min_s=0.2, max_s=0.5, high_w=650, low_w=150)
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MeasurementWarning)
            job = greenai.track("it", devices=[gpu], clock=clock, period_s=0.01).start()
            t0 = clock.now()
            clock.advance(2.0 + 0.013 * (seed % 7))
            t1 = clock.now()
            r = job.stop()
        assert r.energy_j is not None and r.uncertainty_j is not None
        assert abs(r.energy_j - gpu.true_energy_j(t0, t1)) <= r.uncertainty_j
        widths.append(r.uncertainty_j)
    assert float(np.median(widths)) < 12.0


def test_steps_every_few_updates_read_once_per_update_are_steps() -> None:
    """150/650 W every 0.2-0.5 s read every 100 ms: one power value per update cannot show
    where in it the level changed, so the two groups and lasting changes tell the steps
    (one run in four read as a varying load with no note, 50 ms windows at 0.11)."""
    noted = 0
    for seed in range(12):
        load = RandomKernels(seed=seed, min_s=0.2, max_s=0.5, high_w=650, low_w=150)
        run = fake_job(20.0, seed=seed, period_s=0.1, power_w=load, power_limit_w=700.0)
        noted += run.noted("load steps")
    assert noted == 12


def test_an_averaging_sensor_read_once_per_update_keeps_steps_to_the_values() -> None:
    """A power value averaged over longer than an update lags each step: told as steps
    from the counter alone, 5 s jobs on 0.2-0.5 s levels read 84% covered (94% before)."""
    seeds = range(40)
    covered = sum(
        fake_job(
            5.0,
            seed=seed,
            period_s=0.1,
            power_w=RandomKernels(seed=seed, min_s=0.2, max_s=0.5),
            power_limit_w=700.0,
            instant=False,
        ).covered
        for seed in seeds
    )
    assert covered / len(seeds) >= 0.9


def test_bursts_inside_an_update_keep_the_medians_spread() -> None:
    """A 200 W load with bursts to 700 W inside single updates: the bursts go up and come
    back, no level that lasts, so the lower quartile is not the spread (35 of 40 jobs)."""
    from greenai.curve import _spread_and_jumps

    rng = np.random.default_rng(5)
    power = np.full(200, 200.0) + rng.normal(0.0, 2.0, 200)
    power[rng.choice(200, 70, replace=False)] += rng.uniform(100.0, 250.0, 70)
    assert _spread_and_jumps(power, shape_w=1.0) == _spread_and_jumps(power)


def test_gpus_on_a_load_that_looks_steady_add_linearly_at_any_phase() -> None:
    """A load periodic with the update looks steady and errs alike at every phase."""
    from greenai.testing import SquareWave

    clock = FakeClock()
    gpus = [
        FakeGPU(
            name=f"gpu{i}",
            clock=clock,
            seed=i,
            power_w=SquareWave(0.05, 0.05),
            update_phase_s=i * 0.0125,
        )
        for i in range(8)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("sq", devices=gpus, clock=clock, period_s=0.01).start()
        clock.advance(1.9)
        r = job.stop()
    assert r.uncertainty_j == pytest.approx(sum(d.uncertainty_j for d in r.devices))


def test_a_counter_without_power_values_read_fast_is_exact_on_a_steady_load() -> None:
    """Its first value anchored half an update back read 301.85 ± 0.25 J for 300 J."""
    from tests.test_sensing import _CounterOnly

    clock = FakeClock()
    dev = _CounterOnly(clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("co", devices=[dev], clock=clock, period_s=0.01).start()
        clock.advance(1.0)
        r = job.stop()
    assert r.energy_j is not None and r.uncertainty_j is not None
    assert abs(r.energy_j - dev.true_energy_j(1.0)) <= r.uncertainty_j + 1e-6
    assert r.uncertainty_j < 1.0
