"""Calibration of greenai's stated uncertainty against a simulated GPU's exact energy.

Every case comes from a *regime*, declared in one line below: a load, a counter model
(``exact``: the counter integrates every instant; ``sampled``: it adds up the part-time power
value, as Yang, Adámek and Armour found the power value does on A100/H100, SC'24,
arXiv:2312.02741; ``none``: power only), a sampling period, how the figure is taken
(random windows of a tracked run, whole short jobs, or per-step figures of a training
loop) and a length. Each regime runs over several seeds (another update phase, load and
noise each), and for each it reports

* **coverage**: the share of figures whose error is within the stated ± (a 95% interval);
* **median |error|/±**: how wide the ± is against the errors it covers (a calibrated
  normal 95% interval gives about 0.34; far below means too wide).

Targets, for every regime: coverage in [90%, 99%] and median ratio in [0.15, 0.6]. A figure
that greenai flags (its result carries a note naming a regime whose ± is a bound) may miss
the bands (its ± is widened to cover), never the coverage floor; the figures of a case that
carry no such note must meet both (:meth:`Figures.meets_targets`): a note is given per
result, so a case is judged per figure, not by whether every one of its runs was noted.

Varying loads (kernels, square waves) run before the job too (:class:`greenai.testing.Running`),
as on a GPU whose work was under way when tracking began: a plain load holds its level at
``open()`` before it, a false step at every job's start whose bound covered the edges
(kernels of 5-20 ms, 2 s jobs: 100% covered that way and noted; 84% running before, with
the ± of the time). A load that starts with the job is its own regime ("idle, then ...").

Two sets: ``TUNING`` (what the model's constants were chosen on) and ``HELD_OUT`` (other
loads, levels, sensors and seeds, never tuned on). ``python benchmarks/calibration.py``
prints both tables (``--full`` for more seeds; ``--markdown`` for docs/accuracy.md);
``benchmarks/test_calibration.py`` asserts the targets.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import greenai
from greenai.errors import MeasurementWarning
from greenai.testing import (
    FakeClock,
    FakeGPU,
    Load,
    RandomKernels,
    Running,
    SquareWave,
    Steady,
    Steps,
)

COVERAGE = (0.90, 0.99)
RATIO = (0.15, 0.60)
MIN_JUDGED = 16
"""Fewest figures of a part of a case (flagged, or not) judged by their shares alone; fewer
are judged by binomial tests (``Figures.meets_targets``)."""
MIN_CEILING = 64
"""Fewest unflagged figures held to the 99% ceiling: at a calibrated 95%, 64 figures show no
miss 3.8% of the time, 40 figures 13% (below it the ratio band still holds a ± too
wide)."""
RUN_S = 20.0
"""Shortest tracked run (s) that random windows are drawn from (and the ``steps`` run)."""
WINDOWS_PER_SEED = 16
"""Windows per seed at least: longer windows come from more runs. The run's update phase is
a run-level error (where the anchors sit against the true updates): windows of one run share
it, and 60 windows of 10 s drawn from one 20 s run were about two independent figures."""
POWER_LIMIT_W = 700.0
"""Every simulated GPU declares an H100 SXM's power limit (what NVML's enforced limit reads)."""


# --- loads, by name: each a function of the seed ------------------------------------------
def _square(high_s: float, low_s: float, high_w: float = 700.0, low_w: float = 100.0) -> Any:
    def make(seed: int) -> Load:
        start = float(np.random.default_rng((seed, 99)).uniform(0, high_s + low_s))
        return Running(SquareWave(high_s, low_s, high_w=high_w, low_w=low_w, start_s=start))

    return make


def _steps(every_s: float, low_w: float, high_w: float) -> Any:
    def make(seed: int) -> Load:
        rng = np.random.default_rng((seed, 7))
        first = float(rng.uniform(0.5, every_s))
        segs = [(first, low_w)]
        level = high_w
        while sum(d for d, _ in segs) < 4 * RUN_S:
            segs.append((every_s * float(rng.uniform(0.7, 1.3)), level))
            level = low_w if level == high_w else high_w
        return Steps(segs)

    return make


class _AfterIdle(Load):
    """``idle_w`` until the job starts (1 µs after ``open()``), then ``inner``.

    The GPU idles before the job: the power value read at its start samples that idle
    update, not the job's load (a job's first stretch extrapolated on it read 7% low).
    """

    START_S = 1e-6

    def __init__(self, inner: Load | float, idle_w: float = 80.0) -> None:
        self.inner = inner if isinstance(inner, Load) else Steady(float(inner))
        self.idle_w = idle_w

    def power_w(self, t_s: float) -> float:
        return self.idle_w if t_s < self.START_S else self.inner.power_w(t_s)

    def _energy_from_zero_j(self, t_s: float) -> float:
        if t_s <= self.START_S:
            return self.idle_w * t_s
        return (
            self.idle_w * self.START_S
            + self.inner.energy_j(t_s)
            - self.inner.energy_j(self.START_S)
        )


def _idle_before_end(job_s: float, lo_s: float, hi_s: float, load_w: float = 400.0) -> Any:
    """``load_w`` until ``lo_s``-``hi_s`` (drawn per seed) before a ``job_s`` job's end, then
    80 W: the work ends inside the job's last counter update, where nothing read before
    the end shows it (0 both: the work ends with the job, the usual case)."""

    def make(seed: int) -> Load:
        idle_s = float(np.random.default_rng((seed, 91)).uniform(lo_s, hi_s))
        return Steps([(job_s - idle_s, load_w), (1e6, 80.0)])

    return make


LOADS: dict[str, tuple[Callable[[int], float | Load], dict[str, Any], float | None]] = {
    # name: (load from seed, FakeGPU options, period (s) of a loop locked to the load or None)
    "steady 700 W": (lambda seed: 700.0, {}, None),
    "steady 700 W noisy": (lambda seed: 700.0, {"noise_w": 30.0, "sensor_noise_w": 10.0}, None),
    # updates off their grid by up to 2 ms, under a 10 ms read gap: segments read even
    "steady 700 W, updates ± 2 ms": (lambda seed: 700.0, {"update_jitter_s": 0.002}, None),
    "steps 100/700 W ~10 s": (_steps(10.0, 100.0, 700.0), {}, None),
    "kernels 10-40 ms": (lambda seed: Running(RandomKernels(seed=seed)), {}, None),
    "square 30/30 ms": (_square(0.030, 0.030), {}, None),
    "locked 25/75 ms": (_square(0.025, 0.075), {}, 0.1),
    "locked 50/50 ms": (_square(0.050, 0.050), {}, 0.1),
    # held-out loads: other levels, shapes, sensors
    "steady 350 W avg-power": (lambda seed: 350.0, {"instant": False}, None),
    "steady 500 W gh200": (lambda seed: 500.0, {"sensor_window_s": 0.02}, None),
    "steps 150/650 W ~3 s": (_steps(3.0, 150.0, 650.0), {}, None),
    "steps 150/650 W ~3 s, updates ± 1.5 ms": (
        _steps(3.0, 150.0, 650.0),
        {"update_jitter_s": 0.0015},
        None,
    ),
    "steady 500 W gh200, updates ± 3 ms": (
        lambda seed: 500.0,
        {"sensor_window_s": 0.02, "update_jitter_s": 0.003},
        None,
    ),
    "kernels 5-20 ms": (
        lambda seed: Running(
            RandomKernels(seed=seed, min_s=0.005, max_s=0.02, high_w=600, low_w=150)
        ),
        {},
        None,
    ),
    "kernels 40-120 ms": (
        lambda seed: Running(
            RandomKernels(seed=seed, min_s=0.04, max_s=0.12, high_w=650, low_w=200)
        ),
        {},
        None,
    ),
    "square 35/45 ms": (_square(0.035, 0.045, 600.0, 200.0), {}, None),
    # a period just under the update's: each update's sensor window lands at another phase
    "square 37/51 ms": (_square(0.037, 0.051), {}, None),
    # faster than the 10 ms read gap (a review, session 21: 75-86% covered, no note)
    "square 13/17 ms": (_square(0.013, 0.017), {}, None),
    "kernels 2-8 ms": (
        lambda seed: Running(
            RandomKernels(seed=seed, min_s=0.002, max_s=0.008, high_w=650, low_w=150)
        ),
        {},
        None,
    ),
    "square 90/30 ms": (_square(0.09, 0.03), {}, None),
    "locked 20/30 ms": (_square(0.020, 0.030, 650.0, 150.0), {}, 0.05),
    "locked 100/100 ms": (_square(0.100, 0.100, 650.0, 150.0), {}, 0.2),
    "idle, then 450 W": (lambda seed: _AfterIdle(450.0), {}, None),
    "idle, then kernels 10-40 ms": (
        lambda seed: _AfterIdle(RandomKernels(seed=seed, high_w=650, low_w=200)),
        {},
        None,
    ),
    "400 W, idle the last 10-50 ms of 1 s": (_idle_before_end(1.0, 0.01, 0.05), {}, None),
    "400 W to the end of 1 s, then idle": (_idle_before_end(1.0, 0.0, 0.0), {}, None),
    "400 W, idle the last 100-200 ms of 1 s": (_idle_before_end(1.0, 0.1, 0.2), {}, None),
    # a training loop's iterations: compute and communication, levels held 0.2-0.5 s
    "steps 150/650 W 0.2-0.5 s": (
        lambda seed: Running(RandomKernels(seed=seed, min_s=0.2, max_s=0.5, high_w=650, low_w=150)),
        {},
        None,
    ),
    # several GPUs of one machine on one load (data parallel), each its own update phase
    # (``same_phase``: all one): the job's figure is their sum
    "8 GPUs, kernels 10-40 ms": (
        lambda seed: Running(RandomKernels(seed=seed)),
        {"gpus": 8},
        None,
    ),
    "8 GPUs in phase, kernels 10-40 ms": (
        lambda seed: Running(RandomKernels(seed=seed)),
        {"gpus": 8, "same_phase": True},
        None,
    ),
    "8 GPUs, steps 150/650 W ~3 s": (_steps(3.0, 150.0, 650.0), {"gpus": 8}, None),
    # a loop locked to the updates that marks no steps: the readings look steady
    "unmarked locked 50/50 ms": (_square(0.050, 0.050), {}, None),
    "unmarked locked 20/30 ms": (_square(0.020, 0.030, 650.0, 150.0), {}, None),
    # levels held 0.5 s (an input pipeline's stalls): the load steps near the job's start
    "square 0.5/0.5 s": (_square(0.5, 0.5, 650.0, 150.0), {}, None),
    "kernels 10-40 ms, 50 ms updates": (
        lambda seed: Running(RandomKernels(seed=seed)),
        {"update_period_s": 0.05},
        None,
    ),
}


@dataclass(frozen=True)
class Regime:
    """One declared regime: a load, a counter, a sampling period, a kind of figure, lengths.

    ``kind``: ``windows`` (random windows of a tracked run, at random times), ``jobs`` (whole
    jobs of that length, each its own seed) or ``steps`` (per-step figures of a loop that
    marks a step every ``length``).
    """

    load: str
    counter: str
    period_s: float
    kind: str
    lengths_s: tuple[float, ...]

    def cases(self) -> list[tuple[Regime, float]]:
        """One case per length."""
        return [(self, x) for x in self.lengths_s]


def R(load: str, counter: str, period_s: float, kind: str, *lengths_s: float) -> Regime:
    """A regime in one line."""
    if load not in LOADS:
        raise KeyError(load)
    if LOADS[load][1].get("gpus", 1) > 1 and kind != "jobs":
        raise ValueError(f"{load}: several GPUs are calibrated on whole jobs only")
    return Regime(load, counter, period_s, kind, tuple(lengths_s))


W = (0.025, 0.1, 1.0, 10.0)
HELD_OUT_W = (0.05, 0.5, 5.0)
JOBS = (0.02, 0.05, 0.2, 1.0)
UNROUND_W = (0.073, 0.77, 5.13)

TUNING: list[Regime] = [
    R("steady 700 W", "exact", 0.1, "windows", *W),
    R("steady 700 W", "exact", 0.01, "windows", *W),
    R("steady 700 W", "sampled", 0.1, "windows", *W),
    R("steady 700 W noisy", "exact", 0.1, "windows", *W),
    R("steady 700 W noisy", "sampled", 0.01, "windows", *W),
    R("steady 700 W", "none", 0.1, "windows", *W),
    R("steps 100/700 W ~10 s", "exact", 0.1, "windows", *W),
    R("steps 100/700 W ~10 s", "sampled", 0.01, "windows", *W),
    R("steps 100/700 W ~10 s", "none", 0.1, "windows", *W),
    R("kernels 10-40 ms", "exact", 0.1, "windows", *W),
    R("kernels 10-40 ms", "exact", 0.01, "windows", *W),
    R("kernels 10-40 ms", "sampled", 0.1, "windows", *W),
    R("kernels 10-40 ms", "none", 0.1, "windows", *W),
    R("square 30/30 ms", "exact", 0.01, "windows", *W),
    R("square 30/30 ms", "sampled", 0.1, "windows", *W),
    R("locked 25/75 ms", "exact", 0.1, "windows", *W),
    R("locked 50/50 ms", "sampled", 0.01, "windows", *W),
    R("locked 25/75 ms", "exact", 0.1, "steps", 0.1),
    R("locked 50/50 ms", "exact", 0.01, "steps", 0.1),
    R("steady 700 W", "exact", 0.1, "jobs", *JOBS),
    R("steady 700 W", "exact", 0.01, "jobs", 1.0, 3.0),
    R("steady 700 W", "sampled", 0.01, "jobs", 1.0),
    R("kernels 10-40 ms", "exact", 0.01, "jobs", *JOBS),
    R("kernels 10-40 ms", "sampled", 0.1, "jobs", *JOBS),
    R("steady 700 W, updates ± 2 ms", "exact", 0.01, "windows", *W),
    R("steady 700 W, updates ± 2 ms", "exact", 0.01, "jobs", 1.0, 3.0),
]
HELD_OUT: list[Regime] = [
    R("steady 350 W avg-power", "exact", 0.1, "windows", *HELD_OUT_W),
    R("steady 500 W gh200", "sampled", 0.01, "windows", *HELD_OUT_W),
    R("steps 150/650 W ~3 s", "exact", 0.01, "windows", *HELD_OUT_W),
    R("steps 150/650 W ~3 s", "sampled", 0.1, "windows", *HELD_OUT_W),
    R("kernels 5-20 ms", "exact", 0.1, "windows", *HELD_OUT_W),
    R("kernels 5-20 ms", "sampled", 0.01, "windows", *HELD_OUT_W),
    R("kernels 40-120 ms", "exact", 0.01, "windows", *HELD_OUT_W),
    R("kernels 40-120 ms", "none", 0.01, "windows", *HELD_OUT_W),
    R("square 35/45 ms", "sampled", 0.01, "windows", *HELD_OUT_W),
    # square waves drifting through the updates, exact counter (a review, session 19: the
    # 37/51 ms one read steady, windows 0-13% covered at 10-15x their ±, no note)
    R("square 37/51 ms", "exact", 0.01, "windows", *HELD_OUT_W),
    R("square 35/45 ms", "exact", 0.01, "windows", *HELD_OUT_W),
    # whole jobs of it: their edges inside the outer updates (session 20: 77-83% covered)
    R("square 35/45 ms", "exact", 0.01, "jobs", 1.0, 3.07),
    # a review, session 20: half its runs read alike update to update (5-23% covered)
    R("square 90/30 ms", "exact", 0.01, "windows", *HELD_OUT_W),
    # loads faster than the read gap: judged steady in a third of runs (kernels), or their
    # two edges err together (the wave); a review, session 21, seeds 701-708
    R("kernels 2-8 ms", "exact", 0.01, "jobs", 2.0),
    R("kernels 2-8 ms", "exact", 0.01, "windows", 0.5),
    R("square 13/17 ms", "exact", 0.01, "jobs", 2.0),
    R("square 13/17 ms", "exact", 0.01, "windows", 0.5),
    R("locked 20/30 ms", "exact", 0.01, "windows", *HELD_OUT_W),
    R("locked 100/100 ms", "sampled", 0.1, "windows", *HELD_OUT_W),
    R("locked 20/30 ms", "exact", 0.1, "steps", 0.05),
    R("kernels 5-20 ms", "exact", 0.1, "jobs", 0.03, 0.3),
    R("steady 500 W gh200", "exact", 0.01, "jobs", 2.0),
    R("steady 500 W gh200", "exact", 0.1, "jobs", 1.04, 3.07),  # stopped between reads
    R("kernels 5-20 ms", "exact", 0.01, "jobs", 2.0, 2.013),
    # the GPU idle until the job starts: the first power value read is the idle one
    R("idle, then 450 W", "exact", 0.1, "jobs", 1.0, 3.05),
    R("idle, then 450 W", "exact", 0.01, "jobs", 3.05),
    R("idle, then kernels 10-40 ms", "exact", 0.1, "jobs", 1.0),
    R("idle, then kernels 10-40 ms", "exact", 0.01, "jobs", 3.05),
    # the work ends inside the job's last update (or with it): the stop's tail shows it
    R("400 W, idle the last 10-50 ms of 1 s", "exact", 0.01, "jobs", 1.0),
    R("400 W, idle the last 10-50 ms of 1 s", "exact", 0.1, "jobs", 1.0),
    R("400 W to the end of 1 s, then idle", "exact", 0.01, "jobs", 1.0),
    R("400 W, idle the last 100-200 ms of 1 s", "exact", 0.1, "jobs", 1.0),
    # read slower than the counter updates (a longer sampling period than the default)
    R("kernels 10-40 ms", "exact", 0.5, "windows", *HELD_OUT_W),
    R("steady 350 W avg-power", "exact", 1.0, "windows", *HELD_OUT_W),
    R("400 W, idle the last 10-50 ms of 1 s", "exact", 0.2, "jobs", 1.0),
    R("kernels 10-40 ms", "exact", 1.0, "jobs", 5.0),
    R("idle, then 450 W", "exact", 1.0, "jobs", 10.0),
    R("steady 500 W gh200", "sampled", 1.0, "jobs", 5.0),
    # a counter updating every 50 ms: kernels outlast the gap between its sensor's windows
    R("kernels 10-40 ms, 50 ms updates", "sampled", 0.01, "windows", *HELD_OUT_W),
    R("steps 150/650 W ~3 s", "sampled", 0.1, "jobs", 5.0),
    # steady between steps every 2-5 updates (a training loop's iterations)
    R("steps 150/650 W 0.2-0.5 s", "exact", 0.01, "windows", *HELD_OUT_W),
    R("steps 150/650 W 0.2-0.5 s", "exact", 0.1, "windows", *HELD_OUT_W),
    R("steps 150/650 W 0.2-0.5 s", "sampled", 0.01, "windows", *HELD_OUT_W),
    R("steps 150/650 W 0.2-0.5 s", "exact", 0.01, "jobs", 0.3, 2.0),
    R("steps 150/650 W 0.2-0.5 s", "exact", 0.1, "jobs", 2.0),
    # several GPUs: read fast enough to tell their update phases apart, or not
    R("8 GPUs, kernels 10-40 ms", "exact", 0.01, "jobs", 2.0),
    R("8 GPUs, kernels 10-40 ms", "exact", 0.1, "jobs", 2.0),
    R("8 GPUs in phase, kernels 10-40 ms", "exact", 0.01, "jobs", 2.0),
    R("8 GPUs, steps 150/650 W ~3 s", "exact", 0.01, "jobs", 5.0),
    R("steps 150/650 W ~3 s", "none", 0.01, "jobs", 0.03, 0.3, 3.0),
    # a loop locked to the updates, no steps marked: told from the counter and the power
    # values disagreeing (aliased), where the sensor does not see about the load's mean
    # (lengths off the loop's period: windows a whole number of periods long err alike at
    # both edges of a periodic load, and cancel)
    R("unmarked locked 50/50 ms", "exact", 0.01, "jobs", 2.037),
    R("unmarked locked 50/50 ms", "exact", 0.1, "windows", *UNROUND_W),
    R("unmarked locked 20/30 ms", "exact", 0.01, "windows", *UNROUND_W),
    # slow levels: a step just after the first counter change read the job's start at the
    # next segment's average (16 of 60 jobs missed, at up to 12x, before the split)
    R("square 0.5/0.5 s", "exact", 0.01, "jobs", 5.13),
    R("square 0.5/0.5 s", "exact", 0.1, "jobs", 5.13),
    R("locked 25/75 ms", "exact", 0.1, "windows", *UNROUND_W),
    R("locked 20/30 ms", "exact", 0.01, "windows", *UNROUND_W),
    # read every 30 or 40 ms: the reads keep no one phase to the 100 ms updates, and each
    # anchor is misplaced on its own (steady 700 W 1 s windows at 30 ms reads: 46% covered)
    R("steady 700 W", "exact", 0.03, "windows", *UNROUND_W),
    R("kernels 10-40 ms", "exact", 0.04, "windows", *UNROUND_W),
    R("steady 700 W", "exact", 0.04, "jobs", 1.0),
    # updates off their grid under the read gap: only the counter's deltas show it
    R("steps 150/650 W ~3 s, updates ± 1.5 ms", "exact", 0.01, "windows", *HELD_OUT_W),
    R("steady 500 W gh200, updates ± 3 ms", "exact", 0.01, "jobs", 2.0),
    # long jobs: the GPU's clock against the host's (CRYSTAL_PPM) moves the anchors' lag
    # by up to a bracket (100 ppm: 20 s jobs erred 11x their ± without the clock term)
    R("steady 500 W gh200", "exact", 0.01, "jobs", 20.0),
    R("steady 500 W gh200", "exact", 0.1, "jobs", 20.0),
    R("kernels 5-20 ms", "exact", 0.01, "jobs", 20.0),
]
TUNING_SEEDS = (1, 2, 3, 4)
HELD_OUT_SEEDS = (501, 502, 503, 504)
PER_SEED = 60
"""Random windows per seed and length, at most (see window_runs)."""
JOBS_PER_SEED = 16
"""Whole jobs per seed and length: 64 in the quick run and 128 in the full one, where a
calibrated 95% interval covers all of them 3.7% and 0.14% of the time (with 8 per seed, 32
and 64 figures: 19% and 3.7%, too few to tell 95% from 100%)."""


def window_runs(length_s: float) -> tuple[float, int, int]:
    """Run length (s), windows per run and runs per seed for windows of ``length_s``.

    Windows of one run do not overlap (slots of 1.5 windows, so their edges fall at random
    phases of the updates): a part-time sensor's errors add up along a window, and
    overlapping windows would share them.
    """
    seconds = max(RUN_S, 1.0 + 1.5 * length_s)
    per_run = int(min(PER_SEED, (seconds - 1.0) // (1.5 * length_s)))
    return seconds, per_run, -(-WINDOWS_PER_SEED // per_run)


def window_starts(
    rng: np.random.Generator, t0: float, t1: float, length_s: float, n: int
) -> np.ndarray:
    """``n`` non-overlapping windows at random times in ``[t0 + 0.5, t1 - 0.5]``.

    The span is cut into ``n`` equal slots (each at least 1.5 windows long); each window
    starts at a random place in its own slot.
    """
    lo, hi = t0 + 0.5, t1 - 0.5
    slot = (hi - lo) / n
    return lo + slot * np.arange(n) + rng.uniform(0.0, slot - length_s, n)


CRYSTAL_PPM = 50.0
"""Each clock's tolerance (ppm, uniform): the GPU's, which times its counter's updates, and
the host's, which times the reads (a common crystal spec; greenai's ``CLOCK_REL`` bounds
their difference). Drawn per GPU and seed; the GPU run measures it on real hardware."""


def clock_ppm(seed: int) -> float:
    """How far a GPU's update clock runs from the host's (ppm): two crystals' difference."""
    rng = np.random.default_rng((seed, 31))
    return float(rng.uniform(-CRYSTAL_PPM, CRYSTAL_PPM) - rng.uniform(-CRYSTAL_PPM, CRYSTAL_PPM))


def make_gpu(
    load: str,
    counter: str,
    seed: int,
    clock: FakeClock,
    sensor_seed: int | None = None,
    **extra: Any,
) -> FakeGPU:
    """The regime's FakeGPU (``sensor_seed``: its own noise and phase on the seed's load)."""
    make, options, _ = LOADS[load]
    mode = "exact" if counter == "none" else counter
    options = {k: v for k, v in options.items() if k not in ("gpus", "same_phase")}
    own = seed if sensor_seed is None else sensor_seed
    if "clock_ppm" not in options:  # each GPU's crystal against the host's
        options["clock_ppm"] = clock_ppm(own)
    return FakeGPU(
        clock=clock,
        seed=own,
        power_w=make(seed),
        counter_mode=mode,  # type: ignore[arg-type]
        counter=counter != "none",
        power_limit_w=POWER_LIMIT_W,
        **options,
        **extra,
    )


@dataclass(frozen=True)
class Node:
    """Several GPUs of one machine on the same load (data parallel): truth is their sum."""

    gpus: tuple[FakeGPU, ...]

    @property
    def name(self) -> str:
        """The first GPU's name (its curve stands for the node's in tables)."""
        return self.gpus[0].name

    def true_energy_j(self, a: float, b: float) -> float:
        """The GPUs' exact energy over ``[a, b]`` (J)."""
        return sum(g.true_energy_j(a, b) for g in self.gpus)


def make_gpus(load: str, counter: str, seed: int, clock: FakeClock) -> list[FakeGPU]:
    """The regime's FakeGPUs: one, or ``gpus`` of them on one load, each its own sensor
    noise and update phase (``same_phase``: one phase for all)."""
    options = LOADS[load][1]
    n = int(options.get("gpus", 1))
    if n == 1:
        return [make_gpu(load, counter, seed, clock)]
    rng = np.random.default_rng((seed, 17))
    phases = rng.uniform(0.0, 0.1, n)
    if options.get("same_phase"):
        phases[:] = phases[0]
    return [
        make_gpu(
            load,
            counter,
            seed,
            clock,
            sensor_seed=seed * 100 + i,
            name=f"gpu{i}",
            update_phase_s=float(phases[i]),
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class Run:
    """A tracked run: the GPU (truth), the final curve, start, end, step times, result."""

    gpu: FakeGPU | Node
    curve: Any
    t0: float
    t1: float
    step_t: np.ndarray
    result: greenai.Measurement


@functools.cache
def tracked_run(load: str, counter: str, period_s: float, seed: int, seconds: float) -> Run:
    """Track the regime's GPU for ``seconds``; a locked load's loop marks a step per period."""
    clock = FakeClock()
    gpus = make_gpus(load, counter, seed, clock)
    gpu = gpus[0] if len(gpus) == 1 else Node(tuple(gpus))
    loop_s = LOADS[load][2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeasurementWarning)
        job = greenai.track("calibration", devices=gpus, clock=clock, period_s=period_s)
        job.start()
        t0 = clock.now()
        marks = [t0]
        if loop_s is None:
            clock.advance(seconds)
        else:
            for _ in range(round(seconds / loop_s)):
                clock.advance(loop_s)
                job.step()
                marks.append(clock.now())
        t1 = clock.now()
        result = job.stop()
    curve = job.curves()[gpu.name]
    return Run(gpu, curve, t0, t1, np.array(marks), result)


@dataclass(frozen=True)
class Figures:
    """Errors and stated ± of one case's figures, and which of them greenai flagged."""

    error_j: np.ndarray
    plus_minus_j: np.ndarray
    flags: np.ndarray
    """Per figure: its result carries a note naming a regime whose ± is a bound."""

    def summary(self, which: np.ndarray | None = None) -> dict[str, float]:
        """Coverage, median |error|/± and count, of all figures or of ``which`` (a mask)."""
        err, u, ratio = np.abs(self.error_j), self.plus_minus_j, self._ratios()
        if which is not None:
            err, u, ratio = err[which], u[which], ratio[which]
        return {
            "n": len(err),
            "coverage": float(np.mean(err <= u)) if len(err) else math.nan,
            "ratio": float(np.median(ratio)) if len(err) else math.nan,
        }

    def meets_targets(self) -> bool:
        """The case's targets, judged per figure as the notes are given.

        Every figure together keeps the coverage floor. Flagged figures (a note naming a
        regime whose ± is a bound) need only the floor; those with no such note the
        median-ratio band too, and the coverage ceiling where there are
        :data:`MIN_CEILING` of them. Parts of fewer than :data:`MIN_JUDGED` figures are
        judged by one-sided tests at 5% (:func:`_unlikely`): their misses against the
        floor's 10%, and the share of their ratios below 0.15 or above 0.6 against a
        median at that edge (2 unnoted jobs of 2 missing by 75 times their ± fail; 2
        marginal misses of 14 do not; 5 unnoted jobs at 0.04 fail).
        """
        if self.summary()["coverage"] < COVERAGE[0]:
            return False
        flagged = self.flags.astype(bool)
        for part in (flagged, ~flagged):
            n = int(part.sum())
            misses = int((np.abs(self.error_j) > self.plus_minus_j)[part].sum())
            if n >= MIN_JUDGED and misses > (1.0 - COVERAGE[0]) * n:
                return False
            if 0 < n < MIN_JUDGED and _unlikely(misses, n, 1.0 - COVERAGE[0]):
                return False
        n = int((~flagged).sum())
        if n == 0:
            return True
        s = self.summary(~flagged)
        if n >= MIN_CEILING and s["coverage"] > COVERAGE[1]:
            return False
        if n >= MIN_JUDGED:
            return bool(RATIO[0] <= s["ratio"] <= RATIO[1])
        ratio = self._ratios()[~flagged]
        too_wide = _unlikely(int((ratio < RATIO[0]).sum()), n, 0.5)
        return not (too_wide or _unlikely(int((ratio > RATIO[1]).sum()), n, 0.5))

    def _ratios(self) -> np.ndarray:
        """|error|/± per figure (inf where the ± is 0)."""
        u = self.plus_minus_j
        return np.where(u > 0, np.abs(self.error_j) / np.where(u > 0, u, 1.0), np.inf)


def _unlikely(count: int, n: int, p: float) -> bool:
    """Whether ``count`` or more of ``n`` figures would come under 5% of the time.

    The binomial tail ``P(X >= count)`` for figures each counted with chance ``p``: a
    one-sided test for parts too small to judge by their share alone.
    """
    tail = sum(math.comb(n, k) * p**k * (1.0 - p) ** (n - k) for k in range(count, n + 1))
    return tail < 0.05


JOB_EDGE_NOTES = (
    "stepped by",  # sensing.start_step_note: a bound on where the step fell
    "changed by",  # sensing.end_step_note: a bound on the job's last update
)
"""Notes on the job's own start or end: they flag the job's figure, not windows inside it."""


def _flagged(result: greenai.Measurement, whole_job: bool = True) -> bool:
    """Whether the result carries a note naming a regime whose ± is a bound.

    ``whole_job`` False (windows and steps inside the run): notes on the job's own edges
    (:data:`JOB_EDGE_NOTES`) do not count, since they say nothing of a window in its middle.
    """
    words = (
        "locked",
        "sees a different part of each update",  # sensing.aliased_note, per update
        "fell back",
        "fewer than four counter updates",
        "no energy counter",
        "see part of each update",  # sensing.part_time_varying_note: a bound, said so
        "load steps",  # sensing.load_steps_note
        "slower than its counter updates",  # sensing.slow_reads_note: a bound inside reads
        "add their ± linearly",  # sensing.devices_linear_note: phases not told, a bound
        "does not divide its counter's",  # sensing.read_beat_note: reads beat, a bound
        "to tell whether its updates jitter",  # sensing.jitter_untold_note: a bound
    ) + (JOB_EDGE_NOTES if whole_job else ())
    return any(any(w in n for w in words) for n in result.notes)


def evaluate(regime: Regime, length_s: float, seeds: Sequence[int]) -> Figures:
    """The figures of one case over ``seeds``."""
    errors, pm, flags = [], [], []
    for seed in seeds:
        if regime.kind == "windows":
            seconds, per_run, runs = window_runs(length_s)
            for j in range(runs):
                sub = seed * 1000 + j if j else seed  # each run its own update phase
                run = tracked_run(regime.load, regime.counter, regime.period_s, sub, seconds)
                rng = np.random.default_rng((sub, int(length_s * 1e4)))
                a = window_starts(rng, run.t0, run.t1, length_s, per_run)
                b = a + length_s
                e, u = run.curve.window(a, b)
                truth = [run.gpu.true_energy_j(x, y) for x, y in zip(a, b, strict=True)]
                errors.append(e - np.array(truth))
                pm.append(u)
                flags.append(np.full(len(e), _flagged(run.result, whole_job=False)))
        elif regime.kind == "steps":
            run = tracked_run(regime.load, regime.counter, regime.period_s, seed, RUN_S)
            steps = run.result.steps
            e = np.asarray(steps.energy_j)
            u = np.asarray(steps.uncertainty_j)
            t = run.step_t
            truth = np.array([run.gpu.true_energy_j(x, y) for x, y in itertools.pairwise(t)])
            keep = np.arange(len(e))[5:-5]
            errors.append((e - truth)[keep])
            pm.append(u[keep])
            flags.append(np.full(len(keep), _flagged(run.result, whole_job=False)))
        else:  # whole jobs
            for j in range(JOBS_PER_SEED):
                sub = seed * 1000 + j
                run = tracked_run(regime.load, regime.counter, regime.period_s, sub, length_s)
                r = run.result
                truth = run.gpu.true_energy_j(run.t0, run.t1)
                errors.append(np.array([(r.energy_j or 0.0) - truth]))
                pm.append(np.array([r.uncertainty_j or 0.0]))
                flags.append(np.array([_flagged(r)]))
    return Figures(np.concatenate(errors), np.concatenate(pm), np.concatenate(flags))


def label(regime: Regime, length_s: float) -> str:
    """The case's name in tables."""
    return (
        f"{regime.load}, {regime.counter} counter, {regime.period_s:g} s, "
        f"{regime.kind} {length_s * 1000:g} ms"
    )


def table(regimes: Sequence[Regime], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every case of ``regimes`` over ``seeds``: label, summary, whether it meets targets."""
    rows = []
    for regime in regimes:
        for _, length_s in regime.cases():
            fig = evaluate(regime, length_s, seeds)
            s = fig.summary()
            share = float(np.mean(fig.flags))
            ok = fig.meets_targets()
            rows.append({"case": label(regime, length_s), **s, "flagged": share, "ok": ok})
    return rows


def _flag_share(share: float) -> str:
    """The flagged column: "yes" where every figure was flagged, their share where some were."""
    if share >= 1.0:
        return "yes"
    return f"{math.floor(100 * share)}%" if share > 0 else ""


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    out = [
        "| case | figures | covered | median \\|error\\|/± | flagged | meets targets |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r['case']} | {r['n']} | {100 * r['coverage']:.1f}% | {r['ratio']:.2f} | "
            f"{_flag_share(r['flagged'])} | {'yes' if r['ok'] else '**no**'} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tuning and held-out tables; exit 1 if a case misses its targets."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="more seeds (for docs)")
    p.add_argument("--markdown", action="store_true", help="markdown tables")
    p.add_argument("--only", default="", help="only cases whose label contains this")
    p.add_argument("--set", choices=("tuning", "held-out", "both"), default="both")
    p.add_argument("--misses", action="store_true", help="print only the missing cases' labels")
    args = p.parse_args(argv)
    extra = 4 if args.full else 0
    sets = []
    if args.set in ("tuning", "both"):
        sets.append(("tuning", TUNING, TUNING_SEEDS + tuple(range(11, 11 + extra))))
    if args.set in ("held-out", "both"):
        sets.append(("held-out", HELD_OUT, HELD_OUT_SEEDS + tuple(range(601, 601 + extra))))
    failed = 0
    for name, regimes, seeds in sets:
        chosen = [r for r in regimes if args.only in label(r, r.lengths_s[0]).rsplit(",", 1)[0]]
        rows = table(chosen, seeds)
        failed += sum(not r["ok"] for r in rows)
        if args.misses:
            print("\n".join(r["case"] for r in rows if not r["ok"]))
            continue
        print(f"\n### {name} set (seeds {', '.join(map(str, seeds))})\n")
        if args.markdown:
            print(markdown(rows))
        else:
            for r in rows:
                mark = "  " if r["ok"] else "XX"
                flag = f" flagged {_flag_share(r['flagged'])}" if r["flagged"] else ""
                print(
                    f"{mark} {r['case']:<62} n={r['n']:<4} cov={100 * r['coverage']:5.1f}% "
                    f"ratio={r['ratio']:.3f}{flag}"
                )
        sys.stdout.flush()
    if not args.misses:
        print(f"\n{failed} case(s) miss their targets")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
