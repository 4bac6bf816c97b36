"""What the figures assume about a GPU's sensor (issue 17): part-time counters, loops
locked to the updates, short regions, the board's gain. On FakeGPUs whose truth is known."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest

import greenai
from greenai import sensing, windows
from greenai.curve import EnergyCurve, locked_loop
from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError, MeasurementWarning
from greenai.points import CurveModel, DeviceSpec, Points
from greenai.testing import FakeClock, FakeGPU, RandomKernels, Running, SquareWave, Steps
from tests.fakejobs import fake_job


def _tracked(gpu: FakeGPU, clock: FakeClock, seconds: float, step_s: float | None = None,
             **options: object) -> tuple[greenai.Measurement, list[str], float, float]:  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = greenai.track("job", devices=[gpu], clock=clock, **options).start()
        t0 = clock.now()
        if step_s is None:
            clock.advance(seconds)
        else:
            for _ in range(round(seconds / step_s)):
                clock.advance(step_s)
                job.step()
        t1 = clock.now()
        result = job.stop()
    messages = [str(w.message) for w in caught if issubclass(w.category, MeasurementWarning)]
    return result, messages, t0, t1


# --- loops locked to the sensor's updates -------------------------------------------------
@pytest.mark.parametrize(
    ("period_s", "locked"),
    [
        (0.025, True),
        (0.05, True),
        (0.1, True),
        (0.2, True),
        (0.06, False),
        (0.037, False),
        (0.0333, True),
    ],
)
def test_locked_loop_finds_periods_that_divide_the_update(period_s: float, locked: bool) -> None:
    starts = 3.0 + period_s * np.arange(400)
    found = locked_loop(starts, 0.1)
    assert (found is not None) == locked
    if locked:
        assert found == pytest.approx(period_s)


def test_a_loop_whose_phase_sweeps_the_update_is_not_locked() -> None:
    # 25.2 ms: the phase drifts 0.8 ms per update, a whole loop within 32 updates
    assert locked_loop(25.2e-3 * np.arange(400), 0.1) is None
    # ... but over 8 updates it has not moved yet
    assert locked_loop(25.2e-3 * np.arange(33), 0.1) == pytest.approx(25.2e-3)


def test_an_irregular_loop_is_not_locked() -> None:
    rng = np.random.default_rng(0)
    starts = np.cumsum(0.025 + rng.uniform(-0.005, 0.005, 400))
    assert locked_loop(starts, 0.1) is None
    assert locked_loop(0.025 * np.arange(5), 0.1) is None  # too few to tell


@pytest.mark.parametrize("mode", ["exact", "sampled"])
def test_a_locked_loop_warns_once_and_its_steps_are_covered_on_an_exact_counter(
    mode: str,
) -> None:
    clock = FakeClock()
    load = SquareWave(0.025, 0.025, high_w=700.0, low_w=100.0, start_s=0.01)
    gpu = FakeGPU(clock=clock, seed=5, power_w=load, counter_mode=mode)
    result, messages, t0, _ = _tracked(gpu, clock, 10.0, step_s=0.05, period_s=0.01)
    locked = [m for m in messages if "locked to the sensor updates of gpu0" in m]
    assert len(locked) == 1 and "every 50 ms" in locked[0]
    assert locked[0] in result.notes
    if mode == "exact":
        edges = t0 + 0.05 * np.arange(len(result.steps.energy_j) + 1)
        truth = np.array([gpu.true_energy_j(a, b) for a, b in itertools.pairwise(edges)])
        err = np.abs(np.array(result.steps.energy_j) - truth)
        assert np.mean(err <= np.array(result.steps.uncertainty_j)) >= 0.95


@pytest.mark.parametrize("limit_w", [700.0, None])
def test_a_locked_loop_on_a_sampled_counter_is_widened_to_the_power_bound(
    limit_w: float | None,
) -> None:
    clock = FakeClock()
    load = SquareWave(0.05, 0.05, high_w=700.0, low_w=100.0, start_s=0.01)
    gpu = FakeGPU(clock=clock, seed=3, power_w=load, counter_mode="sampled", power_limit_w=limit_w)
    result, messages, t0, t1 = _tracked(gpu, clock, 5.0, step_s=0.1, period_s=0.01)
    bound = [n for n in result.notes if "could draw in the rest of each update" in n]
    assert len(bound) == 1 and bound[0] in messages
    if limit_w is None:
        assert "declares no power limit" in bound[0]
    else:
        assert "0 to 700 W (its enforced power limit)" in bound[0]
        # the whole job and each step: the truth lies inside the widened ±
        truth = gpu.true_energy_j(t0, t1)
        assert result.energy_j is not None and result.uncertainty_j is not None
        assert abs(result.energy_j - truth) <= result.uncertainty_j
        edges = t0 + 0.1 * np.arange(len(result.steps.energy_j) + 1)
        steps = np.array([gpu.true_energy_j(a, b) for a, b in itertools.pairwise(edges)])
        err = np.abs(np.array(result.steps.energy_j) - steps)
        assert np.mean(err <= np.array(result.steps.uncertainty_j)) >= 0.95


@pytest.mark.parametrize("mode", ["exact", "sampled"])
def test_a_part_time_counter_on_a_varying_load_says_its_bound_is_wide(mode: str) -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=2, power_w=RandomKernels(seed=2), counter_mode=mode)
    result, _, _, _ = _tracked(gpu, clock, 3.0, period_s=0.01)
    said = [n for n in result.notes if "see part of each update" in n]
    assert len(said) == (1 if mode == "sampled" else 0)
    assert not any("load steps" in n for n in result.notes)


def test_a_stepping_load_says_its_step_term_is_a_bound() -> None:
    clock = FakeClock()
    load = Steps([(1.0, 150.0), (1.0, 650.0), (1.0, 150.0), (1.0, 650.0), (1.0, 150.0)])
    gpu = FakeGPU(clock=clock, seed=2, power_w=load)
    result, _, _, _ = _tracked(gpu, clock, 5.0, period_s=0.01)
    assert sum("gpu0's load steps" in n for n in result.notes) == 1
    steady, _, _, _ = _tracked(FakeGPU(clock=clock, seed=2, power_w=400.0), clock, 5.0)
    assert not any("load steps" in n for n in steady.notes)


def test_a_declared_power_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="power_limit_w"):
        FakeGPU(power_limit_w=0.0)


def test_a_loop_that_sweeps_the_update_does_not_warn() -> None:
    clock = FakeClock()
    load = SquareWave(0.03, 0.03, high_w=700.0, low_w=100.0, start_s=0.01)
    gpu = FakeGPU(clock=clock, seed=5, power_w=load)
    result, messages, _, _ = _tracked(gpu, clock, 6.0, step_s=0.06)
    assert not any("locked" in m for m in messages)
    assert not any("locked" in n for n in result.notes)


# --- a counter that samples part of each update ---------------------------------------------
@pytest.mark.parametrize("seconds", [1.0, 10.0])
def test_jobs_on_random_kernels_are_covered_with_a_sampled_counter(seconds: float) -> None:
    covered = []
    for seed in range(8):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=RandomKernels(seed=seed),
                      counter_mode="sampled")  # fmt: skip
        result, _, t0, t1 = _tracked(gpu, clock, seconds)
        assert result.energy_j is not None and result.uncertainty_j is not None
        covered.append(abs(result.energy_j - gpu.true_energy_j(t0, t1)) <= result.uncertainty_j)
    assert all(covered)


# --- regions shorter than about ten updates --------------------------------------------------
def test_a_short_job_on_a_varying_load_warns_once() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=1, power_w=RandomKernels(seed=1))
    result, messages, _, _ = _tracked(gpu, clock, 0.6)
    short = [m for m in messages if "fewer than 10 sensor updates" in m]
    assert len(short) == 1 and short[0] in result.notes


@pytest.mark.parametrize(("load", "seconds"), [("steady", 0.6), ("kernels", 3.0)])
def test_no_short_region_warning_on_a_steady_load_or_a_long_job(load: str, seconds: float) -> None:
    clock = FakeClock()
    power = 700.0 if load == "steady" else RandomKernels(seed=1)
    gpu = FakeGPU(clock=clock, seed=1, power_w=power)
    result, messages, _, _ = _tracked(gpu, clock, seconds)
    assert not any("sensor updates" in m for m in [*messages, *result.notes])


# --- the board's gain ---------------------------------------------------------------------
def test_board_gain_adds_five_percent_shared_and_says_so() -> None:
    runs = {}
    for on in (False, True):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=3, power_w=700.0)
        runs[on], messages, _, _ = _tracked(gpu, clock, 5.0, step_s=0.137, board_gain=on)
        assert messages == []  # a choice, said in a note: no warning
    off, on_ = runs[False], runs[True]
    assert off.energy_j == pytest.approx(on_.energy_j)
    assert on_.uncertainty_j - off.uncertainty_j == pytest.approx(0.05 * on_.energy_j, rel=1e-6)
    assert on_.steps.uncertainty_j[5] > 0.05 * on_.steps.energy_j[5]
    assert any("board's gain error" in n for n in on_.notes)
    assert not any("board's gain" in n for n in off.notes)


def test_board_gain_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="board_gain must be True or False"):
        greenai.track("job", board_gain="yes")


def test_a_locked_loop_is_found_from_phase_entries_too() -> None:
    clock = FakeClock()
    load = SquareWave(0.025, 0.025, high_w=700.0, low_w=100.0, start_s=0.01)
    gpu = FakeGPU(clock=clock, seed=5, power_w=load)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with greenai.track("job", devices=[gpu], clock=clock, period_s=0.01) as job:
            for _ in range(100):
                with job.phase("forward"):
                    clock.advance(0.03)
                clock.advance(0.02)
    messages = [str(w.message) for w in caught if issubclass(w.category, MeasurementWarning)]
    assert sum("locked to the sensor updates of gpu0" in m for m in messages) == 1
    assert any("every 50 ms" in n for n in job.result.notes)


def test_a_job_shorter_than_one_update_says_it_fell_back_to_power() -> None:
    """Issue 23: a 48 ms job read 31.3 ± 4.7 J (truth 5.7 J) after a silent fallback."""
    import warnings

    import greenai
    from greenai.errors import MeasurementWarning
    from greenai.testing import FakeClock, FakeGPU, RandomKernels

    clock = FakeClock()
    gpu = FakeGPU(power_w=RandomKernels(seed=3), update_phase_s=0.09, clock=clock, seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MeasurementWarning)
        with greenai.track("short", devices=[gpu], clock=clock, period_s=0.01) as job:
            clock.advance(0.048)
    r = job.result
    dev = r.devices[0]
    assert dev.method == "power" and dev.fallback == "counter→power"
    assert any("fell back from counter to power" in n for n in r.notes)
    assert any("fell back" in str(w.message) for w in caught)
    assert r.uncertainty_j is not None and r.energy_j is not None
    assert r.uncertainty_j >= r.energy_j  # the ± says the figure is a rough one


class _CounterOnly(Device):
    """A counter that updates every 100 ms at a steady 300 W and reports no power values."""

    method = "counter"
    kind = "gpu"
    may_hang = False
    update_period_s = 0.1

    def __init__(self, clock: FakeClock, power_limit_w: float | None = None) -> None:
        self.name = "ctr"
        self.clock, self.t0 = clock, clock.now() - 0.037  # updates off the job's start
        self.power_limit_w = power_limit_w

    def read(self) -> Reading:
        updates = int((self.clock.now() - self.t0) / self.update_period_s)
        return Reading(energy_j=30.0 * updates, power_w=None)

    def true_energy_j(self, seconds: float) -> float:
        return 300.0 * seconds


@pytest.mark.parametrize("seconds", [0.08, 0.12, 0.15, 0.25])
def test_a_counter_without_power_values_measures_a_job_of_one_or_two_updates(
    seconds: float,
) -> None:
    """snapshot() raised IndexError after one counter change, and stop() lost the figure
    ("figures not computed"); with the first value unanchored, one change read 0 J."""
    clock = FakeClock()
    dev = _CounterOnly(clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("short", devices=[dev], clock=clock, period_s=0.01).start()
        clock.advance(seconds)
        live = job.snapshot()
        r = job.stop()
    truth = dev.true_energy_j(seconds)
    for m in (live, r):
        assert m.energy_j is not None and m.uncertainty_j is not None
        assert abs(m.energy_j - truth) <= m.uncertainty_j
    assert r.devices[0].method == "counter"
    assert not any("slower than its counter updates" in n for n in r.notes)  # read every 10 ms


@pytest.mark.parametrize("limit_w", [None, 700.0])
def test_a_counter_without_power_values_that_never_changed_says_it_measured_nothing(
    limit_w: float | None,
) -> None:
    clock = FakeClock()
    dev = _CounterOnly(clock, power_limit_w=limit_w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("short", devices=[dev], clock=clock, period_s=0.01).start()
        clock.advance(0.05)
        r = job.stop()
    assert r.devices[0].method == "power" and r.devices[0].fallback == "counter→power"
    note = next(n for n in r.notes if "fell back" in n)
    assert "reports no power values, so its energy was not measured" in note
    assert r.uncertainty_j is not None and r.energy_j == 0.0
    if limit_w is None:
        assert "nothing bounds it" in note
    else:
        assert r.uncertainty_j == pytest.approx(limit_w * r.duration_s)
        assert dev.true_energy_j(0.05) <= r.uncertainty_j


def test_a_declared_integrating_counter_drops_the_part_time_term() -> None:
    from greenai.testing import FakeClock, FakeGPU, RandomKernels

    widths = {}
    for mode in ("exact", "sampled"):
        clock = FakeClock()
        gpu = FakeGPU(power_w=RandomKernels(seed=1), clock=clock, seed=1, counter_mode=mode)
        import greenai

        with greenai.track("k", devices=[gpu], clock=clock) as job:
            clock.advance(20.0)
        widths[mode] = job.result.uncertainty_j / job.result.energy_j
    # the exact counter's job is bounded by its edges; the sampled one's by sqrt(n) updates
    assert widths["exact"] < widths["sampled"] / 3


def test_short_windows_on_a_steady_load_state_less_the_shorter_they_are() -> None:
    # Read once per 100 ms update: two edges inside one update err together, so a window's
    # error grows with its length (windows.together_share) and its ± follows it.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=700.0, seed=3)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.1).start()
    t0 = clock.now()
    clock.advance(20.0)
    job.stop()
    curve = job.curves()[gpu.name]
    a = np.random.default_rng(1).uniform(t0 + 1.0, t0 + 18.0, 200)
    stated, covered = {}, {}
    for length in (0.01, 0.05):
        energy, u = curve.window(a, a + length)
        truth = np.array([gpu.true_energy_j(x, x + length) for x in a])
        stated[length] = float(np.median(u))
        covered[length] = float(np.mean(np.abs(energy - truth) <= u))
    assert stated[0.01] < 0.8 * stated[0.05]
    assert covered[0.01] >= 0.9 and covered[0.05] >= 0.9


def test_a_stop_read_off_the_sampling_grid_is_no_load_step() -> None:
    # The stop read came 24 ms after the last regular one: its segment, anchored with
    # another lag than its neighbour, read 486 W on a steady 300 W load, and the job got
    # the "load steps" note (seed 3 of an outside audit, session 7).
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=300.0, noise_w=5.0, seed=3)
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("job", devices=[gpu], clock=clock).start()
        elapsed = 0.0
        while elapsed < 60.0:
            d = float(rng.uniform(0.100, 0.137))
            clock.advance(d)
            elapsed += d
            job.step()
        result = job.stop()
    assert not any("load steps" in n for n in result.notes), result.notes
    assert job.curves()[gpu.name].model.jump_rate == 0.0


def test_one_level_change_bounds_what_a_flat_shape_misplaces() -> None:
    # Inside a segment read with one power value, C is linear in time; a load anywhere in
    # [lo, hi] puts an edge at most f (1 - f) x L x (hi - lo) off, which one_change_j holds.
    from greenai.windows import one_change_j

    rng = np.random.default_rng(5)
    lo, hi, length = 150.0, 650.0, 0.1
    worst = 0.0
    for _ in range(200):
        cuts = np.sort(rng.uniform(0.0, length, int(rng.integers(1, 6))))
        edges = np.concatenate([[0.0], cuts, [length]])
        levels = rng.choice([lo, hi], len(edges) - 1)
        cum = np.concatenate([[0.0], np.cumsum(np.diff(edges) * levels)])
        f = rng.uniform(0.0, 1.0, 50)
        true = np.interp(f * length, edges, cum)
        error = np.abs(true - f * cum[-1])
        bound = one_change_j(np.full(50, length), hi - lo, f, f, np.full(50, cum[-1]))
        assert (error <= bound + 1e-9).all()
        worst = max(worst, float(np.max(error / bound)))
    assert worst > 0.6  # the bound is met closely, not by a wide margin
    # a shape that puts the edge elsewhere by energy than by time adds that share of delta
    f = np.array([0.5])
    off = one_change_j(np.array([length]), hi - lo, f, np.array([0.6]), np.array([40.0]))
    assert off[0] == pytest.approx(0.25 * length * (hi - lo) + 0.1 * 40.0)


def test_a_load_changing_level_once_per_update_is_sized_by_its_range() -> None:
    # 40-120 ms kernels read every 10 ms: each 100 ms update holds about one level change,
    # and the update-to-update spread, sized for a bridge of many, read their windows 100%
    # covered at a median |error|/± of 0.17-0.30. The load's range bounds the edges.
    clock = FakeClock()
    load = RandomKernels(seed=7, min_s=0.04, max_s=0.12, high_w=650.0, low_w=200.0)
    gpu = FakeGPU(clock=clock, power_w=load, seed=7)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    t0 = clock.now()
    clock.advance(20.0)
    job.stop()
    curve = job.curves()[gpu.name]
    assert 440.0 <= curve.power_range_w() <= 520.0
    a = t0 + 1.0 + 0.75 * np.arange(24)
    energy, u = curve.window(a, a + 0.5)
    truth = np.array([gpu.true_energy_j(x, x + 0.5) for x in a])
    curve._range_w = np.inf  # what the update-to-update spread alone states
    _, u_spread = curve.window(a, a + 0.5)
    assert float(np.median(u / u_spread)) < 0.8
    assert float(np.mean(np.abs(energy - truth) <= u)) >= 0.9


@pytest.mark.parametrize("n", [5, 10, 30])
def test_a_spread_judged_from_few_residuals_widens_to_keep_95_percent(n: int) -> None:
    # The edge rule's spread is the MAD of the job's own residuals; from 10 of them it is
    # far from sure, and 1.96 of it covers a fresh normal error less than 95% of the time.
    from greenai.windows import spread_estimate_factor

    rng = np.random.default_rng(7)
    resid = rng.normal(size=(40_000, n))
    mad = 1.4826 * np.median(np.abs(resid - np.median(resid, axis=1, keepdims=True)), axis=1)
    fresh = np.abs(rng.normal(size=40_000))
    plain = float(np.mean(fresh <= 1.96 * mad))
    widened = float(np.mean(fresh <= 1.96 * spread_estimate_factor(n) * mad))
    assert plain < 0.94 if n == 10 else plain < 0.95
    assert 0.94 <= widened <= 0.965
    assert spread_estimate_factor(200) < 1.03


def test_a_flat_power_shape_is_not_trusted_inside_a_segment() -> None:
    # A 30/30 ms square wave read every 10 ms: the 100 ms power value refreshes right after
    # each counter update, so the shape is one value per segment and predicts whole
    # segments well while it misplaces energy inside them. The edge rule must not take
    # that fit for knowledge of the inside (this run's 100 ms windows were 18% covered).
    start = float(np.random.default_rng((23, 99)).uniform(0, 0.06))
    clock = FakeClock()
    gpu = FakeGPU(
        clock=clock,
        seed=23,
        power_w=SquareWave(0.03, 0.03, high_w=700.0, low_w=100.0, start_s=start),
        power_limit_w=700.0,
    )
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    t0 = clock.now()
    clock.advance(20.0)
    job.stop()
    curve = job.curves()[gpu.name]
    a = t0 + 0.5 + np.sort(np.random.default_rng(5).uniform(0, 18.5, 120))
    energy, u = curve.window(a, a + 0.1)
    truth = np.array([gpu.true_energy_j(x, x + 0.1) for x in a])
    ratio = np.abs(energy - truth) / u
    assert np.mean(ratio <= 1.0) >= 0.9
    assert np.median(ratio) >= 0.15  # and not by a bound far wider than the errors


@pytest.mark.parametrize("stop_s", [0.03, 0.05, 0.08])
def test_a_job_stopped_between_reads_is_not_biased(stop_s: float) -> None:
    # The stop read's bracket is shorter than the regular reads': placed half of it back,
    # its anchor had a smaller lag than the others and its segment came out short, so the
    # job read high by power x the lags' difference (142.9 J for 135.0 J at 0.45 s).
    errors, covered = [], []
    for seed in range(24):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=300.0, power_limit_w=700.0)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.1).start()
        t0 = clock.now()
        clock.advance(3.0 + stop_s)
        t1 = clock.now()
        result = job.stop()
        error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t1)
        errors.append(error)
        covered.append(abs(error) <= (result.uncertainty_j or 0.0))
    assert abs(float(np.median(errors))) < 0.5  # J: 300 W x 10 ms would be 3 J
    assert np.mean(covered) >= 0.9


@pytest.mark.parametrize("period_s", [0.01, 0.1])
@pytest.mark.parametrize("idle_s", [0.0, 0.03, 0.06])
def test_a_job_whose_load_starts_with_it_is_bounded_not_read_at_the_idle_value(
    period_s: float, idle_s: float
) -> None:
    # The GPU idles at 100 W until `idle_s` into the job, then draws 400 W. The first power
    # value read samples part of the update before the job: the idle one.
    # - Read every 10 ms, the job's first stretch (before its first counter update) was
    #   extrapolated on it: jobs read up to 28 J (7%) low with a ± of 1 J. It now takes
    #   the first segment's average power; where in the stretch the step fell is unknown,
    #   so the step x the stretch bounds it (a job idle 30-60 ms into it read 8-13 J high
    #   at that average with a ± of 1.3 J), and a note says so.
    # - Read every 100 ms, the start lies inside the first segment, which holds the step
    #   but mostly load: no step was seen, jobs read 4-6 J off with ± 1.7 J.
    errors, covered = [], []
    for seed in range(16):
        clock = FakeClock()
        load = [(max(idle_s, 1e-6), 100.0), (10.0, 400.0)]
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=period_s).start()
        t0 = clock.now()
        clock.advance(1.0)
        t1 = clock.now()
        result = job.stop()
        assert job.curves()[gpu.name].power[0] < 150.0  # the idle value was read first
        # a note bounds the step: at the start, or (read once per update, the step later
        # than the first update's sample) as one of the load's steps
        assert any("load stepped by" in n or "load steps" in n for n in result.notes)
        error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t1)
        errors.append(error)
        covered.append(abs(error) <= (result.uncertainty_j or 0.0))
    assert np.mean(covered) >= 0.9
    if period_s < 0.1 and idle_s == 0.0:
        assert max(np.abs(errors)) < 2.0  # J of 400 J: the idle value was 5-28 J short


@pytest.mark.parametrize("kernels", [False, True])
def test_a_load_already_running_at_the_start_is_no_step(kernels: bool) -> None:
    # The first value read samples the load already running (steady, or kernels of
    # 10-40 ms whose 25 ms samples reach both levels): inside the range of the job's own
    # values, no step, no bound, no note.
    clock = FakeClock()
    load = RandomKernels(seed=3) if kernels else 300.0
    gpu = FakeGPU(clock=clock, seed=3, power_w=load, power_limit_w=700.0)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    clock.advance(2.0)
    result = job.stop()
    assert not any("stepped by" in n for n in result.notes), result.notes


def test_a_step_at_the_start_is_kept_through_checkpoints_and_settling() -> None:
    # Only the first pass over the readings sees the job's start; a 7 s job with
    # checkpoints settles its start long before it stops, and its note must stay.
    clock = FakeClock()
    load = [(0.03, 100.0), (100.0, 400.0)]  # the work starts 30 ms into the job
    gpu = FakeGPU(clock=clock, seed=5, power_w=load, power_limit_w=700.0)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01, checkpoint_s=0.5)
    job.start()
    t0 = clock.now()
    for _ in range(140):
        clock.advance(0.05)
    t1 = clock.now()
    result = job.stop()
    assert sum("load stepped by" in n for n in result.notes) == 1, result.notes
    error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t1)
    assert abs(error) <= (result.uncertainty_j or 0.0)


@pytest.mark.parametrize("period_s", [0.01, 0.1])
def test_a_load_that_stops_inside_the_last_update_is_seen_from_the_stops_tail(
    period_s: float,
) -> None:
    # 400 W until 10-50 ms before stop(), then idle at 80 W: nothing read before the end
    # shows it (the power value refreshes with the counter, every 100 ms), and the last
    # stretch was extrapolated at 400 W: 3-8 J high with a ± of 1.3 J, 4-33% covered.
    # stop() now reads on until the counter changes twice more: the update holding the end
    # shows the change, the one after it the level after; one step between the levels
    # explains the first, which places it (read every 10 ms, to within a few ms; every
    # 100 ms, only within the update). A note says the ± bounds where it fell.
    covered, width = [], []
    for seed in range(16):
        idle_s = float(np.random.default_rng(seed).uniform(0.01, 0.05))
        clock = FakeClock()
        load = [(1.0 - idle_s, 400.0), (100.0, 80.0)]
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=period_s).start()
        t0 = clock.now()
        clock.advance(1.0)
        t1 = clock.now()
        result = job.stop()
        assert clock.now() - t1 <= 0.25 + 1e-9  # at most 2.5 updates of tail
        error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t1)
        covered.append(abs(error) <= (result.uncertainty_j or 0.0))
        width.append(result.uncertainty_j or 0.0)
        if idle_s >= 0.02:  # 10 ms of 100 can hide in the update-to-update spread
            assert any("changed by" in n for n in result.notes), result.notes
        frame = job.timeline()  # the tail makes no rows: they end where the figure does
        assert frame["t_s"].iloc[-1] <= 1.0 + 1e-9
        assert frame["energy_j"].iloc[-1] == pytest.approx(result.energy_j, rel=1e-9)
    assert np.mean(covered) >= 0.9
    if period_s < 0.1:  # placed to within a few ms: the whole update's bound was ± 6-12 J
        assert float(np.median(width)) < 7.0


def test_a_job_whose_work_ends_with_it_keeps_its_figure() -> None:
    # The usual case: the GPU idles right after the job. The step lands at the end, so the
    # figure stays the extrapolation's, with the step's place as its ±: 400 W 1 s jobs
    # read every 10 ms, errors under 1 J; the whole update's bound was ± 6 J.
    errors, width = [], []
    for seed in range(16):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=[(1.0, 400.0), (100.0, 80.0)])
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
        t0 = clock.now()
        clock.advance(1.0)
        result = job.stop()
        errors.append((result.energy_j or 0.0) - gpu.true_energy_j(t0, t0 + 1.0))
        width.append(result.uncertainty_j or 0.0)
    assert np.mean(np.abs(errors) <= np.array(width)) >= 0.9
    assert max(np.abs(errors)) < 2.0
    assert float(np.median(width)) < 4.0


def test_a_load_running_on_after_the_end_is_no_end_step() -> None:
    # The tail only bounds a change: steady loads, and loads that vary from update to
    # update as much as at the end, keep their ± and carry no note.
    for load in (400.0, RandomKernels(seed=3)):
        for seed in range(8):
            clock = FakeClock()
            gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
            job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
            clock.advance(1.0 + 0.013 * seed)
            result = job.stop()
            assert not any("changed by" in n for n in result.notes), (load, seed, result.notes)
            assert job.curves()[gpu.name].end_step_w == 0.0


def test_a_job_shorter_than_one_update_after_idle_is_covered_up_to_the_highest_power() -> None:
    # Shorter than one update, the counter does not change during the job and its power
    # values are all from before it (the GPU idle at 80 W until the job's 400 W work): it
    # read 6 J for 20 J with a ± of 4 J (its fallback ± is a share of the figure), 12%
    # covered. The ± now reaches the highest power read, the stop's tail included.
    covered = []
    for seed in range(16):
        clock = FakeClock()
        load = [(1e-6, 80.0), (100.0, 400.0)]
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
        t0 = clock.now()
        clock.advance(0.05)
        result = job.stop()
        assert result.device(gpu.name).method == "power"  # fell back, and says so
        error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t0 + 0.05)
        covered.append(abs(error) <= (result.uncertainty_j or 0.0))
    assert np.mean(covered) >= 0.9


def test_a_job_shorter_than_one_update_on_kernels_is_covered_up_to_the_power_limit() -> None:
    # Kernels of 10-40 ms running before and through 20 ms jobs: the values read may all
    # fall in the gaps between kernels, so the highest one read is no bound on what was
    # drawn (89% covered up to it); the device's declared limit is.
    covered = []
    for seed in range(32):
        clock = FakeClock()
        load = Running(RandomKernels(seed=seed), lead_s=1.0)
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
        t0 = clock.now()
        clock.advance(0.02)
        result = job.stop()
        if result.device(gpu.name).method != "power":
            continue  # the counter changed inside the job: not a fallback
        error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t0 + 0.02)
        covered.append(abs(error) <= (result.uncertainty_j or 0.0))
        assert (result.energy_j or 0.0) + (result.uncertainty_j or 0.0) >= 700.0 * 0.02 - 1e-9
    assert len(covered) >= 16 and np.mean(covered) == 1.0


def _idle_before_end(seed: int, period_s: float, seconds: float, idle_s: float) -> tuple:
    clock = FakeClock()
    load = [(seconds - idle_s, 400.0), (100.0, 80.0)]
    gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=period_s).start()
    t0 = clock.now()
    clock.advance(seconds)
    result = job.stop()
    error = (result.energy_j or 0.0) - gpu.true_energy_j(t0, t0 + seconds)
    return error, result.uncertainty_j or 0.0, result.notes


@pytest.mark.parametrize("idle_s", [0.13, 0.15])
def test_a_load_that_stopped_in_the_update_before_the_end_is_covered(idle_s: float) -> None:
    # Read once per update (the default), 400 W until 130-150 ms before the end: the last
    # change read already holds the step, and the update holding the end is idle. The
    # counter's shared lag then errs at 80 W there and 400 W at the start, but the ± took
    # the last segment's ~210 W: 87.5% of 32 jobs covered. After the last change the load
    # draws what the tail's update did.
    runs = [_idle_before_end(seed, 0.1, 1.0, idle_s) for seed in range(32)]
    assert np.mean([abs(e) <= u for e, u, _ in runs]) >= 0.95


@pytest.mark.parametrize(("period_s", "seconds"), [(0.2, 1.0), (1.0, 10.0)])
@pytest.mark.parametrize("idle_s", [0.03, 0.1, 0.3])
def test_a_load_that_stops_near_the_end_is_covered_when_read_slower_than_updates(
    period_s: float, seconds: float, idle_s: float
) -> None:
    # Read slower than the counter updates (every 0.2 s or 1 s; it updates every 100 ms),
    # the stretch between the stop read and the tail's first change is one update: its
    # energy shows the load there, with no bracket slack (that slack hid it: 9-60% of such
    # jobs covered, a 30 ms idle end read 5 J high with a ± of 2.4 J).
    runs = [_idle_before_end(seed, period_s, seconds, idle_s) for seed in range(16)]
    assert np.mean([abs(e) <= u for e, u, _ in runs]) >= 0.9
    assert all(any("slower than its counter updates" in n for n in notes) for *_, notes in runs)


def test_a_job_ending_with_its_work_read_slower_than_updates_places_the_step() -> None:
    # The step at the end, read every 1 s: the tail's two updates give the level after and
    # place it, to within the last change's lag (± ~15 J at 400 W). Seen but not placed,
    # the bound (the tail's split by time against the extrapolation) is ± ~20 J.
    runs = [_idle_before_end(seed, 1.0, 10.0, 0.0) for seed in range(16)]
    assert np.mean([abs(e) <= u for e, u, _ in runs]) >= 0.9
    assert float(np.median([u for _, u, _ in runs])) < 18.0


def test_kernels_read_slower_than_updates_are_placed_by_time_inside_a_stretch() -> None:
    # Read every 0.5 s, each power value is one 100 ms update of five: the line between two
    # random kernel values misplaced energy inside the stretch (1 s windows: rms error
    # 18 J, 70% covered); by time, 8 J, and the windows are covered.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=5, power_w=RandomKernels(seed=5), power_limit_w=700.0)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.5).start()
    clock.advance(40.0)
    result = job.stop()
    curve = job.curves()[gpu.name]
    a = np.random.default_rng(1).uniform(1000.5, 1038.0, 64)
    energy, plus_minus = curve.window(a, a + 1.0)
    truth = np.array([gpu.true_energy_j(x, x + 1.0) for x in a])
    assert np.mean(np.abs(energy - truth) <= plus_minus) >= 0.9
    assert float(np.sqrt(np.mean((energy - truth) ** 2))) < 12.0
    assert any("slower than its counter updates" in n for n in result.notes)


def test_a_fast_counter_read_slower_than_it_updates_keeps_its_rules() -> None:
    # RAPL-like counters (1 ms updates) are read every 100 ms by design: no note, no change.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=2, power_w=300.0, update_period_s=0.001)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.1).start()
    clock.advance(5.0)
    result = job.stop()
    assert not any("slower than its counter updates" in n for n in result.notes)
    assert not job.curves()[gpu.name].model.slow_reads


def test_updates_that_err_together_widen_a_part_time_counters_windows() -> None:
    # A sampled counter updating every 50 ms on kernels of 10-40 ms: a kernel outlasts the
    # gap between the sensor's windows, so neighbouring updates' misreads share a sign
    # (lag-one correlation ~0.2). Taken as independent, 0.5 s windows were covered 74%.
    from greenai.curve import _lag_one_correlation

    rng = np.random.default_rng(4)
    white = rng.normal(300.0, 20.0, 400)
    assert _lag_one_correlation(white) == 0.0  # within two standard errors of none
    ar = np.empty(400)
    ar[0] = 0.0
    for i in range(1, 400):
        ar[i] = 0.4 * ar[i - 1] + rng.normal(0.0, 20.0)
    assert 0.25 < _lag_one_correlation(300.0 + ar) < 0.55
    assert _lag_one_correlation(300.0 + ar[:20]) == 0.0  # too few updates to tell

    covered = []
    for seed in range(4):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=RandomKernels(seed=seed),
                      counter_mode="sampled", update_period_s=0.05)  # fmt: skip
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
        clock.advance(20.0)
        job.stop()
        curve = job.curves()[gpu.name]
        assert curve.model.update_corr > 0.1
        a = 1000.5 + np.arange(24) * 0.75
        energy, plus_minus = curve.window(a, a + 0.5)
        truth = np.array([gpu.true_energy_j(x, x + 0.5) for x in a])
        covered.extend(np.abs(energy - truth) <= plus_minus)
    assert np.mean(covered) >= 0.88


@pytest.mark.parametrize("period_s", [0.005, 0.01])
def test_a_job_whose_work_starts_with_it_places_the_step_from_the_first_update(
    period_s: float,
) -> None:
    # A GPU idle (100 W) until the job's 400 W work, read much faster than its 100 ms
    # counter: the first read's counter is the value at the update boundary before the
    # start, so the update holding the start has a known energy; with the idle value and
    # the next update's level, one step explains it. The bound over the whole first
    # update was ± ~40 J on errors under 2 J; placed, ± ~2 J.
    errors, width = [], []
    for seed in range(16):
        clock = FakeClock()
        load = [(1e-6, 100.0), (10.0, 400.0)]
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load, power_limit_w=700.0)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=period_s).start()
        t0 = clock.now()
        clock.advance(1.0)
        result = job.stop()
        assert job.curves()[gpu.name]._start_place is not None
        assert any("load stepped by" in n for n in result.notes)
        errors.append((result.energy_j or 0.0) - gpu.true_energy_j(t0, t0 + 1.0))
        width.append(result.uncertainty_j or 0.0)
    assert np.mean(np.abs(errors) <= np.array(width)) >= 0.9
    assert float(np.median(width)) < 4.0


def test_a_part_time_counter_does_not_place_the_start_step() -> None:
    # A sampled counter's first update shows its sensor's window, not the update's energy:
    # a step placed from it was off by most of an update with a tenth of the ± (a review:
    # 426 ± 3.5 J for 412 J). It keeps the bound over the first stretch (which misses
    # that job too, 447 ± 23 J: dev-notes, session 12).
    clock = FakeClock()
    load = [(0.09, 60.0), (1e4, 450.0)]
    gpu = FakeGPU(clock=clock, seed=6, power_w=load, counter_mode="sampled")
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    clock.advance(1.0)
    result = job.stop()
    assert job.curves()[gpu.name]._start_place is None
    assert any("load stepped by" in n for n in result.notes)


def _job_figures(
    load: Callable[[int], object], seconds: Callable[[int], float], seeds: range
) -> tuple[np.ndarray, np.ndarray]:
    """|Errors| and ± (J) of whole jobs on FakeGPUs read every 10 ms, one per seed."""
    errors, width = [], []
    for seed in seeds:
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=load(seed), power_limit_w=700.0)
        result, _, t0, t1 = _tracked(gpu, clock, seconds(seed), period_s=0.01)
        errors.append((result.energy_j or 0.0) - gpu.true_energy_j(t0, t1))
        width.append(result.uncertainty_j or 0.0)
    return np.abs(np.array(errors)), np.array(width)


def test_the_update_holding_the_start_splits_its_own_energy() -> None:
    # 150/650 W square waves of 0.5 s, 5-20 s jobs: where the load stepped just after the
    # first change, the stretch before it was extrapolated at the first segment's average
    # (a mix of both levels) instead of the 150 W the update holding the start drew:
    # 20-35 J high at ± 2-6 J, 16 of 60 jobs missed (review, session 14).
    def load(seed: int) -> SquareWave:
        return SquareWave(0.5, 0.5, high_w=650.0, low_w=150.0, start_s=0.0731 * seed)

    errors, width = _job_figures(load, lambda s: 5 + 15 * ((s * 0.618034) % 1), range(24))
    assert np.mean(errors <= width) >= 0.9
    assert float(np.max(errors / width)) < 2.0


def test_the_start_update_is_the_one_before_the_first_change() -> None:
    # Read every 10 ms, the first value is the counter one update before the first change:
    # the curve's start splits that update's known energy.
    clock = FakeClock()
    load = SquareWave(0.5, 0.5, high_w=650.0, low_w=150.0, start_s=0.0731)
    gpu = FakeGPU(clock=clock, seed=1, power_w=load)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    t0 = clock.now()
    clock.advance(2.0)
    job.stop()
    curve = job.curves()[gpu.name]
    start = curve._start_update
    assert start is not None
    b, c_b, tau0, e0 = start
    assert e0 == pytest.approx(float(curve.anchor_e[0]))
    assert tau0 == pytest.approx(float(curve.tau[0]))
    assert b == pytest.approx(tau0 - 0.1)
    assert c_b == pytest.approx(float(curve.counter[0]))
    e, u = curve.window(np.array([t0]), np.array([t0 + 0.05]))
    assert abs(float(e[0]) - gpu.true_energy_j(t0, t0 + 0.05)) <= float(u[0])
    assert float(e[0]) == pytest.approx(150.0 * 0.05, rel=0.1)  # the 150 W it drew, not ~540


@pytest.mark.parametrize("before_w", [370.0, 440.0])
def test_a_small_step_at_the_start_is_covered(before_w: float) -> None:
    # A load 5-10% off the job's before it (under the start-step test's 10%): the split of
    # the update holding the start is off by what extrapolating would not be; its ± holds
    # both (62-68% covered with the split's ± alone).
    def load(seed: int) -> list[tuple[float, float]]:
        return [(1e-6, before_w), (100.0, 400.0)]

    errors, width = _job_figures(load, lambda s: 1.0 + 0.0137 * s, range(24))
    assert np.mean(errors <= width) >= 0.9


def test_a_part_time_counter_keeps_the_extrapolated_start() -> None:
    # A sampled counter's update holds its sensor window's part: not split.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=2, power_w=400.0, counter_mode="sampled")
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    clock.advance(1.0)
    job.stop()
    assert job.curves()[gpu.name]._start_update is None


@pytest.mark.parametrize("real_s", [0.09, 0.12])
def test_the_start_update_is_as_long_as_the_counter_updates_not_as_declared(
    real_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NVIDIA's update period is declared (0.1 s), not read: a counter updating every 90 or
    # 120 ms placed the start update's beginning 10-20 ms off, and steady 700 W jobs read
    # 2-6 J off at ± 0.4-0.8 J (1-2 of 8 covered; review, session 15).
    import dataclasses

    import greenai.timeline as timeline

    declared = timeline._spec
    monkeypatch.setattr(
        timeline, "_spec", lambda d: dataclasses.replace(declared(d), update_period_s=0.1)
    )
    covered = 0
    for seed in range(8):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=700.0, update_period_s=real_s)
        result, _, t0, t1 = _tracked(gpu, clock, 1.0, period_s=0.01)
        covered += abs((result.energy_j or 0.0) - gpu.true_energy_j(t0, t1)) <= (
            result.uncertainty_j or 0.0
        )
    assert covered >= 7
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=3, power_w=700.0, update_period_s=real_s)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    clock.advance(1.0)
    job.stop()
    start = job.curves()[gpu.name]._start_update
    assert start is not None
    assert start[2] - start[0] == pytest.approx(real_s, abs=0.002)
    end = job.curves()[gpu.name]._end_update
    assert end is not None
    assert end[2] - end[0] == pytest.approx(real_s, abs=0.002)


def _kernel_jobs(seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """|Errors| and ± (J) of 1 s jobs on 10-40 ms kernels that go on past the end."""
    return _job_figures(lambda s: RandomKernels(seed=s), lambda s: 1.0 + 0.0137 * s, seeds)


def test_the_update_holding_the_end_splits_its_energy_where_the_load_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stop's tail closes the update holding the end: its energy is known. Where the load
    # goes on at its level past the end, C after the last anchor splits it instead of
    # extrapolating the power values: 10-40 ms kernels' 1 s jobs at 10 ms reads erred
    # 8.9 J (median) at ± 35 J, 3.2 J at ± 20 J split.
    from greenai.curve import EnergyCurve

    errors, width = _kernel_jobs(range(24))
    assert np.mean(errors <= width) >= 0.9
    monkeypatch.setattr(EnergyCurve, "_find_end_update", lambda self: None)
    errors_ext, width_ext = _kernel_jobs(range(24))
    assert float(np.median(errors)) < 0.6 * float(np.median(errors_ext))
    assert float(np.median(width)) < 0.8 * float(np.median(width_ext))


def test_the_end_is_split_only_where_the_load_went_on() -> None:
    # A GPU idle right after the job (the usual end) keeps the extrapolation: split, an
    # update part work and part idle read 2.6 J off at ± 0.26 J.
    for load, split in (([(1.0, 400.0), (100.0, 80.0)], False), (400.0, True)):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=4, power_w=load)
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
        clock.advance(0.995)
        job.stop()
        curve = job.curves()[gpu.name]
        assert (curve._end_update is not None) is split
        if split:
            b = curve._end_update[2]
            assert b == pytest.approx(float(curve.tau[-1]) + 0.1, abs=0.002)
            assert curve._end_update[3] == pytest.approx(curve._tail[1])


def test_a_power_value_inside_a_varying_load_s_range_is_no_pre_job_level() -> None:
    # Kernels swing 200-650 W inside each update: the value read as the job starts lies
    # anywhere in that range, and is no sign that the load stepped at the start (judged
    # on the first segment's average alone, 14 of these 16 jobs were, and their start
    # edges read ± 20 J for 2 J).
    flagged = 0
    for seed in range(16):
        clock = FakeClock()
        gpu = FakeGPU(clock=clock, seed=seed, power_w=RandomKernels(seed=seed))
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
        clock.advance(1.0)
        job.stop()
        flagged += job.curves()[gpu.name]._pre_job_level_differs()
    assert flagged <= 4


def _steady_windows(
    seeds: range,
    period_s: float,
    windows: int,
    min_scatter_s: float,
    seen_by: str = "_anchor_scatter_s",
    **gpu: object,
) -> tuple[float, list[float]]:
    """Coverage and ± (J) of 0.77 s windows inside 6 s steady 700 W jobs, one per seed.

    Each job's curve must see its anchors misplaced apart by more than ``min_scatter_s``
    (its attribute ``seen_by``: the segments' scatter, or the updates' jitter).
    """
    covered, total = 0, 0
    widths: list[float] = []
    for seed in seeds:
        clock = FakeClock()
        device = FakeGPU(clock=clock, seed=seed, power_w=700.0, **gpu)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            job = greenai.track("job", devices=[device], clock=clock, period_s=period_s).start()
            t0 = clock.now()
            clock.advance(6.0)
            job.stop()
        curve = job.curves()[device.name]
        assert getattr(curve, seen_by) > min_scatter_s
        a = t0 + 0.5 + np.random.default_rng(seed).uniform(0.0, 4.0, windows)
        b = a + 0.77
        energy, width = curve.window(a, b)
        truth = np.array([device.true_energy_j(x, y) for x, y in zip(a, b, strict=True)])
        covered += int(np.sum(np.abs(energy - truth) <= width))
        total += len(a)
        widths.extend(width)
    return covered / total, widths


@pytest.mark.parametrize("period_s", [0.03, 0.04])
def test_reads_that_keep_no_phase_to_the_updates_widen_each_edge(period_s: float) -> None:
    # Read every 30 or 40 ms, a 100 ms update's anchors sit 0-20 ms off each on its own
    # (segments read 90/120 or 80/120 ms long): steady 700 W windows erred up to 12 J, and
    # their ± held them 41-47% of the time (the shared shift cancels on a steady load).
    coverage, widths = _steady_windows(range(6), period_s, 20, 0.005, power_limit_w=800.0)
    assert coverage >= 0.9
    assert float(np.median(widths)) < 0.05 * 700.0 * 0.77  # within 5% of the window's energy


def _read_beat_notes(period_s: float, **gpu: object) -> list[str]:
    clock = FakeClock()
    device = FakeGPU(clock=clock, seed=3, power_w=700.0, **gpu)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # checkpoints: the last settling pass holds only the stretch after the last one
        job = greenai.track(
            "job", devices=[device], clock=clock, period_s=period_s, checkpoint_s=2.9
        ).start()
        for _ in range(60):
            clock.advance(0.05)
        result = job.stop()
    return [n for n in result.notes if "does not divide its counter's" in n]


@pytest.mark.parametrize("period_s", [0.03, 0.04, 0.07])
def test_reads_that_beat_against_the_updates_say_their_pm_is_a_bound(period_s: float) -> None:
    # The pattern repeats (segments of 90/120 ms): the independent misplacement bounds the
    # errors (100% covered at up to half the width a 95% interval needs); the note says so
    # and names read gaps that divide the update period.
    notes = _read_beat_notes(period_s)
    assert len(notes) == 1
    assert f"read every {period_s * 1e3:.4g} ms" in notes[0]
    assert "read every 10 or 25 ms" in notes[0]


@pytest.mark.parametrize(
    ("period_s", "gpu"),
    [(0.01, {}), (0.025, {}), (0.1, {}), (0.3, {}), (0.01, {"update_jitter_s": 0.005})],
)
def test_reads_that_divide_the_update_period_carry_no_beat_note(
    period_s: float, gpu: dict[str, float]
) -> None:
    # 10 ms reads of updates jittering ± 5 ms read uneven segments too: that is the
    # counter's own timing (sized as such), not the reads' choice.
    assert _read_beat_notes(period_s, **gpu) == []


def test_reads_in_phase_with_the_updates_keep_anchors_misplaced_alike() -> None:
    # Read every 10 ms, every anchor is off alike: no term, steady windows keep ± < 1 J.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=1, power_w=700.0)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    t0 = clock.now()
    clock.advance(3.0)
    job.stop()
    curve = job.curves()[gpu.name]
    assert curve._anchor_scatter_s == 0.0
    _, width = curve.window(np.array([t0 + 0.5]), np.array([t0 + 1.27]))
    assert float(width[0]) < 1.0


def test_a_counter_whose_updates_jitter_keeps_its_anchors_and_widens_each_edge() -> None:
    # Updates 5 ms either side of their grid, read every 10 ms: the anchors sit at their
    # brackets' middles, each off on its own, and the segments' uneven lengths size that.
    coverage, _ = _steady_windows(range(4), 0.01, 30, 0.001, update_jitter_s=0.005)
    assert coverage >= 0.9


def _steady_job_estimates(seconds: float, seeds: range, **gpu: object) -> list[float]:
    """The updates' jitter (s, one sd) a steady 700 W job read every 10 ms finds, per seed."""
    found = []
    for seed in seeds:
        clock = FakeClock()
        device = FakeGPU(clock=clock, seed=seed, power_w=700.0, **gpu)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            job = greenai.track("job", devices=[device], clock=clock, period_s=0.01).start()
            clock.advance(seconds)
            job.stop()
        found.append(job.curves()[device.name]._anchor_jitter_s)
    return found


def test_updates_that_jitter_under_the_read_gap_are_found_from_the_residuals() -> None:
    # ± 1 ms (one sd 0.58 ms) and ± 2 ms (1.15 ms) never cross a 10 ms read where the
    # updates sit mid-bracket: every segment reads 100 ms; the residuals covary by -P²σ².
    for jitter_s in (0.001, 0.002):
        found = [x for x in _steady_job_estimates(6.0, range(8), update_jitter_s=jitter_s) if x]
        assert len(found) >= 6
        sd = jitter_s / np.sqrt(3.0)
        assert 0.7 * sd < float(np.median(found)) < 1.3 * sd


def test_a_wandering_load_without_jitter_reads_none() -> None:
    # FakeGPU's wander (100 ms memory) makes the residuals covary negatively too; the
    # counter's own deltas do not, and no jitter is read (30 W: 5 of 16 jobs read 1.2-1.7
    # ms from the residuals alone).
    assert not any(_steady_job_estimates(6.0, range(8)))
    assert not any(_steady_job_estimates(6.0, range(8), noise_w=30.0, sensor_noise_w=10.0))


def test_updates_that_jitter_under_the_read_gap_widen_each_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ± 2 ms at 10 ms reads: the anchors are off by each update's own jitter, and where
    # the updates sit mid-bracket the segments say nothing (64% covered without the term).
    seeds = range(4, 12)
    coverage, _ = _steady_windows(seeds, 0.01, 30, 5e-4, "_anchor_jitter_s", update_jitter_s=0.002)
    assert coverage >= 0.9
    monkeypatch.setattr(EnergyCurve, "_anchor_jitter", lambda self, d_e, seg_len: 0.0)
    without, _ = _steady_windows(seeds, 0.01, 30, -1.0, "_anchor_jitter_s", update_jitter_s=0.002)
    assert without < 0.8


@pytest.mark.parametrize("period_s", [0.05, 0.5])
def test_reads_too_slow_to_tell_jitter_get_no_jitter_term(period_s: float) -> None:
    # 50 ms reads of a 100 ms update (2 per update: under PHASE_READS) or reads slower than
    # the updates: the residuals' covariance is the shape's, and the term stays off.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=3, power_w=700.0, update_jitter_s=0.002)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = greenai.track("job", devices=[gpu], clock=clock, period_s=period_s).start()
        clock.advance(6.0)
        job.stop()
    curve = job.curves()[gpu.name]
    assert curve._anchor_jitter_s == 0.0
    assert curve._jitter_share() == (1.0 if period_s > 0.1 else math.sqrt(2.0))


def test_jittering_updates_widen_a_whole_job_at_both_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The updates holding the job's start and end are split at anchors off by their own
    # jitter, and their unseen ends are off by theirs: 3 s jobs 71% covered without it.
    def coverage() -> float:
        covered = 0
        for seed in range(24):
            clock = FakeClock()
            gpu = FakeGPU(clock=clock, seed=seed, power_w=700.0, update_jitter_s=0.002)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
                t0 = clock.now()
                clock.advance(3.0)
                t1 = clock.now()
                result = job.stop()
            assert result.energy_j is not None and result.uncertainty_j is not None
            covered += abs(result.energy_j - gpu.true_energy_j(t0, t1)) <= result.uncertainty_j
        return covered / 24

    assert coverage() >= 0.9
    monkeypatch.setattr(EnergyCurve, "_anchor_jitter", lambda self, d_e, seg_len: 0.0)
    assert coverage() < 0.85


def _short_jobs(
    seconds: float, seeds: range, power_w: float = 700.0, **gpu: object
) -> tuple[float, float]:
    """Steady jobs read every 10 ms: the share covered and the share noted untold."""
    jobs = [fake_job(seconds, seed=seed, power_w=power_w, **gpu) for seed in seeds]
    noted = [j.noted("to tell whether its updates jitter") for j in jobs]
    return sum(j.covered for j in jobs) / len(jobs), sum(noted) / len(jobs)


def test_jitter_too_few_updates_could_tell_is_bounded_and_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 1 s job has 8 segments: the covariance told ± 2 ms in a third of jobs, and the
    # rest read 66% covered. The residuals' variance bounds the jitter; the note says so.
    seeds = range(100, 140)
    coverage, noted = _short_jobs(1.0, seeds, update_jitter_s=0.002)
    assert coverage >= 0.9
    assert noted >= 0.4
    # A steady load's own wander bounds no jitter that matters, at any power (the floor
    # is the energy moved: in seconds, 300 W jobs were noted in half); 3 s jobs can tell.
    assert _short_jobs(1.0, seeds)[1] <= 0.1
    assert _short_jobs(1.0, seeds, 300.0)[1] <= 0.1
    assert _short_jobs(1.5, seeds, 200.0)[1] <= 0.1
    assert _short_jobs(3.0, range(100, 110), update_jitter_s=0.002)[1] == 0.0
    # Under seven segments (0.6 s) there are too few pairs to test: the spread bounds it.
    short, short_noted = _short_jobs(0.6, seeds, update_jitter_s=0.003)
    assert short >= 0.85 and short_noted >= 0.4
    monkeypatch.setattr(EnergyCurve, "_jitter_untold", lambda self, var, power, regular: 0.0)
    assert _short_jobs(1.0, seeds, update_jitter_s=0.002)[0] < 0.85
    assert _short_jobs(0.6, seeds, update_jitter_s=0.003)[0] < short - 0.1


def test_jitter_the_counters_own_deltas_cannot_test_is_bounded_and_said() -> None:
    # 1 s jobs whose counter deltas, around their running median, keep too few pairs to
    # test: that told "no jitter", and these six read +-0.43-1.10 J for errors of
    # 0.73-1.91 J with no note. Over 400 seeds, the jobs without the note were covered
    # 91.7% (93.9% now); these six are now bounded and said.
    for seed in (57, 66, 98, 317, 324, 363):
        job = fake_job(1.0, seed=seed, update_jitter_s=0.002, power_limit_w=700.0)
        assert job.noted("to tell whether its updates jitter"), seed
        assert job.covered, seed


def test_the_jitter_note_names_the_bound_and_what_to_do() -> None:
    note = sensing.jitter_untold_note("gpu0", 0.0012, 0.1)
    assert "gpu0" in note and "1.2 ms" in note and "100 ms" in note
    assert "two seconds" in note


def test_edges_between_the_same_anchors_err_together_by_their_distance() -> None:
    # Anchors misplaced by δₖ, δₖ₊₁: an edge at f errs by P((1 − f)δₖ + f δₖ₊₁), so two
    # edges between the same anchors err by P(f_b − f_a)(δₖ₊₁ − δₖ).
    def points(lo: float, hi: float) -> Points:
        one = np.ones(1)
        return Points(one, 2.0 * one, one, 0 * one, True, 2.0 * one, lo * one, hi * one)

    a, b = np.array([10.025]), np.array([10.05])
    same, own_a, _ = windows.anchor_timing_j2(points(10.0, 10.1), points(10.0, 10.1), a, b)
    assert same[0] == pytest.approx(2.0 * (2.0 * 0.25) ** 2)
    assert own_a[0] == pytest.approx(2.0 * math.hypot(0.75, 0.25))
    # neighbouring segments share one anchor; further apart the edges err apart
    b2 = np.array([10.125])
    next_to, _, own = windows.anchor_timing_j2(points(10.0, 10.1), points(10.1, 10.2), a, b2)
    assert next_to[0] == pytest.approx(4.0 * (0.75**2 + (0.75 - 0.25) ** 2 + 0.25**2))
    far, _, _ = windows.anchor_timing_j2(points(10.0, 10.1), points(10.3, 10.4), a, b2 + 0.2)
    assert far[0] == pytest.approx(own_a[0] ** 2 + own[0] ** 2)
    # beyond the anchors (NaN), or without the column, nothing is paired
    alone = Points(np.ones(1), np.ones(1), np.ones(1), np.zeros(1), True)
    assert windows.anchor_timing_j2(alone, alone, a, b)[0][0] == 0.0
    assert Points.from_rows(alone.rows(), True).anchor_lo_s is not None


def test_short_windows_under_jittering_updates_keep_what_their_anchors_share() -> None:
    # ± 2 ms at 10 ms reads: a 25 ms window inside one update errs by a quarter of its
    # anchors' difference; taken apart, such windows read 100% covered at 0.095.
    covered, ratios = 0, []
    for seed in range(8):
        run = fake_job(20.0, seed=seed, update_jitter_s=0.002)
        a = run.t0 + 0.5 + np.random.default_rng(seed).uniform(0.0, 18.0, 40)
        energy, width = run.job.curves()[run.gpu.name].window(a, a + 0.025)
        err = np.abs(energy - np.array([run.gpu.true_energy_j(x, x + 0.025) for x in a]))
        covered += int(np.sum(err <= width))
        ratios.extend(err / width)
    assert covered / 320 >= 0.9
    assert float(np.median(ratios)) >= 0.15


def test_the_counters_shared_lag_moves_a_varying_loads_edges_by_the_power_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read once per 100 ms update, every anchor is off by one shared lag (± 50 ms); an edge
    # right after an anchor has no shape error, but the lag moves it by the power drawn
    # there, which on 10-40 ms kernels is not the segment's average.
    def coverage() -> float:
        covered = total = 0
        for seed in range(6):
            clock = FakeClock()
            gpu = FakeGPU(clock=clock, seed=seed, power_w=RandomKernels(seed=seed))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.1).start()
                t0 = clock.now()
                clock.advance(12.0)
                job.stop()
            curve = job.curves()[gpu.name]
            tau = curve.tau[(curve.tau > t0 + 0.5) & (curve.tau < t0 + 6.0)]
            a = tau[:40] + 0.001
            energy, width = curve.window(a, a + 5.0)
            truth = np.array([gpu.true_energy_j(x, x + 5.0) for x in a])
            covered += int(np.sum(np.abs(energy - truth) <= width))
            total += len(a)
        return covered / total

    with_term = coverage()
    monkeypatch.setattr(greenai.windows, "_shift_local_j", lambda model, length: 0.0)
    assert with_term >= 0.7
    assert coverage() < with_term - 0.1


def test_fake_gpu_updates_jitter_within_half_a_period() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=1, power_w=300.0, update_jitter_s=0.02)
    gpu.open()
    times = np.array([gpu._update_time(k) for k in range(200)])
    assert np.all(np.diff(times) > 0.05)
    assert float(np.max(np.abs(times - gpu.update_phase_s - 0.1 * np.arange(200)))) > 0.015
    with pytest.raises(ConfigError, match="update_jitter_s"):
        FakeGPU(clock=clock, update_jitter_s=0.05)


def _long_job(ppm: float, seed: int, seconds: float = 20.0) -> tuple[float, float, EnergyCurve]:
    """Error and ± (J) of a steady 500 W job whose GPU's clock runs ``ppm`` off the host's."""
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=seed, power_w=500.0, clock_ppm=ppm, power_limit_w=700.0)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=0.01).start()
    t0 = clock.now()
    clock.advance(seconds)
    t1 = clock.now()
    r = job.stop()
    error = (r.energy_j or 0.0) - gpu.true_energy_j(t0, t1)
    return error, r.uncertainty_j or 0.0, job.curves()[gpu.name]


def test_the_gpus_clock_off_the_hosts_is_in_a_long_jobs_pm(monkeypatch: pytest.MonkeyPatch) -> None:
    # 60 ppm (crystals of ±50 ppm each): the anchors' shared lag drifts 1.2 ms over a
    # 20 s job, 0.6 J at 500 W, where a steady job read every 10 ms had a ± of ~0.1 J.
    def covered() -> int:
        jobs = [_long_job(60.0 * (-1) ** seed, seed) for seed in range(12)]
        return sum(abs(e) <= u for e, u, _ in jobs)

    assert covered() >= 10
    monkeypatch.setattr(windows, "CLOCK_REL", 0.0)
    assert covered() <= 4


def test_a_wrap_of_the_shared_lag_puts_a_whole_read_gap_in_the_jobs_pm() -> None:
    # 90 ppm over 20 s: 1.8 ms of drift, so the lag crosses a 10 ms read in ~1 job of 6,
    # and the job's edges then err by nearly a read gap (4-5 J at 500 W).
    wrapped = []
    for seed in range(30):
        error, width, curve = _long_job(90.0, seed)
        if curve.model.wraps_per_s > 0:
            wrapped.append((error, width))
    assert 2 <= len(wrapped) <= 15
    assert all(abs(e) <= u for e, u in wrapped)
    assert all(u >= 0.95 * 500.0 * 0.01 for _, u in wrapped)


def test_no_wraps_are_counted_on_a_clock_that_keeps_the_hosts_time() -> None:
    assert all(_long_job(0.0, seed)[2].model.wraps_per_s == 0 for seed in range(6))


def test_the_clock_term_is_for_gpus_only() -> None:
    model = CurveModel(half_bracket_s=0.005)
    energy, length = np.array([7000.0]), np.array([10.0])
    cpu = DeviceSpec("cpu", "cpu", "counter", 0.001, 1e-6, 0.05)
    gpu = DeviceSpec("gpu0", "gpu", "counter", 0.1, 1e-3, 0.05)
    assert windows.clock_j(cpu, model, energy, length) == 0.0
    assert float(np.asarray(windows.clock_j(gpu, model, energy, length))[0]) == pytest.approx(
        7000.0 * windows.CLOCK_REL
    )
    wrapped = CurveModel(half_bracket_s=0.005, wraps_per_s=0.01)  # a wrap in 10 s: 10%
    assert float(np.asarray(windows.clock_j(gpu, wrapped, energy, length))[0]) == pytest.approx(
        700.0 * 0.01
    )


@pytest.mark.parametrize("ppm", [math.nan, math.inf, 1e4, "50"])
def test_fakegpu_rejects_a_clock_offset_it_cannot_simulate(ppm: object) -> None:
    with pytest.raises(ConfigError, match="clock_ppm"):
        FakeGPU(clock_ppm=ppm)  # type: ignore[arg-type]


@pytest.mark.parametrize("period_s", [0.025, 0.05])
def test_updates_jittering_across_reads_keep_the_start_update(period_s: float) -> None:
    # Jitter crosses reads back and forth (segments a read gap long, then short): no
    # drift, so those segments still measure the update; taken out, the start update
    # was lost and a steady 20 s job read 37 J off at ± 28 J (review, session 18).
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, seed=1, power_w=500.0, power_limit_w=700.0, update_jitter_s=0.002)
    job = greenai.track("job", devices=[gpu], clock=clock, period_s=period_s).start()
    t0 = clock.now()
    clock.advance(20.0)
    t1 = clock.now()
    r = job.stop()
    curve = job.curves()[gpu.name]
    assert curve.model.wraps_per_s == 0.0
    assert curve._start_update is not None
    assert abs((r.energy_j or 0.0) - gpu.true_energy_j(t0, t1)) <= 0.5 * (r.uncertainty_j or 0.0)
