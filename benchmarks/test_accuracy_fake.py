"""Accuracy and uncertainty coverage on a simulated GPU, deterministically.

A :class:`~greenai.testing.FakeGPU` on a :class:`~greenai.testing.FakeClock` behaves like an
H100 as far as a measurement can tell (counter and power refresh every 100 ms, a power sensor
that averages 25 ms of each update, mJ counter, sensor noise) and knows its exact energy, so
every window's error is known. Every scenario runs under both counter models of
:class:`~greenai.testing.FakeGPU` — ``exact`` (the counter integrates every instant: greenai's
design bet) and ``sampled`` (it adds up the part-time power value, as Yang, Adámek and Armour
found the power value does on A100/H100; SC'24, arXiv:2312.02741) — and at both sampling
periods greenai uses (0.1 s, the devices' own; 0.01 s, the native loop's default).

Asserted: uncertainty coverage ≥ 95% of random windows in every scenario, mode, period and
window length except those listed in ``KNOWN_UNCOVERED`` (the uncertainty model does not yet
cover them: they are strict xfails, so a fix shows up as XPASS and the entry must go); median
error ≤ 0.5% at ≥ 1 s on steady loads; p95 targets where they hold today
(``ACCURACY_TARGETS``); and that windows are additive (tiles, steps and phases sum exactly to
the window they tile). The numbers go to ``benchmark.extra_info`` (``--benchmark-json``) and
are printed (``-s``). ``python benchmarks/test_accuracy_fake.py`` prints the tables in
docs/accuracy.md. Real hardware is the job of ``benchmarks/gpu_accuracy.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import greenai
from greenai.devices.base import Reading
from greenai.errors import MeasurementWarning
from greenai.testing import FakeClock, FakeGPU, Load, RandomKernels, SquareWave
from greenai.timeline import EnergyCurve, Timeline

STEADY_W = 700.0
LENGTHS_S = (0.025, 0.1, 1.0, 10.0)
WINDOWS_PER_LENGTH = 300
RUN_S = 30.0
SEEDS = (1, 2, 3, 4, 5, 6)
"""Each scenario runs once per seed: another update phase, load and noise each time."""
COUNTER_MODES = ("exact", "sampled")
PERIODS_S = (0.1, 0.01)
"""The sampler's periods: the devices' own (0.1 s) and the native loop's default (0.01 s)."""

LOAD_STEPS = [(5.0, 100.0), (10.0, 700.0), (10.0, 100.0), (5.0, 700.0)]
STEP_EDGES_S = (5.0, 15.0, 25.0)
"""Seconds after the tracker's start at which LOAD_STEPS changes power."""


@dataclass(frozen=True)
class Scenario:
    """A FakeGPU setting: its load (from the run's seed) and its other arguments."""

    load: Callable[[int], float | list[tuple[float, float]] | Load]
    options: dict[str, Any] = field(default_factory=dict)
    steady: bool = False
    has_counter: bool = True
    loop_s: float | None = None
    """The period (s) of the training loop behind the load: the run marks a step each."""


def _steady(seed: int) -> float:
    return STEADY_W


def _square(high_s: float, low_s: float) -> Callable[[int], Load]:
    # The FakeGPU's update phase is drawn from the seed; the wave's own start is drawn too.
    def make(seed: int) -> Load:
        start = float(np.random.default_rng((seed, 99)).uniform(0, high_s + low_s))
        return SquareWave(high_s, low_s, high_w=700.0, low_w=100.0, start_s=start)

    return make


SCENARIOS: dict[str, Scenario] = {
    "steady 700 W": Scenario(_steady, steady=True),
    "steady 700 W, noisy": Scenario(
        _steady, {"noise_w": 30.0, "sensor_noise_w": 10.0}, steady=True
    ),
    "steady 700 W, 1 s averaged power": Scenario(_steady, {"instant": False}, steady=True),
    "steady 700 W, no counter": Scenario(
        _steady, {"counter": False}, steady=True, has_counter=False
    ),
    "load steps 100/700 W every 10 s": Scenario(lambda seed: LOAD_STEPS),
    "load steps 100/700 W every 10 s, 1 s averaged power": Scenario(
        lambda seed: LOAD_STEPS, {"instant": False}
    ),
    "random kernels 10–40 ms, 700/100 W": Scenario(lambda seed: RandomKernels(seed=seed)),
    "square wave 25/75 ms, 700/100 W": Scenario(_square(0.025, 0.075), loop_s=0.1),
    "square wave 50/50 ms, 700/100 W": Scenario(_square(0.050, 0.050), loop_s=0.1),
    "square wave 30/30 ms, 700/100 W": Scenario(_square(0.030, 0.030), loop_s=0.06),
}
STEPPED = [name for name in SCENARIOS if name.startswith("load steps")]


def modes(scenario: str) -> tuple[str, ...]:
    """The counter modes a scenario runs under (one for a device without a counter)."""
    return COUNTER_MODES if SCENARIOS[scenario].has_counter else ("exact",)


def cases() -> list[tuple[str, str, float]]:
    """Every (scenario, counter mode, period) the benchmark runs."""
    return [(s, m, p) for s in SCENARIOS for m in modes(s) for p in PERIODS_S]


STEADY = [name for name, sc in SCENARIOS.items() if sc.steady]

KNOWN_UNCOVERED: set[tuple[str, str, float, float]] = {
    ("square wave 25/75 ms, 700/100 W", "sampled", 0.1, 1.0),
    ("square wave 25/75 ms, 700/100 W", "sampled", 0.1, 10.0),
    ("square wave 25/75 ms, 700/100 W", "sampled", 0.01, 1.0),
    ("square wave 25/75 ms, 700/100 W", "sampled", 0.01, 10.0),
    ("square wave 50/50 ms, 700/100 W", "sampled", 0.1, 1.0),
    ("square wave 50/50 ms, 700/100 W", "sampled", 0.1, 10.0),
    ("square wave 50/50 ms, 700/100 W", "sampled", 0.01, 1.0),
    ("square wave 50/50 ms, 700/100 W", "sampled", 0.01, 10.0),
}
"""(scenario, counter mode, period, window length) where coverage is < 90% today (2026-12-06).

Regenerate with ``python benchmarks/test_accuracy_fake.py --uncovered``. All are square
waves locked to the 100 ms update (a training loop whose period divides it) measured by a
counter that adds up the part-time power value: the sensor sees the same 25 ms of every
period, power and counter agree with each other, and nothing in the readings shows the
~60% error. greenai detects the lock from the step timestamps, warns (a
MeasurementWarning and a note) and widens such windows to the power bound: the device's
declared power limit (NVML's enforced limit), else the highest power seen. These simulated
GPUs declare no limit, and the highest power the part-time sensor saw is not a bound, as
the note says; with a declared limit they are covered (benchmarks/calibration.py,
tests/test_sensing.py).
"""

P95_MISSED = {("steady 700 W, noisy", "sampled", 1.0)}
"""Steady cases whose p95 target does not hold today: 30 W of wander that the part-time
sensor does not see (p95 0.9% at 1 s)."""

ACCURACY_TARGETS: dict[tuple[str, str, float], float] = {
    (scenario, mode, length_s): target_pct
    for scenario in STEADY
    for mode in modes(scenario)
    for length_s, target_pct in ((0.1, 5.0), (1.0, 0.5), (10.0, 0.5))
    if (scenario, mode, length_s) not in P95_MISSED
}
"""p95 error targets (%) by (scenario, counter mode, window length), at both periods."""


@dataclass(frozen=True)
class FakeRun:
    """One tracked run on simulated time: its curve, its window and the fake's truth."""

    gpu: FakeGPU
    curve: EnergyCurve
    t0: float
    t1: float
    result: greenai.Measurement


def energy_curve(job: greenai.Tracker, name: str) -> EnergyCurve:
    """The energy curve behind every figure of ``job`` (what ``Tracker._measure`` uses)."""
    return job.curves()[name]


def make_gpu(scenario: str, mode: str, seed: int, clock: FakeClock) -> FakeGPU:
    """The scenario's FakeGPU under one counter mode."""
    sc = SCENARIOS[scenario]
    return FakeGPU(clock=clock, seed=seed, power_w=sc.load(seed), counter_mode=mode, **sc.options)


@functools.cache
def fake_run(
    scenario: str, seed: int, mode: str = "exact", period_s: float = 0.1, seconds: float = RUN_S
) -> FakeRun:
    """Track a FakeGPU for ``seconds`` of simulated time at ``period_s``."""
    clock = FakeClock()
    gpu = make_gpu(scenario, mode, seed, clock)
    job = greenai.track("fake", devices=[gpu], clock=clock, period_s=period_s).start()
    t0 = clock.now()
    loop_s = SCENARIOS[scenario].loop_s
    if loop_s is None:
        clock.advance(seconds)
    else:  # a training loop: one step per period of the load
        for _ in range(round(seconds / loop_s)):
            clock.advance(loop_s)
            job.step()
    t1 = clock.now()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        result = job.stop()
    return FakeRun(gpu, energy_curve(job, gpu.name), t0, t1, result)


def random_windows(
    run: FakeRun, length_s: float, n: int, seed: int, margin_s: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows of ``length_s`` placed uniformly at random inside the run."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(run.t0 + margin_s, run.t1 - margin_s - length_s, n)
    return a, a + length_s


def true_energy(run: FakeRun, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The simulated GPU's exact energy over each window (J)."""
    return np.array([run.gpu.true_energy_j(x, y) for x, y in zip(a, b, strict=True)])


def summarize(energy: np.ndarray, unc: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Median and p95 relative error (%), signed median (%), coverage and median u (%)."""
    err = np.abs(energy - truth)
    rel = err / truth
    return {
        "windows": len(truth),
        "median_err_pct": round(100 * float(np.median(rel)), 4),
        "signed_median_err_pct": round(100 * float(np.median((energy - truth) / truth)), 4),
        "p95_err_pct": round(100 * float(np.percentile(rel, 95)), 4),
        "coverage": round(float(np.mean(err <= unc)), 4),
        "median_u_pct": round(100 * float(np.median(unc / truth)), 3),
    }


def scenario_windows(
    scenario: str, mode: str, period_s: float, length_s: float
) -> list[tuple[FakeRun, np.ndarray, np.ndarray]]:
    """The random windows of one case and length, spread over the seeds."""
    per_seed = WINDOWS_PER_LENGTH // len(SEEDS)
    out = []
    for seed in SEEDS:
        run = fake_run(scenario, seed, mode, period_s)
        a, b = random_windows(run, length_s, per_seed, seed=seed + int(length_s * 1000))
        out.append((run, a, b))
    return out


@functools.cache
def accuracy(scenario: str, mode: str, period_s: float, length_s: float) -> dict[str, float]:
    """Accuracy of one case and window length, against exact and steady truths."""
    parts = scenario_windows(scenario, mode, period_s, length_s)
    evaluated = [run.curve.window(a, b) for run, a, b in parts]
    energy = np.concatenate([e for e, _ in evaluated])
    unc = np.concatenate([u for _, u in evaluated])
    truth = np.concatenate([true_energy(run, a, b) for run, a, b in parts])
    stats = summarize(energy, unc, truth)
    if not SCENARIOS[scenario].steady:
        return stats
    # The truth on hardware, where exact energy is unknown: steady power × the window's length.
    steady = np.concatenate(
        [
            np.full(len(a), run.gpu.true_energy_j(run.t0, run.t1) / (run.t1 - run.t0) * length_s)
            for run, a, _ in parts
        ]
    )
    vs_steady = summarize(energy, unc, steady)
    stats["median_err_vs_steady_pct"] = vs_steady["median_err_pct"]
    stats["p95_err_vs_steady_pct"] = vs_steady["p95_err_pct"]
    stats["coverage_vs_steady"] = vs_steady["coverage"]
    return stats


def _case_id(case: tuple[str, str, float]) -> str:
    scenario, mode, period_s = case
    return f"{scenario} [{mode} counter, {period_s:g} s]"


def _coverage_params() -> list[Any]:
    params = []
    for scenario, mode, period_s in cases():
        for length_s in LENGTHS_S:
            marks = []
            if (scenario, mode, period_s, length_s) in KNOWN_UNCOVERED:
                marks.append(
                    pytest.mark.xfail(strict=True, reason="uncertainty does not cover this yet")
                )
            params.append(
                pytest.param(
                    scenario,
                    mode,
                    period_s,
                    length_s,
                    marks=marks,
                    id=f"{_case_id((scenario, mode, period_s))} {length_s * 1000:g}ms",
                )
            )
    return params


# --- uncertainty coverage and accuracy over random windows --------------------------------
@pytest.mark.parametrize(("scenario", "mode", "period_s", "length_s"), _coverage_params())
@pytest.mark.benchmark(group="accuracy-windows")
def test_random_windows(
    benchmark, scenario: str, mode: str, period_s: float, length_s: float
) -> None:
    parts = scenario_windows(scenario, mode, period_s, length_s)

    def integrate_all() -> list[tuple[np.ndarray, np.ndarray]]:
        return [run.curve.window(a, b) for run, a, b in parts]

    benchmark.pedantic(integrate_all, rounds=3)
    stats = accuracy(scenario, mode, period_s, length_s)
    benchmark.extra_info.update(stats)
    print(f"\n{_case_id((scenario, mode, period_s))}, {length_s * 1000:g} ms windows: {stats}")
    target = ACCURACY_TARGETS.get((scenario, mode, length_s))
    if target is not None:
        assert stats["p95_err_pct"] <= target
    if SCENARIOS[scenario].steady and length_s >= 1.0:
        assert stats["median_err_pct"] <= 0.5
    # A calibrated 95% interval (benchmarks/calibration.py is the gate) covers 90-99%.
    assert stats["coverage"] >= 0.90


def across_steps(scenario: str, mode: str, period_s: float, length_s: float) -> dict[str, float]:
    """Accuracy over windows that each contain one of the load steps."""
    energy, unc, truth = [], [], []
    per_seed = WINDOWS_PER_LENGTH // len(SEEDS)
    for seed in SEEDS:
        run = fake_run(scenario, seed, mode, period_s)
        rng = np.random.default_rng(seed)
        edges = run.t0 + rng.choice(STEP_EDGES_S, per_seed)
        a = edges - rng.uniform(0.0, length_s, per_seed)
        b = a + length_s
        e, u = run.curve.window(a, b)
        energy.append(e)
        unc.append(u)
        truth.append(true_energy(run, a, b))
    return summarize(np.concatenate(energy), np.concatenate(unc), np.concatenate(truth))


@pytest.mark.parametrize("length_s", LENGTHS_S[:3], ids=lambda s: f"{s * 1000:g}ms")
@pytest.mark.parametrize("scenario", STEPPED)
def test_windows_across_load_steps(scenario: str, length_s: float) -> None:
    """Recorded, not asserted: the hardest windows, each containing a 600 W step."""
    for mode in COUNTER_MODES:
        for period_s in PERIODS_S:
            stats = across_steps(scenario, mode, period_s, length_s)
            print(
                f"\n{_case_id((scenario, mode, period_s))}, {length_s * 1000:g} ms windows "
                f"across a step: {stats}"
            )
            assert stats["windows"] == WINDOWS_PER_LENGTH


# --- whole short jobs (issue 13: a 1 s job read high when sampled every 10 ms) -------------
SHORT_JOB_S = 1.0
SHORT_JOBS = 40


@functools.cache
def short_jobs(mode: str, period_s: float) -> dict[str, float]:
    """Steady 700 W jobs of 1 s, each with its own seed: the job's energy against the truth."""
    energy, unc, truth = [], [], []
    for seed in range(100, 100 + SHORT_JOBS):
        clock = FakeClock()
        gpu = make_gpu("steady 700 W", mode, seed, clock)
        job = greenai.track("short", devices=[gpu], clock=clock, period_s=period_s).start()
        t0 = clock.now()
        clock.advance(SHORT_JOB_S)
        t1 = clock.now()
        result = job.stop()
        assert result.energy_j is not None and result.uncertainty_j is not None
        energy.append(result.energy_j)
        unc.append(result.uncertainty_j)
        truth.append(gpu.true_energy_j(t0, t1))
    return summarize(np.array(energy), np.array(unc), np.array(truth))


KNOWN_BIASED_SHORT_JOBS: set[tuple[str, float]] = set()
"""(counter mode, period) where 1 s jobs read > 1% off in the median (strict xfails). Empty
since the job's first counter value is no longer anchored when reads are much faster than
the counter refreshes (it was +2.9% at 0.01 s, covered 72.5%; now 0.03%, covered 100%)."""


@pytest.mark.parametrize("period_s", PERIODS_S, ids=lambda p: f"{p:g}s")
@pytest.mark.parametrize("mode", COUNTER_MODES)
def test_short_steady_jobs(request: pytest.FixtureRequest, mode: str, period_s: float) -> None:
    stats = short_jobs(mode, period_s)
    print(f"\nsteady 700 W, 1 s jobs [{mode} counter, {period_s:g} s]: {stats}")
    if (mode, period_s) in KNOWN_BIASED_SHORT_JOBS:
        request.applymarker(pytest.mark.xfail(strict=True, reason="issue 13: biased"))
    assert stats["median_err_pct"] <= 1.0
    assert stats["coverage"] >= 0.90  # a calibrated 95% interval (benchmarks/calibration.py)


# --- additivity ---------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["steady 700 W", "load steps 100/700 W every 10 s"])
@pytest.mark.parametrize("tile_s", [0.025, 0.01], ids=lambda s: f"{s * 1000:g}ms")
def test_tiles_sum_to_the_long_window(scenario: str, tile_s: float) -> None:
    """Short windows tiling a long one sum to it exactly, and their u covers the error."""
    run = fake_run(scenario, seed=1)
    start, end = run.t0 + 2.0, run.t1 - 2.0
    edges = np.append(np.arange(start, end, tile_s), end)
    tiles_e, tiles_u = run.curve.window(edges[:-1], edges[1:])
    long_e, long_u = run.curve.window(np.array([start]), np.array([end]))
    assert math.isclose(math.fsum(tiles_e), long_e[0], rel_tol=1e-9)
    truth = run.gpu.true_energy_j(start, end)
    assert abs(math.fsum(tiles_e) - truth) <= math.fsum(tiles_u)
    assert abs(long_e[0] - truth) <= long_u[0]


def test_random_tiles_sum_to_the_long_window() -> None:
    run = fake_run("load steps 100/700 W every 10 s", seed=2)
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.uniform(run.t0 + 1.0, run.t1 - 1.0, 2000))
    tiles_e, _ = run.curve.window(cuts[:-1], cuts[1:])
    long_e, _ = run.curve.window(cuts[:1], cuts[-1:])
    assert math.isclose(math.fsum(tiles_e), long_e[0], rel_tol=1e-9)


def test_steps_and_phases_sum_to_the_job() -> None:
    """End to end: 400 steps of 25 ms, each with two phases, tile the job exactly."""
    clock = FakeClock()
    gpu = FakeGPU(power_w=STEADY_W, clock=clock, seed=4)
    with greenai.track("tiled", devices=[gpu], clock=clock) as job:
        t0 = clock.now()
        for _ in range(400):
            with job.phase("forward"):
                clock.advance(0.010)
            with job.phase("backward"):
                clock.advance(0.012)
            clock.advance(0.003)
            job.step(samples=32)
        t1 = clock.now()
    result = job.result
    assert result.energy_j is not None and result.uncertainty_j is not None
    assert result.steps.count == 400
    assert math.isclose(result.steps.total_energy_j, result.energy_j, rel_tol=1e-9)
    phases = math.fsum(p.energy_j or 0.0 for p in result.phases)
    assert math.isclose(phases, result.energy_j, rel_tol=1e-9)
    truth = gpu.true_energy_j(t0, t1)
    assert abs(result.energy_j - truth) <= result.uncertainty_j


# --- the real-GPU script's analysis, on a simulated GPU ----------------------------------
@pytest.fixture(scope="module")
def gpu_accuracy() -> Any:
    """benchmarks/gpu_accuracy.py as a module (it is a script, not a package)."""
    path = Path(__file__).with_name("gpu_accuracy.py")
    spec = importlib.util.spec_from_file_location("gpu_accuracy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_gpu_accuracy_script_selftest(gpu_accuracy: Any, tmp_path: Path) -> None:
    """benchmarks/gpu_accuracy.py cannot run here; its recording and analysis can."""
    out = tmp_path / "accuracy.md"
    assert gpu_accuracy.main(["--selftest", "--skip-overhead", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Random windows in a steady load" in text
    assert "Does the energy counter integrate every instant?" in text
    assert "counter updates off their fitted grid" in text
    assert "counter update clock against the host's" in text
    assert out.with_suffix(".csv").read_text().startswith("test,start_s,")
    assert (tmp_path / "accuracy-sensor.csv").read_text().startswith("test,segment,")


def test_gpu_sensor_experiment_selftest(gpu_accuracy: Any, tmp_path: Path) -> None:
    """The counter experiment tells a simulated exact counter from a sampled one."""
    out = tmp_path / "sensor.md"
    assert gpu_accuracy.main(["--selftest", "--sensor-only", "--out", str(out)]) == 0
    text = out.read_text()
    assert "exact counter)" in text and "sampled counter)" in text
    assert "**Counter:** integrates every instant" in text
    assert "**Counter:** part-time" in text
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "test,segment,start_s,length_s,counter_w,power_value_w"
    assert sum(r.startswith("wave,") for r in rows) == 2 * 8


def _rates(gpu_accuracy: Any, counter: dict[str, list[float]], power: list[float]) -> list[Any]:
    out = []
    for kind, values in counter.items():
        for i, value in enumerate(values):
            seg = gpu_accuracy.Segment(kind, f"{kind} {i}", float(i), float(i) + 3.0)
            shown = power[i] if kind == "wave" else value
            out.append(gpu_accuracy.SegmentRate(seg, value, shown, 29, (seg.a, seg.b)))
    return out


def test_sensor_verdict_between_thresholds_is_unclear(gpu_accuracy: Any) -> None:
    rates = _rates(
        gpu_accuracy,
        {"low": [100.0], "high": [700.0], "wave": [400.0, 412.0], "bursts": [170.0, 171.0]},
        power=[400.0, 401.0],
    )
    verdict = gpu_accuracy.sensor_verdict(rates)
    assert verdict.wave_counter.of_swing_pct == pytest.approx(2.0)
    assert verdict.counter.startswith("unclear")
    assert "lock to the updates failed" in verdict.control


def test_sensor_verdict_needs_the_bursts_flat_too(gpu_accuracy: Any) -> None:
    rates = _rates(
        gpu_accuracy,
        {"low": [100.0], "high": [700.0], "wave": [400.0, 401.0], "bursts": [160.0, 180.0]},
        power=[150.0, 650.0],
    )
    verdict = gpu_accuracy.sensor_verdict(rates)
    assert not verdict.counter.startswith("integrates")
    assert "lock to the updates held" in verdict.control


def test_update_times_fit_through_missed_updates(gpu_accuracy: Any) -> None:
    """600 updates 100.3 ms apart, every 7th missing, polled every 4-6 ms."""
    rng = np.random.default_rng(0)
    period = 0.1003
    updates = 50.0 + period * np.array([i for i in range(600) if i % 7 != 3])
    t_before = np.cumsum(rng.uniform(0.004, 0.006, 13_000)) + 49.9
    t_before = t_before[t_before < updates[-1] + 0.05]
    t_after = t_before + 0.001
    energy = np.searchsorted(updates, t_before, side="right").astype(float)  # updates seen
    log = gpu_accuracy.CounterLog(t_before, t_after, energy)
    fitted_period, last = gpu_accuracy.update_times(log)
    assert fitted_period == pytest.approx(period, rel=1e-4)
    assert abs(last - updates[-1]) < 0.004


def test_update_jitter_is_read_off_the_fitted_grid(gpu_accuracy: Any) -> None:
    """Updates ± 2 ms off a 100.3 ms grid (uniform: sd 1.15 ms), every 7th missing."""
    rng = np.random.default_rng(1)
    k = np.array([i for i in range(600) if i % 7 != 3], dtype=float)
    t = 50.0 + 0.1003 * k + rng.uniform(-0.002, 0.002, len(k))
    sd_ms, most_ms = gpu_accuracy.update_jitter_ms(t, float(np.median(np.diff(t))))
    assert sd_ms == pytest.approx(2.0 / np.sqrt(3.0), rel=0.1)
    assert 1.8 < most_ms <= 2.1
    exact = 50.0 + 0.1003 * k
    assert gpu_accuracy.update_jitter_ms(exact, 0.1003)[1] < 1e-6


def test_the_update_clock_is_read_against_the_declared_period(gpu_accuracy: Any) -> None:
    """Updates every 100.01 ms (100 ppm slow) of a declared 100 ms, every 7th missing."""
    k = np.array([i for i in range(600) if i % 7 != 3], dtype=float)
    rng = np.random.default_rng(2)
    t = 50.0 + 0.10001 * k + rng.uniform(-0.0002, 0.0002, len(k))
    ppm, pm = gpu_accuracy.update_clock_ppm(t, float(np.median(np.diff(t))), 0.1)
    assert ppm == pytest.approx(100.0, abs=max(pm, 1.0))
    assert 0 < pm < 5.0
    exact, _ = gpu_accuracy.update_clock_ppm(50.0 + 0.1 * k, 0.1, 0.1)
    assert abs(exact) < 1e-3


# --- integration speed --------------------------------------------------------------------
@pytest.mark.benchmark(group="integration")
def test_integrate_100k_step_windows(benchmark) -> None:
    """What stop() spends on 100k steps of one device (consecutive 3 ms windows)."""
    run = fake_run("steady 700 W", seed=1, seconds=310.0)
    ends = run.t0 + 5.0 + 0.003 * np.arange(1, 100_001)
    starts = np.concatenate([[run.t0 + 5.0], ends[:-1]])
    energy, unc = benchmark.pedantic(run.curve.window, args=(starts, ends), rounds=5)
    assert len(energy) == 100_000 and np.all(unc > 0)
    benchmark.extra_info["readings"] = len(run.curve.t)


@pytest.mark.benchmark(group="integration")
def test_build_curve_from_3000_readings(benchmark) -> None:
    """What stop() spends turning 5 minutes of readings into a curve."""
    run = fake_run("steady 700 W", seed=1, seconds=310.0)
    timeline = Timeline([run.gpu])
    for t, e, p in zip(run.curve.t, run.curve.counter, run.curve.power, strict=True):
        timeline.add(run.gpu.name, float(t), Reading(energy_j=float(e), power_w=float(p)))
    curves = benchmark.pedantic(timeline.curves, rounds=5)
    assert len(curves[run.gpu.name].tau) > 3000


# --- FakeGPU's own cost: a read must not grow with the simulated job's length -----------
def _reads_per_second(gpu: FakeGPU, clock: FakeClock, reads: int, period_s: float) -> float:
    import time

    start = time.perf_counter()
    for _ in range(reads):
        clock.advance(period_s)
        gpu.read()
    return reads / (time.perf_counter() - start)


@pytest.mark.parametrize("mode", COUNTER_MODES)
@pytest.mark.benchmark(group="fake-gpu")
def test_fake_gpu_read_cost_after_a_simulated_day(benchmark, mode: str) -> None:
    """Reads at 10 Hz cost the same at hour 24 as at hour 0 (a long benchmark needs it)."""
    clock = FakeClock(0.0)
    gpu = FakeGPU(clock=clock, power_w=RandomKernels(seed=1), counter_mode=mode, noise_w=5.0)
    gpu.open()
    fresh = max(_reads_per_second(gpu, clock, 1000, 0.1) for _ in range(3))
    clock.advance(86_400.0)
    gpu.read()  # the day's sampled sums and chunks are built here, once
    benchmark.pedantic(_reads_per_second, args=(gpu, clock, 1000, 0.1), rounds=3)
    day = max(_reads_per_second(gpu, clock, 1000, 0.1) for _ in range(3))
    benchmark.extra_info.update({"reads_per_s_fresh": fresh, "reads_per_s_after_a_day": day})
    # O(1): the best of three runs each; a cost that grew with history would be many times
    # slower after 864,000 updates.
    assert day > fresh / 5


# --- the tables in docs/accuracy.md ---------------------------------------------------------
def _cell(s: dict[str, float]) -> str:
    return f"{s['median_err_pct']:.3f}% | {100 * s['coverage']:.1f}% | {s['median_u_pct']:.1f}%"


def markdown_tables() -> str:
    """Every case as the markdown tables of docs/accuracy.md."""
    lines: list[str] = []
    per = " | ".join(
        f"{p:g} s: median error | {p:g} s: covered | {p:g} s: median u" for p in PERIODS_S
    )
    for mode in COUNTER_MODES:
        lines += [
            f"**{mode} counter**",
            "",
            f"| scenario | window | {per} |",
            "| --- | --- |" + " --- |" * (3 * len(PERIODS_S)),
        ]
        for scenario in SCENARIOS:
            if mode not in modes(scenario):
                continue
            for length_s in LENGTHS_S:
                cells = " | ".join(_cell(accuracy(scenario, mode, p, length_s)) for p in PERIODS_S)
                lines.append(f"| {scenario} | {length_s * 1000:g} ms | {cells} |")
        lines.append("")
    lines += [
        "**Windows containing a 100 ↔ 700 W step**",
        "",
        f"| power | counter | window | {per} |",
        "| --- | --- | --- |" + " --- |" * (3 * len(PERIODS_S)),
    ]
    for scenario in STEPPED:
        power = "1 s averaged" if "averaged" in scenario else "instant"
        for mode in COUNTER_MODES:
            for length_s in LENGTHS_S[:3]:
                cells = " | ".join(
                    _cell(across_steps(scenario, mode, p, length_s)) for p in PERIODS_S
                )
                lines.append(f"| {power} | {mode} | {length_s * 1000:g} ms | {cells} |")
    lines += [
        "",
        f"**Whole jobs of {SHORT_JOB_S:g} s at a steady 700 W** ({SHORT_JOBS} jobs each)",
        "",
        "| counter | period | median error (signed) | p95 error | covered | median u |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode in COUNTER_MODES:
        for period_s in PERIODS_S:
            s = short_jobs(mode, period_s)
            lines.append(
                f"| {mode} | {period_s:g} s | {s['signed_median_err_pct']:+.2f}% "
                f"| {s['p95_err_pct']:.2f}% | {100 * s['coverage']:.1f}% "
                f"| {s['median_u_pct']:.2f}% |"
            )
    return "\n".join(lines)


def uncovered() -> list[tuple[str, str, float, float]]:
    """The cases whose coverage is below 90% (what ``KNOWN_UNCOVERED`` must list)."""
    return [
        (scenario, mode, period_s, length_s)
        for scenario, mode, period_s in cases()
        for length_s in LENGTHS_S
        if accuracy(scenario, mode, period_s, length_s)["coverage"] < 0.90
    ]


if __name__ == "__main__":
    if "--uncovered" in sys.argv:
        for case in uncovered():
            print(f"    {case!r},")
    else:
        print(markdown_tables())


def test_gpu_phases_script_tells_gpus_in_phase_apart(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/gpu_phases.py (do one machine's GPUs update in phase?) on FakeGPUs."""
    path = Path(__file__).with_name("gpu_phases.py")
    spec = importlib.util.spec_from_file_location("gpu_phases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--selftest"]) == 0
    finally:
        sys.modules.pop(spec.name, None)
    text = capsys.readouterr().out
    assert "gpu0 and gpu1" in text and "in phase" in text
    assert "gpu0 and gpu2" in text and "independent" in text
