"""The cumulative energy curve ``C(t)`` of one device over a stretch of its readings.

A window's energy is ``C(b) - C(a)``, so windows are additive by construction: phases and
steps that tile a job sum exactly to the job total.

How ``C`` is built (see docs/accuracy.md for the reasoning and the measured numbers):

* **counter** devices: each read where the hardware counter changed is an *anchor*. The
  counter refreshes on its own period ``U`` (about 100 ms on NVIDIA), so the change happened
  between this read and the previous one; the anchor sits half that span (at most ``U/2``)
  before the read. The first value a job sees has no previous read: it may be up to a whole
  ``U`` old. Read much faster than ``U``, it is the counter one update before the first
  change, and ``C`` splits that update's energy up to the first anchor
  (:meth:`EnergyCurve._find_start_update`); read once per update, it sits ``U/2`` back
  (anchored 5 ms back at 10 ms reads, short jobs read several percent high). Between anchors ``C``
  follows the shape of the integrated instant power, scaled to meet the counter exactly at
  both anchors. Without instant power (RAPL) ``C`` is linear between anchors.
* **power** and **model** devices: ``C`` is the integral of the piecewise-linear power.

A curve can cover the whole job (benchmarks, short jobs) or only a recent stretch of it: the
timeline builds one over the readings it has not settled yet, plus a margin. What must not
depend on the stretch — the power/counter calibration, the scatter of counter deltas, the
typical segment length — comes in as :class:`CurveStats` accumulated over the whole job.

Uncertainty (about 95% coverage) for counter devices is data-driven: the scatter of each
anchor-to-anchor counter delta around what the power shape predicts measures how far an
interpolated edge can be off; it is capped by the hard bound that the true value lies between
the two bracketing counter values.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from greenai.devices.base import Method
from greenai.points import (
    SLOW_SOURCE_S,
    CurveModel,
    DeviceSpec,
    Points,
    bracket_share,
    reads_slower,
)
from greenai.windows import (
    EDGE_READ_FASTER,
    EDGE_SPREADS,
    EDGE_SPREADS_STEADY,
    device_windows,
    edge_j,
    flat_outside_edge_j,
    one_change_j,
    outside_edge_j,
    range_bound_j,
    spread_estimate_factor,
)

FloatArray = npt.NDArray[np.float64]
OuterUpdate = tuple[float, float, float, float]
"""The counter update holding a job's start: its start (s), ``C`` there (J), its end (the
first anchor, s) and ``C`` there (J)."""

VARYING_REL = 0.05
"""A load whose energy differs from one counter update to the next by more than this
fraction (robust spread) is *varying*: a region shorter than :data:`SHORT_REGION_UPDATES`
updates on it gets a warning."""

VARYING_FROM = 0.75
"""Where the load's update-to-update spread reaches this share of :data:`VARYING_REL`, the
edge rule starts moving from a steady load's spreads towards a varying one's, all the way
at the line (:meth:`EnergyCurve._varying_weight`): loads on the line went either way. Random
kernels of 2-8 ms sit on it (a spread of 1.99-2.05 J of 40 J updates, the line 2 J), and
their edges read ± 1.2 J judged steady (0.5 s windows 56-76% covered) and ± 3.1 J judged
varying (100%), for errors of 1.0-1.4 J; with the ramp, 96.5% (2 s jobs 91.4%). Steady
loads sit well below
(700 W with 30 W of wander: 0.45)."""

SHORT_REGION_UPDATES = 10
"""Fewer sensor updates than this in a region on a varying load: its figure rests on a few
part-time samples (Yang, Adámek and Armour, SC'24, arXiv:2312.02741, advise 5 s or 32
iterations and several shifted starts)."""

START_VALUES = 10
"""How many power values after the first show the job's own range (see
``EnergyCurve._step_at_start``): a second at 100 ms updates."""

START_STEP_REL = 0.1
"""A first power value further than this share of the job's median power outside the
range of the job's next values is a step at the start, not the load's own variation."""

END_STEP_REL = 0.05
"""A change into the update the job ended in counts as a load change (see
``EnergyCurve._end_step``) beyond this share of the last segment's power, and beyond what
its anchors' brackets explain: a 400 W load idle for the last 10 ms of its 100 ms update
reads 8% lower there."""

CORR_MEDIAN_UPDATES = 15
"""Consecutive updates' correlation is measured around a running median of this many
updates (:func:`_lag_one_correlation`): kernels' 150 W level changes every 2 s (sampled,
100 ms updates) read 0.36 around the whole run's median, 0.23 around this one, with
misreads no more correlated; a shorter median (9) also took a third of the real
correlation (kernels on 50 ms updates: 0.17 for 0.27)."""

ONE_UPDATE_GAP = 1.02
"""Two reads at most this many counter updates apart that both saw a change saw
consecutive updates: the energy between them is one update's. Reads a little further
apart (scheduling jitter) may hold two, which reads as a change (a bound, not a miss)."""

_JUMP_SPREADS = 6.0
"""A change between consecutive updates beyond this many robust spreads is a jump."""

FEW_SEGMENTS_REL = 0.5
"""Relative uncertainty of energy extrapolated beyond the anchors by the power shape when
fewer than four counter segments (and no job history) show how well that shape works: a
job of a few updates on a part-time power sensor."""

OFF_GRID = 0.98
"""A read less than this share of the regular sampling gap after the one before it is off
the grid (:func:`_on_the_update_grid`)."""

FLAT_REFRESH = 0.75
"""A power value refreshed no faster than this share of the counter's update period makes
a *flat* shape (:meth:`EnergyCurve._shape_is_flat`): about one value per counter segment."""

STUCK_COUNTER_S = 60.0
"""A counter that has not changed for this long settles by its power readings instead."""

_RECENT = 512
"""Segments whose residuals and lengths the running statistics remember."""

STEADY_BETWEEN_MIN = 10
"""Update-to-update differences at least to tell a load steady between steps
(:func:`_spread_and_jumps`)."""

STEADY_BETWEEN_SPLIT = 2.0
"""How much wider the median's spread than the lower quartile's tells steady stretches
between steps (both agree on a normal spread; a heavy-tailed one gives ~1.15)."""

STEADY_BETWEEN_SHAPE = 0.5
"""The power shape's misses over a segment (σ / segment, W) at most this share of the
update-to-update spread for a load steady between steps: its values then show the
changes (150/650 W every 0.2-0.5 s, 10 ms reads: 0.14-0.34; square waves and kernels, whose
updates vary inside: 0.77-5)."""

STEADY_BETWEEN_BURSTS = 0.25
"""Bursts (big differences that come back within three updates) per step, at most, for a
load steady between steps."""

STEADY_BETWEEN_NOISE = 3.0
"""Differences within this many noise spreads (× √2) are noise (:func:`_spread_and_jumps`)."""

STEADY_BETWEEN_SHARE = 0.1
"""Share of differences between noise and half a step, at most, on a load steady between
steps (a step inside an update splits into two differences, one under half a step with
probability ~0.2; steps in a third of updates put ~6% there)."""

_Q25_HALF_NORMAL = 0.3186
"""The lower quartile of ``|N(0, 1)|``."""

RANGE_BOUND_BRACKET = 0.25
"""Read slower than twice per update (a bracket share over this), an anchor may sit a
quarter update or more off its update, which :func:`greenai.windows.range_bound_j` does not
count: the whole segment's bound holds there (with it, 150/650 W steps every 0.2-0.5 s read
every 100 ms had 0.5 s windows 89% covered). So it does on a counter not declared to
integrate every instant: its deltas may be misread, the bound's premise (square 35/45 ms,
sampled counter, 50 ms windows: 98% -> 90% covered with it)."""

OUTER_EDGE_SPREADS = 0.6
"""The share of the edge rule's spreads an edge inside the update holding the job's start
or end gets (``EnergyCurve._outer_edge``), calibrated on the tuning set's whole jobs: with
both updates split at the interior rule's width, steady 700 W 1 s jobs read every 10 ms
were 95.3% covered at a median |error|/± of 0.13 (kernels of 10-40 ms: 100% at 0.155); at
0.6, 93.8% at 0.22 (96.9% at 0.19). The held-out jobs it moved: steady GH200 2 s jobs
100% at 0.15 -> 93.8% at 0.22, 8 GPUs 100% at 0.16 -> 98.4% at 0.19, in phase 100% at
0.24 -> 96.9% at 0.18. Only where the load does not vary inside its updates
(``EnergyCurve._outer_share``): the kernels it was calibrated on were held at 700 W before
each job, a false step at the start whose bound covered them; running before the job,
kernels of 5-20 ms read 84% (2 s jobs) and 81% (20 s) with it, 97.7% and 95.3% without
(full run)."""

ANCHOR_SCATTER_SEGMENTS = 4
"""Segments of regular length a stretch needs before their lengths' scatter sizes the
anchors' own misplacement (``EnergyCurve._anchor_scatter``)."""

ANCHOR_JITTER_SEGMENTS = 6
"""Pairs of consecutive regular segments a stretch (with its history) needs before their
residuals' covariance sizes the updates' own jitter (``EnergyCurve._anchor_jitter``): a 1 s
job read every 10 ms has 8 segments, and its start and end updates are where jitter
costs most (steady 700 W, ± 2 ms, measured before the deltas' test was added: 67% covered
needing 8 pairs, 91% needing 6)."""

JITTER_OUTLIER_SPREADS = 5.0
"""Residuals further than this many robust spreads from their median are a load change,
not jitter (``EnergyCurve._anchor_jitter``)."""

JITTER_CORR = 0.2
"""Consecutive residuals' correlation must lie below minus this for the updates to be taken
as jittering (``EnergyCurve._anchor_jitter``): jitter alone gives −0.5, independent noise
0 ± 1/√n. Measured before the deltas' test was added: at 0.1, steady 700 W 1 s windows
without jitter were 99.0% covered at a median |error|/± of 0.13 (0.20 at 0.2; 0.21 with no
jitter term); with ± 1 ms of jitter, 3 s jobs read 98.4% at 0.1 and 90.6% at 0.2; 0.3 took
1 s jobs from 86% to 81%."""

JITTER_TELL_PAIRS = 16
"""Pairs of consecutive regular segments from which a failed covariance test is taken as
no jitter (``EnergyCurve._anchor_jitter``); under it, the residuals' variance bounds the
jitter (``EnergyCurve._jitter_untold``). A 1 s job read every 10 ms has 8 segments, and
told ± 2 ms of jitter in 35% of jobs (78% covered); 2-3 s jobs (19-29 pairs) told ± 2-3 ms
in 71-81% and were covered 92%."""

JITTER_UNTOLD_J = 0.35
"""The least energy (J, one sd) a jitter bound must move per anchor for
``EnergyCurve._jitter_untold`` to take it: the bound is ``√(var / 2)`` of the residuals
over the power, and a steady load's own 5 W wander gives 0.13-0.27 J at any power (at
700 W, 0.2-0.4 ms). As a time, 0.5 ms at 700 W (± 2 ms of jitter is 1.15 ms), 1.2 ms at
300 W: a floor in seconds (0.5 ms) put the note on half of steady 300 W 1 s jobs and
widened their ± 2.7x."""

START_PERIOD_UPDATES = 8
"""How many of the job's first counter segments measure the update period that places the
start of the update holding the job's start (``EnergyCurve._find_start_update``)."""

PRE_JOB_SPREADS = 3.0
"""How many update-to-update spreads the power value read before the job must lie from the
first segment's average for the load to have possibly stepped at the job's start (the
update holding the start is then split with the extrapolation's difference in its ±); and
the update after the stop's tail from the last regular update, for the load to have gone
on at its level past the job's end (the tail is split then, see
``EnergyCurve._find_end_update``)."""

ALIASED_REL = 0.06
"""An integrating counter's power values may read off it by at most this share over a
stretch whose load does not vary from one update to the next; beyond it the sensor sees
the same part of every update (a load periodic with the updates, aliased: steps every 50
or 100 ms of 100 ms updates), and the power shape says nothing of where energy falls
inside one (:meth:`EnergyCurve._aliased_load`). Over segments away from load changes, steady
and stepping loads read within 1.7% (FakeGPU; within 0.3% on an H100), one 1 s job of 5-20
ms kernels taken as steady 5%, loads locked to the updates 0.57-4 in most update phases
(within 10% in 3 of 16 of a 50/50 ms wave's, 4% in 1 of 16 of a 20/30 ms one's: where the
sensor's window sees about the load's mean, nothing tells the lock)."""

ALIASED_MISFIT_REL = 0.2
"""How far (relative to an update's energy, one robust spread) the power values may
predict whole segments of a load that does not vary from one update to the next before
the sensor is taken to see a different part of each update
(:meth:`EnergyCurve._aliased_load`): steady, stepping, noisy, averaged and slow
square-wave loads read 0.005-0.05 on FakeGPU, a 37/51 ms square wave 0.76-0.8."""

HIDDEN_SHARE = 0.19
"""An edge's ~95% stray per swing × power window (:meth:`EnergyCurve._hidden_swing_j`): a
swing of period ``P`` strays its running energy within ``± S P / 8`` of a line, about
uniformly; an edge's stray is one such value less its anchor's, whose 95% is
``(1 − √0.05) × S P / 4 ≈ 0.19 S P`` (not tuned: derived)."""

FLAT_MISS_SHARE = 0.37
"""The flat shape's edge spread per root mean square of the residuals
(:meth:`EnergyCurve._flat_spread_j`): edges strayed by 0.28-0.56 times it over
``sqrt(f (1 − f))`` on square waves and random kernels (30/30, 35/45, 37/51 ms, 10-40 ms)
read every 10 ms; this many, times the edge rule's 2.5 spreads, covers 0.45 at 95%."""

ALIASED_MISS_SHARE = 0.5
""":data:`FLAT_MISS_SHARE` where the values miss updates the counter sees alike (aliased per
update, flagged): there the pattern drifts through the updates slowly, and its edges strayed
by up to 0.56 of the residuals' root mean square (37/51 ms square wave)."""

PHASE_READS = 4
"""Reads per counter update at least for :func:`update_phase` to tell the update's phase."""

PHASE_ANCHORS = 32
"""Recent anchors :func:`update_phase` takes the phase from."""

PHASE_AGREE = 0.9
"""Circular mean resultant of the anchors' phases at least (about ±7% of an update's
scatter): below it, the updates have no one phase to tell."""


@dataclass
class CurveStats:
    """Running statistics of a device's counter segments over the whole job.

    Updated once per segment as segments settle, so a curve over a short recent stretch
    judges its segments against the job's history at a fixed cost.
    """

    sum_counter_j: float = 0.0
    sum_shape_j: float = 0.0
    residuals_j: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))
    seg_len_s: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))
    lags_s: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))
    seg_counter_j: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))
    locked_period_s: float | None = None
    """Period (s) of a loop found locked to the update period (:func:`locked_loop`)."""
    power_lo_w: float = math.inf
    power_hi_w: float = -math.inf
    """The lowest and highest power (W) the settled readings showed: power values and the
    counter's segment averages (:meth:`EnergyCurve.power_range_w`)."""
    miss_sq_j2: float = 0.0
    miss_n: int = 0
    """Sum of the squared residuals (J²) of settled segments away from load changes, and
    how many (:meth:`EnergyCurve._flat_rms`)."""
    wraps: tuple[int, int] = (0, 0)
    wrap_span_s: float = 0.0
    wrap_until_s: float = -math.inf
    """Settled segments one read gap longer and shorter than the rest; the time settled
    segments span (s); and where they end (s): the anchors' shared lag wrapping as the
    GPU's clock runs off the host's (:meth:`EnergyCurve._wrap_signs`)."""

    _arrays: tuple[FloatArray, ...] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def segments(self) -> int:
        """How many segments are remembered."""
        return len(self.seg_len_s)

    def history(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``residuals_j, seg_len_s, lags_s, seg_counter_j`` as arrays (rebuilt after changes).

        Every curve of a pass reads them; they change only when segments settle.
        """
        with self._lock:  # a user's timeline() builds curves while a pass settles segments
            if self._arrays is None:
                self._arrays = tuple(
                    np.fromiter(d, dtype=np.float64, count=len(d))
                    for d in (self.residuals_j, self.seg_len_s, self.lags_s, self.seg_counter_j)
                )
            return self._arrays  # type: ignore[return-value]

    def extend(
        self,
        residuals_j: list[float],
        seg_len_s: list[float],
        lags_s: list[float],
        seg_counter_j: list[float],
    ) -> None:
        """Remember newly settled segments."""
        with self._lock:
            self.residuals_j.extend(residuals_j)
            self.seg_len_s.extend(seg_len_s)
            self.lags_s.extend(lags_s)
            self.seg_counter_j.extend(seg_counter_j)
            self._arrays = None


class EnergyCurve:
    """The cumulative energy ``C(t)`` of one device, and its uncertainty over windows.

    Args:
        spec: The device.
        t: Reading times (s), sorted.
        energy_j: Counter values (J), NaN where not read.
        power_w: Power values (W), NaN where not read.
        gaps: Read failures ``(start_s, end_s or None)``.
        stats: The job's running statistics; None judges the stretch on its own.
        prev: ``(time, counter)`` of the reading just before ``t[0]``, when the stretch
            continues earlier readings; None when ``t[0]`` is the first reading of the job.
        origin_j: ``C`` at ``t[0]`` for power and model curves, and the gap energy there,
            so a stretch continues the job's curve.
        end_s: The job's end, on its final pass: the counter changes after it (the
            stop's tail, :meth:`greenai.sampling.sampler.Sampler.stop`) are no anchors;
            the first shows whether the load changed inside the update the job ended in
            (:attr:`end_step_w`), the next the level after (:meth:`_place_end_step`).
    """

    def __init__(
        self,
        spec: DeviceSpec,
        t: FloatArray,
        energy_j: FloatArray,
        power_w: FloatArray,
        gaps: list[tuple[float, float | None]],
        *,
        stats: CurveStats | None = None,
        prev: tuple[float, float] | None = None,
        origin_j: tuple[float, float] = (0.0, 0.0),
        end_s: float | None = None,
    ) -> None:
        self.name = spec.name
        self.kind = spec.kind
        self.spec = spec
        self.t = t
        self.counter = energy_j
        self.gaps = gaps
        self.has_power = bool(np.isfinite(power_w).any())
        self.power = _fill_nan(power_w) if self.has_power else np.zeros_like(t)
        self._cum_power = _cumulative_trapezoid(t, self.power)
        self._origin_j, self._gap_origin_j = origin_j
        self._stats = stats
        self._end_s = end_s
        self._build_anchors(spec, prev)
        self.method: Method = self._effective_method(spec.method)

    # --- construction -------------------------------------------------------------------
    def _build_anchors(self, s: DeviceSpec, prev: tuple[float, float] | None) -> None:
        ok = np.isfinite(self.counter)
        self.tau = np.empty(0)
        self.anchor_e = np.empty(0)
        self.anchor_lag = np.empty(0)
        self._calibration = 1.0
        self._sigma, self._sigma_n, self._scatter_n = 0.0, 0, 0
        self._seg_scatter_j = self._jump_j = self._jump_rate = 0.0
        self._seg_s = s.update_period_s
        self._varying = False
        self._half_bracket = s.update_period_s / 2.0
        self._hard_only = np.zeros(0, dtype=bool)
        self._few_segments = True
        self._flat_shape = self._shape_blind = self._aliased = False
        # segments away from load changes, their residuals' root mean square (J; flat
        # shapes), and whether it sizes an aliased load's edges (_judge_aliased)
        self._trusted, self._flat_rms_j = np.zeros(0, dtype=bool), 0.0
        self._miss_sized = self._miss_varies = False
        # counter over power values on steady segments, minus 1; their misfit per update
        self._steady_rel = self._misfit_rel = 0.0
        self._first_read: tuple[float, float] | None = None  # (s, J), read much faster than U
        # the step at the job's start: update start, step (s), power before and after (W),
        # counter at the update's start (J), ± of the step's time (s)
        self._start_place: tuple[float, float, float, float, float, float] | None = None
        # the update holding the job's start (EnergyCurve._find_start_update)
        self._start_update: OuterUpdate | None = None
        # the update holding the job's end (EnergyCurve._find_end_update)
        self._end_update: OuterUpdate | None = None
        self._update_corr = 0.0  # consecutive updates' correlation (_lag_one_correlation)
        self._update_phase = math.nan  # where the counter's updates fall (update_phase)
        self._anchor_scatter_s = 0.0  # anchors' misplacement apart from one another (s, 1 sd)
        self._anchor_mean_s = s.update_period_s  # the regular segments' mean length (s)
        self._anchor_jitter_s = self._jitter_untold_s = self._wraps_per_s = 0.0  # _anchor_jitter
        self._slow_reads = False
        self._job_start = False
        self._start_step_w = 0.0
        self._tail: tuple[float, float] | None = None
        self._tail_lag = 0.0
        self._update_per_change = False
        self._tail_updates: tuple[float, float] | None = None
        # the step in the job's last update: time (s), power before and its drop (W), ± (s)
        self._end_place: tuple[float, float, float, float] | None = None
        self._tail_next: tuple[float, float, float, float] | None = None
        self.end_step_w = 0.0
        """How much the load's average power changed (W) from the last counter segment
        to the update the job ended in (the stop's tail), where beyond the load's own
        update-to-update changes; 0 otherwise or without a tail."""
        self._tail_w = 0.0  # the average power (W) of the update holding the job's end
        self._tail_update_s: float | None = None  # the tail's update, read slower than it
        self._calibrates = np.zeros(0, dtype=bool)
        self._range_w = math.inf
        if s.method != "counter" or ok.sum() < 2 or not (np.diff(self.counter[ok]) > 0).any():
            self._power_scatter(s)
        if s.method != "counter" or ok.sum() < 1:
            return
        self._place_anchors(s, prev, ok)
        if len(self.tau) == 0:
            return
        self._job_start = prev is None
        self._judge_segments(s)

    def _place_anchors(
        self, s: DeviceSpec, prev: tuple[float, float] | None, ok: npt.NDArray[np.bool_]
    ) -> None:
        """Anchors: each read where the counter changed, half its bracket back (s, J)."""
        t, e = self.t[ok], self.counter[ok]
        gaps_t = np.diff(t)
        U = s.update_period_s
        first_unanchored = fast = False
        if prev is None:  # the job's first value: up to a whole update period old
            # Read much faster than the counter refreshes, the first change is placed to
            # within a sampling gap, so the first value is not anchored at all: C before the
            # first change comes from the power shape (anchoring it U/2 back read 1 s jobs
            # sampled every 10 ms about 1% low, and 5 ms back several % high).
            # Without power values nothing shapes that stretch: the first value is the
            # counter at the update boundary one update before the first change, and is
            # anchored there (unanchored, one change read a counter-only device's job as
            # 0 J; half an update back, a steady 300 W second read 301.9 ± 0.25 J).
            typical = float(_median(gaps_t)) if len(gaps_t) else U
            fast = typical < U / 2 and bool((np.diff(e) > 0).any())
            first_unanchored = self.has_power and fast
            self._first_read = (float(t[0]), float(e[0])) if first_unanchored else None
            changed = np.concatenate([[not first_unanchored], np.diff(e) > 0])
            before = np.concatenate([[U], gaps_t])
        else:
            changed = np.concatenate([[e[0] > prev[1]], np.diff(e) > 0])
            before = np.concatenate([[t[0] - prev[0]], gaps_t])
        lag = np.minimum(before, U) / 2.0
        tau = (t - lag)[changed]
        if prev is None and fast and not self.has_power and len(tau) >= 2:
            tau[0] = min(float(tau[1]) - U, float(t[0]))
        keep = np.ones(len(tau), dtype=bool)
        self._update_per_change = bool(len(gaps_t)) and float(_median(gaps_t)) <= U * 1.05
        if self._update_per_change:
            keep = _on_the_update_grid(tau, t[changed], before[changed], float(_median(gaps_t)), U)
        self.tau = tau[keep]
        self.anchor_e = e[changed][keep]
        self.anchor_lag = (t[changed] - tau)[keep]
        if self._end_s is not None:
            self._split_tail(self._end_s, t[changed], e[changed], tau)

    def _split_tail(self, end_s: float, t_c: FloatArray, e_c: FloatArray, tau: FloatArray) -> None:
        """Take the counter changes after the job's end out of the anchors (the tail).

        ``t_c``, ``e_c``, ``tau``: every change read, its counter and its anchor time, on
        the update grid or not. Read at least once per update, each change is one
        update's energy: the update holding the end, the one before it and the one
        before that (the level before), and the one after (the level after) are kept.
        """
        first = np.flatnonzero(tau > end_s)
        U = self.spec.update_period_s
        i = int(first[0]) if len(first) else 0
        if self._update_per_change and i >= 2:
            before = float(e_c[i - 1] - e_c[i - 2])
        elif i >= 2 and U >= SLOW_SOURCE_S and t_c[i] - t_c[i - 1] <= ONE_UPDATE_GAP * U:
            # Read slower than the counter updates, the stop read and the tail's first
            # change are read one update apart: between them lies exactly one update's
            # energy (their bracket slack cancels); the segments before give the levels.
            self._tail_update_s = U
            before = float(e_c[i - 1] - e_c[i - 2]) / max(tau[i - 1] - tau[i - 2], 1e-12) * U
        else:
            self._cut_tail(end_s)
            return
        self._tail_updates = (float(e_c[i] - e_c[i - 1]), before)
        one_after = len(first) >= 2 and first[1] == i + 1
        if one_after and self._tail_update_s is not None:
            one_after = t_c[i + 1] - t_c[i] <= ONE_UPDATE_GAP * U
        if one_after and i >= 3:
            after_e = float(e_c[i + 1] - e_c[i])
            level_e = float(e_c[i - 2] - e_c[i - 3])
            if self._tail_update_s is not None:
                level_e *= U / max(float(tau[i - 2] - tau[i - 3]), 1e-12)
            lag = float(t_c[i - 1] - tau[i - 1])
            self._tail_next = (float(tau[i - 1]), lag, after_e, level_e)
        self._cut_tail(end_s)

    def _cut_tail(self, end_s: float) -> None:
        """Keep the first anchor after the job's end as the tail; drop the rest."""
        after = np.flatnonzero(self.tau > end_s)
        if len(after):
            i = int(after[0])
            self._tail = (float(self.tau[i]), float(self.anchor_e[i]))
            self._tail_lag = float(self.anchor_lag[i])
            self.tau, self.anchor_e = self.tau[:i], self.anchor_e[:i]
            self.anchor_lag = self.anchor_lag[:i]

    def _judge_segments(self, s: DeviceSpec) -> None:
        """Calibration, spreads, jumps and trust of the anchors' segments (see the class)."""
        stats = self._stats
        lags = np.concatenate([stats.history()[2], self.anchor_lag]) if stats else self.anchor_lag
        self._half_bracket = float(_median(lags))
        self._i_tau = self.integral(self.tau)
        d_e, d_i = np.diff(self.anchor_e), np.diff(self._i_tau)
        self._start_step_w = self._step_at_start(s.update_period_s) if self._job_start else 0.0
        # A step at the start leaves the first segment's shape on the load before the job
        # (its value was read then): it says nothing of the shape's scale (one such segment
        # put 7% on a 1 s job's calibration, and its last stretch 2.4 J off).
        self._calibrates = np.ones(len(d_e), dtype=bool)
        if self._start_step_w > 0 and len(d_e):
            self._calibrates[0] = False
        sum_e = float(d_e[self._calibrates].sum())
        sum_i = float(d_i[self._calibrates].sum())
        if stats is not None and stats.segments >= 8:
            sum_e, sum_i = stats.sum_counter_j, stats.sum_shape_j
        self._calibration = (
            float(np.clip(sum_e / sum_i, 0.5, 2.0)) if self.has_power and sum_i > 0 else 1.0
        )
        self._resid = self._residuals(d_e, d_i)
        self._sigma = self._scatter(self._resid, d_e, s)
        seg_len = np.diff(self.tau)
        history = np.concatenate([stats.history()[1], seg_len]) if stats else seg_len
        # Only the hard bound holds where the power shape cannot be trusted: a segment much
        # longer than usual (it spans a read failure), or one next to a load change (the
        # shape may put the change in the wrong place).
        typical = float(_median(history)) if len(history) else 0.0
        self._seg_s = typical if typical > 0 else s.update_period_s
        read_s = float(_median(np.diff(self.t))) if len(self.t) > 1 else s.update_period_s
        self._slow_reads = reads_slower(self._seg_s, s.update_period_s) and (
            read_s > s.update_period_s / 2
        )
        self._anchor_scatter_s = 0.0 if self._slow_reads else self._anchor_scatter(seg_len)
        scatter_w, jump_w, self._jump_rate = self._update_scatter(d_e, self._seg_lengths())
        self._flat_shape = self._shape_is_flat()
        # Read slower than the counter updates, each power value is one update of several
        # in a segment: where the shape they draw predicts segments worse than the
        # neighbouring segments do, it only misplaces energy inside them (kernels of
        # 10-40 ms read every 0.5 s: 1 s windows 70% covered by it).
        # (Segments alone can read long where reads are fast: a counter-only device's first
        # value is anchored half an update back, so its one segment is 1.5 updates long.)
        self._shape_blind = self._slow_reads and self._sigma > scatter_w * self._seg_s
        self._seg_scatter_j, self._jump_j = scatter_w * self._seg_s, jump_w * self._seg_s
        self._typical_e = typical_e = float(_median(np.abs(d_e))) if len(d_e) else 0.0
        long_seg = seg_len > 3.0 * typical if len(seg_len) else seg_len > 0
        self._hard_only = long_seg | self._unsteady(scatter_w)
        # Steps alone do not make a load varying: segments next to one keep only the hard
        # bound (_unsteady), and the rules size the steady stretches between them (steps
        # every ~3 s read 2.5x too wide counted as varying).
        self._varying = self._seg_scatter_j > VARYING_REL * typical_e
        self._anchor_jitter_s = self._anchor_jitter(d_e, seg_len)
        self._wraps_per_s = self._wrap_rate(seg_len)
        self._range_w = self.power_range_w()
        self._judge_aliased(s)
        self.end_step_w = self._end_step(scatter_w)
        self._place_outer()
        if not self._slow_reads:
            self._update_phase = update_phase(self.tau, s.update_period_s, self._half_bracket)
        # The first value may be a whole update old: the shift term covers its anchor's lag.

    def _place_outer(self) -> None:
        """The load's steps at the job's start and end, and the updates holding them."""
        self._end_place = self._place_end_step() if self.end_step_w > 0 else None
        self._start_place = self._place_start_step() if self._start_step_w > 0 else None
        # A step seen at the start (the usual one: the work starts with the job) keeps the
        # extrapolation and its bound: split, 150 -> 400 W jobs on a counter not declared to
        # integrate (its step is not placed) read 5.6 J off at ± 20 J, 0.2 J at ± 17 J before.
        stepped = self._start_place is not None or self._start_step_w > 0
        self._start_update = None if stepped else self._find_start_update()
        self._end_update = None if self.end_step_w > 0 else self._find_end_update()

    def _judge_aliased(self, s: DeviceSpec) -> None:
        """Where the sensor sees one part of every update, only the counter's bounds hold.

        So under a loop found locked to the updates (:func:`locked_loop`), whatever the
        power values read: where the sensor's window sees about the load's mean, nothing
        else shows it (locked 25/75 ms, 5.13 s windows at 100 ms reads: 88% covered by
        the readings' test alone, 9% before either).
        """
        regular = _regular_segments(np.diff(self.tau))
        self._trusted = ~self._hard_only & self._calibrates & regular  # (before the bounds)
        self._flat_rms_j = self._flat_rms() if self._flat_shape and not self._slow_reads else 0.0
        self._steady_rel = self._steady_ratio() - 1.0
        self._misfit_rel = self._update_misfit()
        locked = self._stats is not None and self._stats.locked_period_s is not None
        integrating = self.has_power and s.counter_integrates is not False
        self._aliased = self._aliased_load(s) or (locked and integrating)
        # Agreeing over the stretch, a flat shape's values miss each update by what they
        # do not see of it: that sizes its edges (a 37/51 ms square wave: 100% covered at
        # 0.1-0.24 by the bounds, 94-100% by this).
        self._miss_sized = (
            self._aliased
            and self._flat_shape
            and not locked
            and abs(math.log1p(self._steady_rel)) <= math.log1p(ALIASED_REL)
        )
        if self._aliased and not self._miss_sized:  # anywhere the load in [0, bound] puts it
            self._hard_only = np.ones_like(self._hard_only)
            self._range_w = self._aliased_high_w()
        # Varying inside its updates where the stray the misses imply is over VARYING_REL
        # of an update (a 90/30 ms square wave whose updates read alike: 5-23% of 5 s
        # windows covered by the update-to-update spread); a steady load's noisy values
        # miss by far less (30 W of noise on 700 W: 3 J of 70).
        inside = FLAT_MISS_SHARE * self._flat_rms_j > VARYING_REL * self._typical_e
        self._miss_varies = self._varying or self._miss_sized or inside

    def _update_misfit(self) -> float:
        """How badly the power values predict whole segments away from load changes.

        The residuals' robust spread over the typical segment's energy, on the segments
        :meth:`_steady_ratio` judges (0 on fewer than four): a load stepping every few
        updates misses the segments holding its steps, which says nothing of the sensor.
        """
        keep = ~self._hard_only & self._calibrates
        if keep.sum() < 4 or len(self._resid) != len(keep):
            return 0.0
        typical_j = self._typical_e
        resid = self._resid[keep]
        spread_j = 1.4826 * float(_median(np.abs(resid - _median(resid))))
        return spread_j / typical_j if typical_j > 0 else 0.0

    def _aliased_load(self, s: DeviceSpec) -> bool:
        """Does the sensor see the same part of every update of a load that varies inside one?

        On a load that does not vary from one update to the next, an integrating counter's
        deltas and the power values agree to the sensor's noise (0.998-1.003 on steady
        loads; within 0.3% on an H100, see docs/accuracy.md). Where they disagree by more
        than :data:`ALIASED_REL` over the stretch, the power sensor (25 ms of each 100 ms
        on A100/H100: Yang, Adámek and Armour, SC'24, arXiv:2312.02741) keeps seeing one
        part of a load periodic with the updates (a training loop locked to them, with no
        steps marked to find it by), and the shape cannot place energy inside an update:
        50/50 ms square waves on 100 ms updates read 2 s jobs 72% covered without this.
        Or where they agree over the stretch but not update by update (beyond
        :data:`ALIASED_MISFIT_REL` of an update's energy): the sensor sees a different part
        of each update (a 37/51 ms square wave drifting through 100 ms updates: the counter
        steady, the values 100 or 700 W; windows 0-13% covered at 10-15x their ±). A
        power value averaged over longer than an update (declared 10%) lags the load, so
        is not judged; nor are stretches of few updates (their own bound and note).
        """
        return bool(
            self.has_power
            and s.counter_integrates is not False
            and s.relative_uncertainty < 0.1
            and not self._varying
            and not self._slow_reads
            and not self._few_segments
            and (
                abs(math.log1p(self._steady_rel)) > math.log1p(ALIASED_REL)
                or self._misfit_rel > ALIASED_MISFIT_REL
            )
        )

    def _steady_ratio(self) -> float:
        """Counter over power values' integral on segments away from load changes (1 if none).

        Segments next to a step (:meth:`_unsteady`) differ by where the step fell in their
        update, not by what the sensor sees of each update: a 150/650 W step in a 1 s job
        put 25-35% on the whole stretch's ratio.
        """
        keep = ~self._hard_only & self._calibrates
        # nor a later stretch's first: a change there has no neighbour before it to show
        # as one (a step 1.3 s before the stop, in the last stretch's first segment, read
        # "27% less"); a job's first segment is judged by its start step (_calibrates)
        if not self._job_start:
            keep[:1] = False
        if keep.sum() < 4:
            return 1.0
        d_e = float(np.diff(self.anchor_e)[keep].sum())
        d_i = float(np.diff(self._i_tau)[keep].sum())
        if d_e <= 0:
            return 1.0
        return float(np.clip(d_e / max(d_i, 0.01 * d_e), 0.01, 100.0))  # values at 0 W: 100

    def _aliased_high_w(self) -> float:
        """The most an aliased load may draw (W).

        The declared limit, else twice the highest power read: neither the power values
        nor the counter show a peak inside an update.
        """
        return self.spec.power_limit_w or 2.0 * self._max_power_w()

    def _aliased_outside(
        self,
        x: FloatArray,
        first: tuple[FloatArray, FloatArray],
        last: tuple[FloatArray, FloatArray],
    ) -> tuple[FloatArray, FloatArray]:
        """Edges before the first anchor and after the last (J), each ``(edge, energy)``.

        On an aliased load there is no shape to extrapolate by: a stretch's energy lies
        anywhere from 0 to :meth:`_aliased_high_w` over its span.
        """
        if not self._aliased:
            return first[0], last[0]
        hi_w = self._aliased_high_w()
        out = []
        for (bound_j, energy_j), span_s in ((first, self.tau[0] - x), (last, x - self.tau[-1])):
            most = hi_w * np.maximum(span_s, 0.0)
            out.append(np.maximum(bound_j, np.maximum(energy_j, most - energy_j)))
        return out[0], out[1]

    def _shape_is_flat(self) -> bool:
        """Does the power value refresh no faster than the counter updates?

        Then the power shape holds about one value per counter segment: it shows nothing
        of how the load moves inside one, and how well it predicts whole segments (the
        residuals' spread) says nothing of what it misplaces inside them. This is the
        usual case on NVML (the power value refreshes with the energy counter, every
        100 ms on H100) whatever the sampling period; the smaller of the two spreads
        holds only where the power value refreshes faster than the counter. A 30/30 ms square
        wave read every 10 ms, its 100 ms power value refreshed 5 ms after each counter
        update, predicted segments to 1.3 J while its 100 ms windows erred by 4.5 J: 18% of
        them covered. The edge rule takes the update-to-update spread there (square 30/30
        ms at 10 ms reads: 85–97% → 95–100% covered over two sets of eight seeds).
        """
        if not self.has_power or len(self.t) < 3:
            return False
        changed = np.flatnonzero(np.diff(self.power) != 0)
        if len(changed) < 3:
            return False
        refresh = float(_median(np.diff(self.t[changed + 1])))
        return refresh >= FLAT_REFRESH * self._seg_s

    def _power_scatter(self, s: DeviceSpec) -> None:
        """The update-to-update spread of the power values (J per update), for power curves.

        A power value covers part of its update; how much consecutive values differ is what
        the readings show of the load's variation the sensor may miss (as for a part-time
        counter, :meth:`_update_scatter`).
        """
        if not self.has_power or len(self.t) < 2:
            return
        p = self.power
        changed = np.concatenate([[True], np.diff(p) != 0])
        values = p[changed]
        if len(values) < 3:
            return
        # A load step shows in the values as in a part-time counter's deltas: the sensor may
        # place it anywhere in its update (power-only jobs of 3 s on a load stepping every
        # ~3 s were covered 81% without this).
        scatter_w, jump_w, self._jump_rate = _spread_and_jumps(values)
        U = s.update_period_s
        self._seg_scatter_j, self._jump_j = scatter_w * U, jump_w * U
        typical = float(_median(np.abs(values)))
        self._varying = self._seg_scatter_j > VARYING_REL * typical * U

    def _unsteady(self, scatter_w: float = 0.0) -> npt.NDArray[np.bool_]:
        """Per segment: does the counter's average power change by over 25% next to it?

        The counter's segment averages smooth out sensor noise; a real load change shows up
        as neighbouring segments that differ. One segment either side is included because
        power values lag the counter by up to one update period.
        """
        seg_p = self.segment_power()
        if len(seg_p) == 0:
            return np.zeros(0, dtype=bool)
        padded = np.concatenate([seg_p[:1], seg_p, seg_p[-1:]])
        near = np.stack([padded[:-2], padded[1:-1], padded[2:]])
        spread = near.max(axis=0) - near.min(axis=0)
        # A load that varies from every update to the next is not a step: only a change well
        # beyond its own update-to-update spread is (as for jumps in _update_scatter).
        level = np.maximum(0.25 * np.maximum(near.mean(axis=0), 1e-12), _JUMP_SPREADS * scatter_w)
        unsteady = spread > level
        if self._start_step_w > 0:
            unsteady[0] = True  # the step at the start may lie inside the first segment
        return np.asarray(unsteady)

    def _step_at_start(self, update_s: float) -> float:
        """The load's step at the job's start (W), seen from its first power value; or 0.

        The first value read samples part of the update before the job: the load before
        it. Where it lies outside the range of the values read over the next
        :data:`START_VALUES` updates after the second anchor (by over
        :data:`START_STEP_REL` of their median), the load changed at or after the start (a
        GPU idle until the job's work begins), at a place inside the first update or two
        that nothing read shows. The step is that value's largest distance from the first
        segment's average power and the later values' median (W).
        """
        if not self.has_power or len(self.tau) < 2 or len(self.t) < 2:
            return 0.0
        p = self.power
        t1 = self.tau[1]
        later = p[(self.t > t1) & (self.t <= t1 + START_VALUES * update_s)]
        if not len(later):
            return 0.0
        mid = float(_median(later))
        margin = START_STEP_REL * abs(mid)
        if float(later.min()) - margin <= p[0] <= float(later.max()) + margin:
            return 0.0
        first_w = (self.anchor_e[1] - self.anchor_e[0]) / max(t1 - self.tau[0], 1e-12)
        return max(abs(float(first_w) - float(p[0])), abs(mid - float(p[0])))

    def _end_step(self, scatter_w: float) -> float:
        """The load's change (W) into the update the job ended in, seen from the tail; or 0.

        The tail is the counter's first change after the job's end: the update it closes
        holds the end. Its average power against the last segment's says whether the
        load changed between the last change read and the end, where nothing read
        before the end can show it: a change counts where no placing of the two anchors
        inside their brackets explains it, and it exceeds :data:`END_STEP_REL` of the
        power and :data:`_JUMP_SPREADS` of the load's update-to-update spread (as
        neighbours are judged in :meth:`_unsteady`). Read every 100 ms, the stop read's
        bracket is shorter than the others: a steady 500 W tail read 700 W by its length.
        Read at least once per update, each change is one update's energy: the tail's
        and the last regular segment's deltas compare directly.
        """
        if self._tail is None or len(self.tau) < 2:
            return 0.0
        tail_t, tail_e = self._tail
        energy = tail_e - self.anchor_e[-1]
        seg_len = np.diff(self.tau)
        d_e = np.diff(self.anchor_e)
        regular = np.flatnonzero(np.abs(seg_len - self._seg_s) <= 0.25 * self._seg_s)
        if self._tail_updates is not None:
            update_s = self._tail_update_s or self._seg_s
            tail_w, last_w = (x / update_s for x in self._tail_updates)
            lo_w = hi_w = tail_w
            # One update against a segment of several: one update's own spread is larger
            # by the square root of how many the segment averages.
            scatter_w *= math.sqrt(max(self._seg_s / update_s, 1.0))
        elif self._update_per_change and len(regular):
            last_w = float(d_e[regular[-1]]) / self._seg_s
            tail_w = energy / self._seg_s
            lo_w = hi_w = tail_w
        else:
            length = tail_t - self.tau[-1]
            slack = self.anchor_lag[-1] + self._tail_lag
            tail_w = energy / max(length, 1e-12)
            lo_w = energy / (length + slack)
            hi_w = energy / max(length - slack, 1e-3 * length, 1e-12)
            last_w = float(self.segment_power()[-1])
        self._tail_w = float(tail_w)
        beyond = max(lo_w - last_w, last_w - hi_w, 0.0)
        level = max(END_STEP_REL * max(abs(last_w), 1e-12), _JUMP_SPREADS * scatter_w)
        return float(abs(tail_w - last_w)) if beyond > level else 0.0

    def _place_end_step(self) -> tuple[float, float, float, float] | None:
        """Place one step inside the update the job ended in; or None.

        From that update's energy and its neighbours' (one step between two levels):
        returns the step's time (s), the power before it and the power it took off (W)
        and how far off its time may be (s); None where one step does not explain the
        three updates.

        Read at least once per update, the updates before and after the one holding the end
        give the levels before and after (``P_hi``, ``P_lo``); that update's energy ``D``
        places the step at ``u + U (D - P_lo U) / ((P_hi - P_lo) U)`` after its start ``u``.
        Its time is off by the start's lag and by the levels' noise (the update-to-update
        spread). The job ended with its work, the usual case, places the step at the end:
        the figure keeps the extrapolation, and a ± of the step × that error instead of
        the whole update's (400 W 1 s jobs at 10 ms reads: ± 6 J → 2.5 J).
        """
        if self._tail_updates is None or self._tail_next is None:
            return None
        d_tail, d_before = self._tail_updates
        start_s, lag_s, d_after, d_level = self._tail_next
        U = self._tail_update_s or self._seg_s
        drop = d_before - d_after
        scatter_j = self._seg_scatter_j * math.sqrt(min(U / self._seg_s, 1.0))  # one update's
        steady = max(END_STEP_REL * abs(d_before), 2.0 * scatter_j)
        if abs(d_before - d_level) > steady:
            return None  # the load was not at one level before: the step may lie earlier
        if abs(drop) <= max(END_STEP_REL * abs(d_before), 1e-12):
            return None  # no two levels: not one step
        g = (d_tail - d_after) / drop
        if not -0.15 <= g <= 1.15:
            return None
        noise_s = 1.96 * math.sqrt(2.0) * scatter_j / abs(drop) * U
        # The start's anchor is off by up to its lag (uniform: 0.95 of it holds 95%), and
        # independently by the levels' noise.
        off_s = math.hypot(0.95 * lag_s, noise_s)
        return start_s + float(np.clip(g, 0.0, 1.0)) * U, d_before / U, drop / U, off_s

    def _place_start_step(self) -> tuple[float, float, float, float, float, float] | None:
        """Place the load's step at the job's start inside the update holding it; or None.

        Read much faster than the counter updates, the first read's counter is the value at
        the update boundary before the start, ``b = τ₀ − U`` (τ₀ the first change, placed
        to within half a sampling gap), so the update holding the start has a known
        energy ``D``. With the level before from the first power value (``P_lo``, the load
        before the job) and after from the next update (``P_hi``, where the one after that
        agrees: one level), one step explains ``D`` at ``b + U (P_hi U − D) / ((P_hi −
        P_lo) U)``. ``C`` before it counts at ``P_lo`` from ``b``: a GPU idle until its work
        reads ± ~2 J on 450 W 3 s jobs at 10 ms reads, not the bound over the first update
        (± ~40 J, 100x the error). None where the levels or the fit disagree.
        """
        if self._first_read is None or len(self.tau) < 3 or not self.has_power:
            return None
        if self.spec.counter_integrates is not True:
            return None  # a part-time counter's update shows its sampled part, not D
        U = self.spec.update_period_s
        t_first, c_first = self._first_read
        tau, ae = self.tau, self.anchor_e
        b = float(tau[0]) - U
        if not (t_first - U <= b <= t_first + self._half_bracket):
            return None  # the first change is not the update after the first read's
        if abs(tau[1] - tau[0] - U) > 0.25 * U or abs(tau[2] - tau[1] - U) > 0.25 * U:
            return None
        d_first, d_job, d_level = ae[0] - c_first, ae[1] - ae[0], ae[2] - ae[1]
        scatter_j = self._seg_scatter_j * math.sqrt(min(U / self._seg_s, 1.0))
        if abs(d_job - d_level) > max(END_STEP_REL * abs(d_job), 2.0 * scatter_j):
            return None  # not one level after the start
        lo_w = float(self.power[0])
        rise = d_job - lo_w * U
        if abs(rise) <= END_STEP_REL * abs(d_job):
            return None
        g = (d_job - d_first) / rise  # the share of the update before the step
        if not -0.15 <= g <= 1.15:
            return None
        step_s = b + float(np.clip(g, 0.0, 1.0)) * U
        after_s = float(tau[0]) - step_s
        if after_s > 1e-6:
            hi_w = (d_first - lo_w * (step_s - b)) / after_s
        else:  # the step at the first change: the update before it is all at the level before
            lo_w, hi_w = d_first / U, d_job / U
        rel_u = self.spec.relative_uncertainty
        noise_j = math.hypot(1.96 * math.sqrt(2.0) * scatter_j, rel_u * lo_w * U)
        # The first change's lag moves the step and every anchor alike: the window rule's
        # shift term holds it (the power before the step is the start's, see points()).
        off_s = noise_j / abs(rise) * U
        return b, step_s, lo_w, float(hi_w), float(c_first), off_s

    def _find_start_update(self) -> OuterUpdate | None:
        """The update holding the job's start (its two ends and ``C`` there); or None.

        Read much faster than the counter updates, the first value read is the counter at
        the update boundary one update before the first change, ``b = τ₀ − U``, so the
        energy of the update holding the start is known (``C(τ₀) − C(b)``), as any
        segment's is. ``C`` before the first anchor splits it rather than extrapolating
        the next segment's power: 150/650 W square waves of 0.5 s, stepping just after
        the first change, read their first 50 ms 20 J high at ± 1 J (16 of 60 jobs of
        5-20 s missed, at up to 12x the ±). None where the first change is not the update
        after the first read's, or the updates do not follow one another.
        """
        if self._first_read is None or len(self.tau) < 2 or self.spec.counter_integrates is False:
            return None
        U = self._measured_update_s(np.diff(self.tau[: START_PERIOD_UPDATES + 1]))
        if U is None:
            return None
        t_first, c_first = self._first_read
        tau0, e0 = float(self.tau[0]), float(self.anchor_e[0])
        b = tau0 - U
        if not (t_first - U <= b <= t_first + self._half_bracket) or e0 < c_first:
            return None
        return b, c_first, tau0, e0

    def _find_end_update(self) -> OuterUpdate | None:
        """The update holding the job's end (its two ends and ``C`` there); or None.

        The stop's tail is the counter's first change after the end: the update it closes
        holds the end, and its energy is known as any segment's is. Where the load went on
        at its level past the end (the update after the tail's within
        :data:`PRE_JOB_SPREADS` update-to-update spreads of the last regular one) and no
        step was seen in it (:meth:`_end_step`), ``C`` after the last anchor splits that
        energy rather than extrapolating the power values. Not where the load stopped
        with the job, the usual end of a job: an update that is part work and part idle
        then splits by a shape that may not show it (a 400 W job idle right after its
        end read 2.6 J off at ± 0.26 J split), and extrapolating on the power read up to
        the end is right. Nor where reads are slower than half an update (the tail's
        place is off by up to half a read gap), nor on a counter declared part-time.
        """
        if self._tail is None or self._tail_next is None or self._tail_updates is None:
            return None
        if self._tail_update_s is not None or self.spec.counter_integrates is False:
            return None
        if len(self.tau) < 2 or self._half_bracket >= self.spec.update_period_s / 4:
            return None
        tail_t, tail_e = self._tail
        last_t, last_e = float(self.tau[-1]), float(self.anchor_e[-1])
        U = self._measured_update_s(np.diff(self.tau[-START_PERIOD_UPDATES - 1 :])[::-1])
        if U is None or abs(tail_t - last_t - U) > 0.25 * U or tail_e < last_e:
            return None
        d_before, d_after = self._tail_updates[1], self._tail_next[2]
        if abs(d_after - d_before) > PRE_JOB_SPREADS * self._seg_scatter_j:
            return None  # the load changed after the end: it may have stopped with the job
        # The stop read and the tail's reads are off the sampling grid: the tail's own
        # anchor is misplaced apart from the others (7.6 ms of 100 put 5 J on a 650 W end).
        return last_t, last_e, last_t + U, tail_e

    def _measured_update_s(self, seg_len: FloatArray) -> float | None:
        """The update period (s) as the counter's segments measure it; None if irregular.

        ``seg_len``: segment lengths, nearest the job's edge first; the regular ones up to
        the first irregular one average. NVIDIA's period is declared, not read: a counter
        updating every 90 or 120 ms against a declared 100 covered 1-2 of 16 jobs split at
        the declared length.
        """
        # where the shared lag drifts, a wrap's segment is the lag's, not the update's
        wrapped = (self._wrap_signs(seg_len) != 0) & (self._wraps_per_s > 0)
        if self._anchor_scatter_s > 0 and not wrapped.any():  # uneven by the anchors:
            return self._anchor_mean_s  # all regular ones' mean (80/120 ms: either alone)
        regular = np.abs(seg_len - self._seg_s) <= 0.25 * self._seg_s
        n = int(np.argmin(regular)) if not regular.all() else len(seg_len)
        kept = seg_len[:n][~wrapped[:n]]
        return float(np.mean(kept if len(kept) else seg_len[:n])) if n else None

    def _outer_fraction(self, x: FloatArray, ix: FloatArray | None, u: OuterUpdate) -> FloatArray:
        """Where ``x`` lies in the outer update ``u`` (0 at its start, 1 at its end).

        By the power shape's energy where it refreshes faster than the counter, by time
        otherwise (a flat shape's value in the start's update was read before the job).
        """
        a, b = u[0], u[2]
        by_time = (x - a) / max(b - a, 1e-12)
        if self.has_power and not self._flat_shape and not self._shape_blind:
            i_a, i_b = self.integral(np.array([a, b]))
            if i_b - i_a > 1e-12:
                ix = self.integral(x) if ix is None else ix
                by_time = (ix - i_a) / (i_b - i_a)
        return np.asarray(np.minimum(np.maximum(by_time, 0.0), 1.0))

    def _outer_at(self, x: FloatArray, ix: FloatArray | None, u: OuterUpdate) -> FloatArray:
        """``C`` (J) in and beyond the outer update ``u``: its energy split, then its rate."""
        a, e_a, b, e_b = u
        rate = (e_b - e_a) / max(b - a, 1e-12)
        inside = e_a + (e_b - e_a) * self._outer_fraction(x, ix, u)
        return np.asarray(inside - rate * np.maximum(a - x, 0.0) + rate * np.maximum(x - b, 0.0))

    def _outer_edge(
        self,
        x: FloatArray,
        outside: FloatArray,
        u: OuterUpdate,
        neighbours: tuple[FloatArray, bool],
        rule: tuple[float, float, float],
    ) -> FloatArray:
        """Edges' uncertainty (J) inside an outer update ``u``, ``outside`` beyond it.

        Inside the update holding the job's start or end (``u``), as an edge inside a
        segment (:func:`edge_j`) of that update's energy: only the hard bound where its
        average power differs from its neighbours' (``neighbours``: the next two segments'
        powers, or the last one's and the update after the tail's, and whether the
        nearest segment is hard only) as a load change does (:meth:`_unsteady`), or the
        stretch is too short to judge. ``rule``: the edge rule's spread (J), shape error
        and spreads.
        """
        spread, shape_rel, spreads = rule
        a, e_a, b, e_b = u
        length, d_u = b - a, e_b - e_a
        near = np.concatenate([[d_u / max(length, 1e-12)], neighbours[0]])
        jump_w = _JUMP_SPREADS * self._seg_scatter_j / self._seg_s
        level = max(0.25 * max(float(near.mean()), 1e-12), jump_w)
        hard = float(np.ptp(near)) > level or self._few_segments or self._aliased or neighbours[1]
        # The load may have stepped at the start, by less than the start-step test sees:
        # then extrapolating is right (370 W before a 400 W job, 1 s jobs read every 10 ms:
        # 62% covered without the difference in the ±, 70% with it at the narrower rule).
        stepped = not hard and u is self._start_update and self._pre_job_level_differs()
        spreads *= 1.0 if stepped else self._outer_share()
        ix = self.integral(x) if self.has_power else None
        frac = self._outer_fraction(x, ix, u)
        f_time = (x - a) / max(length, 1e-12)
        d_e = np.full_like(frac, d_u)
        cap, bound = self._one_change(np.full_like(frac, length), f_time, frac, d_e)
        hidden = self._hidden_swing_j()
        edge = edge_j(
            d_e, frac, np.full(frac.shape, hard), spread, shape_rel, spreads, cap, bound, hidden
        )
        if stepped:
            # The difference is a bias, not a spread: the window's ± adds its edges in
            # quadrature, so beside it this edge holds the two edges' spread (about √2
            # its own), or the end's error went uncovered (440 W before: 84% of 64 jobs).
            ext = self._extrapolate(x, 0, ix, split=False)
            edge = math.sqrt(2.0) * edge + np.abs(ext - self._outer_at(x, ix, u))
        return np.asarray(np.where((x >= a) & (x <= b), edge, outside))

    def _hidden_swing_j(self) -> float:
        """How far a swing the power values average away can put an edge off (J, ~95%).

        Each value averages ``w`` (:attr:`DeviceSpec.power_window_s`) of the load, so a
        load swinging faster shows the values little of its range (a 100/700 W square wave
        of 13/17 ms: values within 131 W), which then bounds nothing. Its running energy
        strays from a line by at most ``S P / 8`` (period ``P`` at most ``w``; ``S`` the
        swing of a load between 0 and the power limit ``L`` whose mean ``P̄`` the counter
        shows: at most ``4 P̄ (L − P̄) / L``, ``L`` at half the limit, less for a load
        mostly idle or flat out, as a load drawing ``L`` part of the time and 0 the rest
        strays most): :data:`HIDDEN_SHARE` ``× S × w``, where the load varies inside its
        updates (:meth:`_varying_weight`); 0 where the window or limit is not known.
        Without it the 13/17 ms wave's 2 s jobs were 73% covered, no note.
        """
        spec, limit = self.spec, self.spec.power_limit_w
        if not self.has_power or limit is None or not limit > 0 or not spec.power_window_s:
            return 0.0  # (a device of the user's own may declare 0 or NaN: nothing known)
        mean_w = min(max(self._typical_e / max(self._seg_s, 1e-12), 0.0), limit)
        swing_w = 4.0 * mean_w * (limit - mean_w) / limit
        return HIDDEN_SHARE * swing_w * spec.power_window_s * self._varying_weight()

    def _outer_share(self) -> float:
        """The share of the edge rule's spreads an edge inside an outer update gets.

        :data:`OUTER_EDGE_SPREADS` where the load does not vary inside its updates (the
        spread is its values' noise); all of them where it does (``_miss_varies``), ramped
        between (:meth:`_varying_weight`): such a load strays from a line inside the update
        holding the job's start or end as much as inside any other (kernels of 5-20 ms
        running before 2 s and 20 s jobs: 84% and 81% covered with the share; a 35/45 ms
        square wave's 3.07 s jobs: 83%).
        """
        return self._ramped(OUTER_EDGE_SPREADS, 1.0)

    def _ramped(self, steady: float, varying: float) -> float:
        """``steady`` moved towards ``varying`` by :meth:`_varying_weight`."""
        return steady + self._varying_weight() * (varying - steady)

    def _varying_weight(self) -> float:
        """How far the edge rule is a varying load's (1) rather than a steady one's (0).

        1 where the load varies (``_miss_varies``); below, it ramps from 0 at
        :data:`VARYING_FROM` of the line to 1 at it, so a load on the line gets about the
        same ± whichever side its spread falls.
        """
        if self._miss_varies:
            return 1.0
        span = 1.0 - VARYING_FROM
        if span <= 0.0:
            return 0.0
        ratio = self._seg_scatter_j / max(VARYING_REL * self._typical_e, 1e-12)
        return min(max((ratio - VARYING_FROM) / span, 0.0), 1.0)

    def _pre_job_level_differs(self) -> bool:
        """Does the power value read before the job lie off the load the job started with?

        Outside the first segment's average and the power values read in the next two
        segments by more than :data:`PRE_JOB_SPREADS` of the load's update-to-update spread.
        A load that varies inside its updates reads anywhere in its range (kernels of
        10-40 ms, 200/650 W: judged on the average alone, 1 s jobs' start edge read ± 20 J
        for a median error of 2 J).
        """
        if not self.has_power or len(self.tau) < 2:
            return False
        first_w = float(self.segment_power()[0])
        # (not the first segment's: a power value averaged over a while still shows the
        # level before the job there)
        inside = (self.t >= self.tau[1]) & (self.t <= self.tau[min(3, len(self.tau) - 1)])
        seen = np.concatenate([[first_w], self.power[inside]])
        scatter_w = self._seg_scatter_j / max(self._seg_s, 1e-12)
        p0 = float(self.power[0])
        off = max(float(np.min(seen)) - p0, p0 - float(np.max(seen)), 0.0)
        return off > PRE_JOB_SPREADS * scatter_w

    def _with_start_step(self, x: FloatArray, edge: FloatArray) -> FloatArray:
        """The edge before the first anchor (J), with a load step at the job's start."""
        if self._start_place is not None:
            b, step_s, lo_w, hi_w, _, off_s = self._start_place
            idle = self.spec.relative_uncertainty * lo_w * np.clip(x - b, 0.0, step_s - b)
            near = np.minimum(np.maximum(x - (step_s - off_s), 0.0), off_s)
            return np.asarray(idle + 2.0 * self._sigma + abs(hi_w - lo_w) * near)
        if self._start_step_w > 0:
            # Where in the first stretch the load stepped is unknown, and the stretch
            # itself is known to within the first anchor's bracket.
            span = np.maximum(self.tau[0] - x, 0.0) + self._half_bracket
            return np.asarray(np.maximum(edge, self._start_step_w * span))
        return edge

    def _with_end_step(self, x: FloatArray, ends: FloatArray, edge: FloatArray) -> FloatArray:
        """The edge after the last anchor (J), with a load change in the job's last update."""
        if self._end_place is not None:
            step_s, _, drop_w, off_s = self._end_place
            # C after the step is off by the drop x how far off its place is (no more)
            near = np.minimum(np.maximum(x - (step_s - off_s), 0.0), off_s)
            return np.asarray(edge + abs(drop_w) * near)
        if self.end_step_w > 0:
            return np.maximum(edge, self._tail_bound(x, ends))
        return edge

    def _tail_bound(self, x: FloatArray, ends: FloatArray) -> FloatArray:
        """The bound (J) on ``C`` after the last anchor where the load changed in that update.

        Where the change went, relative to the job's end, is unknown. One step anywhere in that
        update puts the energy up to the end between two figures: the extrapolation on
        the last power read (the load ran to the end) and the tail update's energy split
        by time (it changed right after the last change read). The bound is their
        distance, and the step times the tail anchor's half bracket.
        """
        assert self._tail is not None
        tail_t, tail_e = self._tail
        last_t, last_e = self.tau[-1], self.anchor_e[-1]
        f = np.clip((x - last_t) / max(tail_t - last_t, 1e-12), 0.0, 1.0)
        by_time = last_e + (tail_e - last_e) * f
        return np.asarray(np.abs(ends - by_time) + self.end_step_w * self._half_bracket)

    def segment_power(self) -> FloatArray:
        """Average power (W) of each anchor-to-anchor segment of the counter."""
        return np.asarray(np.diff(self.anchor_e) / np.maximum(self._seg_lengths(), 1e-12))

    def _seg_lengths(self) -> FloatArray:
        """Each segment's length (s): the regular ones' mean where anchors are misplaced apart.

        Read every 40 ms, a 100 ms update's segments read 80 and 120 ms long and a steady
        700 W load 875 and 583 W by them: its updates' energies are alike, their anchors are
        not (:meth:`_anchor_scatter`).
        """
        seg_len = np.diff(self.tau)
        if self._anchor_scatter_s <= 0:
            return np.asarray(seg_len)
        U = self.spec.update_period_s
        regular = (seg_len > 0.5 * U) & (seg_len < 1.5 * U)
        return np.asarray(np.where(regular, self._anchor_mean_s, seg_len))

    def _residuals(self, d_e: FloatArray, d_i: FloatArray) -> FloatArray:
        """Counter deltas less what the power shape (or the neighbours) predict (J)."""
        if len(d_e) == 0:
            return np.zeros(0)
        if self.has_power:
            predicted = self._calibration * d_i
        else:
            seg_p = d_e / np.maximum(np.diff(self.tau), 1e-12)
            neighbour_p = np.convolve(np.pad(seg_p, 1, mode="edge"), [0.5, 0.0, 0.5], "valid")
            predicted = neighbour_p * np.diff(self.tau)
        return np.asarray(d_e - predicted)

    def _scatter(self, resid: FloatArray, d_e: FloatArray, s: DeviceSpec) -> float:
        """Robust spread (J) of counter deltas around what the power shape predicts."""
        stats = self._stats
        if stats is not None and stats.segments:
            past = stats.history()
            resid = np.concatenate([past[0], resid])
            d_e = np.concatenate([past[3], d_e])
        if len(d_e) == 0:
            return 0.0
        self._few_segments = len(resid) < 4
        self._sigma_n = len(resid)
        if len(resid) < 4:  # a few updates, no history: how the load varies is unknown
            return max(FEW_SEGMENTS_REL * float(_median(d_e)), s.counter_resolution_j)
        mad = 1.4826 * float(_median(np.abs(resid - _median(resid))))
        return max(mad, s.counter_resolution_j)

    def _update_scatter(self, d_e: FloatArray, seg_len: FloatArray) -> tuple[float, float, float]:
        """How the load varies between consecutive counter updates: spread, jumps, jump rate.

        A counter that adds up a part-time power value (``sampled`` in
        :class:`~greenai.testing.FakeGPU`) misreads each update by about how much the load
        varies inside it, and power and counter then agree, so the residuals of
        :meth:`_scatter` see nothing. What remains visible is how much consecutive counter
        deltas differ: on a load that varies faster than the updates they scatter by about
        that much, on a steady one by the sensor's noise. Returns the robust spread of the
        segments' power (W, from the median difference of neighbours), the largest recent
        *jump* (a difference over :data:`_JUMP_SPREADS` spreads and a quarter of the typical
        power: a load step, which a
        sampled counter may place anywhere in its update; W) and jumps per update.
        """
        stats = self._stats
        if stats is not None and stats.segments:
            past = stats.history()
            d_e = np.concatenate([past[3], d_e])
            seg_len = np.concatenate([past[1], seg_len])
        # A segment whose anchors were placed with different lags (a read off the sampling
        # grid: the stop read, a late one) has a length off by up to an update's bracket, and
        # its average power off with it: a steady 300 W load read 486 W over the 62 ms from
        # its last regular read to the stop read, a false load step. Such a segment shows
        # nothing reliable of how the load varies between updates.
        regular = _regular_segments(seg_len)
        self._scatter_n = int(regular.sum())
        if self._scatter_n < 3:
            return 0.0, 0.0, 0.0
        power_w = d_e[regular] / np.maximum(seg_len[regular], 1e-12)
        self._update_corr = _lag_one_correlation(power_w)
        # How well the power values predict whole segments (W): far better than the
        # segments differ, the differences are level changes the values show (steps).
        shape_w = self._sigma / max(self._seg_s, 1e-12) if self.has_power else math.inf
        few_reads = not self._slow_reads and self._reads_per_update() < PHASE_READS - 0.1
        if few_reads and self.spec.relative_uncertainty < 0.1:
            # Read a few times per update, instant values cannot show where in it a level
            # changed: the two groups and changes that last tell steps alone (150/650 W
            # every 0.2-0.5 s read every 100 ms: one run in four read as varying, its
            # 50 ms windows 100% covered at 0.11 with no note). Not a value averaged over
            # longer than an update (declared 10%): it lags each step, and taken as steps
            # its 5 s runs read 84% covered (94% as varying).
            shape_w = 0.0
        return _spread_and_jumps(power_w, shape_w)

    def settle_into(self, stats: CurveStats, before_s: float, after_s: float) -> None:
        """Add the segments that start in ``[after_s, before_s)`` to the job's ``stats``."""
        if len(self.tau) < 2:
            return
        start = self.tau[:-1]
        new = np.flatnonzero((start >= after_s) & (start < before_s))
        if not len(new):
            return
        d_e = np.diff(self.anchor_e)[new]
        seen = np.concatenate([self.segment_power()[new], self._power_between(after_s, before_s)])
        stats.power_lo_w = min(stats.power_lo_w, float(seen.min()))
        stats.power_hi_w = max(stats.power_hi_w, float(seen.max()))
        calibrates = self._calibrates[new]
        seg_len = np.diff(self.tau)
        signs = self._wrap_signs(seg_len)[new]
        up, down = stats.wraps
        stats.wraps = (up + int((signs > 0).sum()), down + int((signs < 0).sum()))
        stats.wrap_span_s += float(seg_len[new].sum())
        stats.wrap_until_s = max(stats.wrap_until_s, float(self.tau[new[-1] + 1]))
        trusted = self._trusted[new]
        stats.miss_sq_j2 += float(np.square(self._resid[new][trusted]).sum())
        stats.miss_n += int(trusted.sum())
        stats.sum_counter_j += float(d_e[calibrates].sum())
        stats.sum_shape_j += float(np.diff(self._i_tau)[new][calibrates].sum())
        stats.extend(
            self._resid[new].tolist(),
            np.diff(self.tau)[new].tolist(),
            self.anchor_lag[new].tolist(),
            d_e.tolist(),
        )

    def _power_between(self, after_s: float, before_s: float) -> FloatArray:
        """The power values (W) read in ``[after_s, before_s)``; none without power."""
        if not self.has_power:
            return np.zeros(0)
        return self.power[(self.t >= after_s) & (self.t < before_s)]

    def power_range_w(self) -> float:
        """How far apart the highest and lowest power the readings showed are (W).

        Power values (each a part-time average of its update) and the counter's segment
        averages, over this stretch and the job's settled history. Without power values
        ``inf``: segment averages alone do not show how far the load swings inside one.
        """
        if not self.has_power:
            return math.inf
        seen = np.concatenate([self.power, self.segment_power()])
        stats = self._stats
        lo = min(float(seen.min()), stats.power_lo_w if stats else math.inf)
        hi = max(float(seen.max()), stats.power_hi_w if stats else -math.inf)
        return hi - lo

    def _effective_method(self, declared: Method) -> Method:
        if declared == "counter" and len(self.tau) < 2:
            # The counter never changed inside the stretch: the figure comes from power alone
            # (a device without power values too: one anchor cannot place an edge, and its
            # note says the figure is not measured).
            return "power"
        return declared

    # --- evaluation ---------------------------------------------------------------------
    def integral(self, x: FloatArray) -> FloatArray:
        """Integral of the piecewise-linear power from the first reading to ``x`` (J)."""
        t, p, cum = self.t, self.power, self._cum_power
        x = np.asarray(x, dtype=np.float64)
        if len(t) == 1:
            return np.asarray(p[0] * (x - t[0]), dtype=np.float64)
        i = np.minimum(np.maximum(np.searchsorted(t, x, side="right") - 1, 0), len(t) - 2)
        span = t[i + 1] - t[i]
        dt = x - t[i]
        slope = np.where(span > 0, (p[i + 1] - p[i]) / np.where(span > 0, span, 1.0), 0.0)
        inside = cum[i] + p[i] * dt + slope * dt * dt / 2.0
        before = cum[0] + p[0] * (x - t[0])
        after = cum[-1] + p[-1] * (x - t[-1])
        return np.asarray(np.where(x < t[0], before, np.where(x > t[-1], after, inside)))

    def energy_at(self, x: FloatArray) -> FloatArray:
        """Cumulative energy ``C(x)`` in joules (an arbitrary but fixed origin)."""
        x = np.asarray(x, dtype=np.float64)
        if self.method != "counter":
            return np.asarray(self._origin_j + self.integral(x))
        return self._at(x)[0]

    def _at(
        self, x: FloatArray
    ) -> tuple[FloatArray, npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
        """``C(x)`` of a counter curve, with the segment index (raw and clipped) and fraction.

        The power integral at ``x`` is computed once and shared (evaluation is the hot part
        of a settling pass).
        """
        tau, ae = self.tau, self.anchor_e
        k = np.searchsorted(tau, x, side="right") - 1
        kk = np.minimum(np.maximum(k, 0), len(tau) - 2)
        ix = self.integral(x) if self.has_power else None
        frac = self._fraction(x, kk, ix)
        interior = ae[kk] + (ae[kk + 1] - ae[kk]) * frac
        before = self._extrapolate(x, 0, ix)
        after = self._extrapolate(x, len(tau) - 1, ix)
        if self._end_place is not None:  # the load's step inside the job's last update
            # One step between the levels before and after, as placed: the power values
            # may show it already (read slower than the counter, the last one can be
            # fresher than the last change's place; 1 s reads read it twice, -29 J).
            step_s, before_w, drop_w, _ = self._end_place
            after = self.anchor_e[-1] + before_w * (x - self.tau[-1])
            after = after - drop_w * np.maximum(x - step_s, 0.0)
        c = np.where(k < 0, before, np.where(k >= len(tau) - 1, after, interior))
        return np.asarray(c), k, kk, frac

    def _fraction(
        self, x: FloatArray, k: npt.NDArray[np.intp], ix: FloatArray | None = None
    ) -> FloatArray:
        """Where ``x`` lies inside segment ``k``, by energy shape (0 at its start, 1 at its end)."""
        tau = self.tau
        by_time = (x - tau[k]) / np.maximum(tau[k + 1] - tau[k], 1e-12)
        if not self.has_power or self._shape_blind:
            return np.asarray(np.minimum(np.maximum(by_time, 0.0), 1.0))
        d_i = self._i_tau[k + 1] - self._i_tau[k]
        ok = d_i > 1e-12
        ix = self.integral(x) if ix is None else ix
        by_power = (ix - self._i_tau[k]) / np.where(ok, d_i, 1.0)
        return np.asarray(np.minimum(np.maximum(np.where(ok, by_power, by_time), 0.0), 1.0))

    def _extrapolate(
        self, x: FloatArray, j: int, ix: FloatArray | None, *, split: bool = True
    ) -> FloatArray:
        """Energy beyond the first/last anchor, from power (or the nearest segment's power).

        Before the first anchor a flat shape (:meth:`_shape_is_flat`) extrapolates at the
        first segment's average power too: its power value describes a sampled part of the
        update *before* the one it is read in, there a value from before the job (kernels of
        5–20 ms read every 10 ms, 2 s jobs: the first stretch read 49% high on average, the
        job 82% covered; at the first segment's average, 94.5%). After the last anchor the
        last value read is the freshest there is: a load that stops in the job's last
        100 ms showed in it (the segment's average covered 67% of such jobs, the value 92%).
        ``split``: the updates holding the start and the end split their energy where it is
        known (:meth:`_find_start_update`, :meth:`_find_end_update`); False extrapolates as
        if it were not.
        """
        if j == 0 and self._start_place is not None:  # one step at the start, placed
            b, step_s, lo_w, hi_w, c_b, _ = self._start_place
            before = lo_w * (np.minimum(x, step_s) - b)
            return np.asarray(c_b + before + hi_w * np.maximum(x - step_s, 0.0))
        outer = self._start_update if j == 0 else self._end_update
        if split and outer is not None:  # the update holding the start or the end
            return self._outer_at(x, ix, outer)
        if ix is not None and not (j == 0 and self._flat_shape and len(self.tau) >= 2):
            return np.asarray(self.anchor_e[j] + self._calibration * (ix - self._i_tau[j]))
        if len(self.tau) < 2:
            return np.full_like(x, self.anchor_e[j])
        seg = 0 if j == 0 else len(self.tau) - 2
        p = (self.anchor_e[seg + 1] - self.anchor_e[seg]) / max(
            self.tau[seg + 1] - self.tau[seg], 1e-12
        )
        return np.asarray(self.anchor_e[j] + p * (x - self.tau[j]))

    def settled_s(self) -> float:
        """Up to when the curve is final: later readings cannot change ``C`` before it.

        For counter curves, the start of the last-but-one segment: a segment is judged
        against its neighbours (:meth:`_unsteady`), so the one after it must be complete.
        For power and model curves, the last reading.
        """
        if self.spec.method == "counter":  # declared: a stretch without changes waits
            if len(self.tau) >= 3:
                return float(self.tau[-3])
            if len(self.t) and self.t[-1] - self.t[0] > STUCK_COUNTER_S:
                return float(self.t[-1])  # a stuck counter must not hold everything back
            return -np.inf
        return float(self.t[-1]) if len(self.t) else -np.inf

    def points(self, x: FloatArray) -> Points:
        """``C``, edge uncertainty, segment power and gap energy at times ``x``."""
        x = np.asarray(x, dtype=np.float64)
        gap = self.gap_at(x)
        if self.method != "counter":
            zero = np.zeros_like(x)
            return Points(self.energy_at(x), zero, zero, gap, counter=False)
        c, k, kk, frac = self._at(x)
        seg_p = self.segment_power()
        at = np.minimum(np.maximum(k, 0), len(seg_p) - 1)
        power = seg_p[at] if len(seg_p) else np.zeros_like(x)  # one change: no segment yet
        if self.end_step_w > 0 and self._end_place is None:
            # The load changed near the end, not placed: after the last change read it
            # drew what the update holding the end did (the counter's shared lag there
            # errs at that power: 400 W jobs idle for their last 130-150 ms, read every
            # 100 ms, were covered 87.5% at the last segment's power).
            power = np.where(k >= len(self.tau) - 1, self._tail_w, power)
        if self._start_place is not None:  # before the step, the load before the job
            _, step_s, lo_w, *_ = self._start_place
            power = np.where((k < 0) & (x < step_s), lo_w, power)
        if (u := self._start_update) is not None:  # the update holding the start: its average
            power = np.where(k < 0, (u[3] - u[1]) / max(u[2] - u[0], 1e-12), power)
        if (u := self._end_update) is not None:  # and the end's
            power = np.where(k >= len(self.tau) - 1, (u[3] - u[1]) / max(u[2] - u[0], 1e-12), power)
        edge = self._edge_uncertainty(x, (c, k, kk, frac))
        return Points(c, edge, power, gap, True, *self._anchor_timing_unit(k))

    def gap_at(self, x: FloatArray) -> FloatArray:
        """Energy (J) interpolated across read failures up to times ``x`` (see :meth:`points`)."""
        x = np.asarray(x, dtype=np.float64)
        if self.gaps:
            return np.asarray(self._gap_origin_j + self._gap_energy_to(x))
        return np.full_like(x, self._gap_origin_j)

    def window(self, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Energy (J) and its ~95% uncertainty (J) over windows ``[a, b]`` (arrays)."""
        energy, independent, shared = self.window_parts(a, b)
        return energy, independent + shared

    def window_parts(
        self, a: FloatArray, b: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Energy (J) over windows ``[a, b]`` and its uncertainty (J) in two parts.

        See :func:`greenai.windows.device_windows`.
        """
        a, b = np.asarray(a, float), np.asarray(b, float)
        return device_windows(self.spec, self.points(a), self.points(b), a, b, self.model)

    @property
    def half_bracket_s(self) -> float:
        """Half the typical span in which a counter change happened (s)."""
        return self._half_bracket

    @property
    def model(self) -> CurveModel:
        """What the window rules need of this curve beyond its points."""
        stats = self._stats
        locked = stats is not None and stats.locked_period_s is not None
        return CurveModel(
            half_bracket_s=self._half_bracket,
            seg_scatter_j=self._seg_scatter_j,
            update_corr=self._update_corr,
            jump_j=self._jump_j,
            jump_rate=self._jump_rate,
            seg_s=self._seg_s,
            varying=self._varying,
            locked=locked,
            part_time=self.spec.method != "counter" or self.spec.counter_integrates is not True,
            fallback=self.spec.method == "counter" and self.method != "counter",
            few_updates=self.spec.method == "counter" and self._few_segments,
            max_power_w=self._max_power_w(),
            start_step_w=self._start_step_w,
            end_step_w=self.end_step_w,
            update_s=self.spec.update_period_s,
            slow_reads=self._slow_reads,
            update_phase_s=self._update_phase,
            aliased=self._aliased,
            aliased_per_update=self._aliased
            and abs(math.log1p(self._steady_rel)) <= math.log1p(ALIASED_REL),
            shape_rel=self._steady_rel,
            read_beat_s=2.0 * self._half_bracket if self._reads_beat() else 0.0,
            wraps_per_s=self._wraps_per_s,
            jitter_untold_s=self._jitter_untold_s,
            scatter_n=self._scatter_n,
        )

    def _max_power_w(self) -> float:
        """The highest power (W) the readings show: power values and counter segments."""
        highest = float(np.max(self.power)) if self.has_power and len(self.power) else 0.0
        seg_p = self.segment_power() if len(self.tau) > 1 else np.zeros(0)
        if len(seg_p):
            highest = max(highest, float(np.max(seg_p)))
        if self._stats is not None and self._stats.segments:
            _, seg_len, _, seg_e = self._stats.history()
            highest = max(highest, float(np.max(seg_e / np.maximum(seg_len, 1e-12))))
        return highest

    def _edge_uncertainty(
        self,
        x: FloatArray,
        at: tuple[FloatArray, npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray] | None = None,
    ) -> FloatArray:
        tau, ae = self.tau, self.anchor_e
        ends, k, kk, frac = self._at(x) if at is None else at
        d_e = ae[kk + 1] - ae[kk]
        rel_u = self.spec.relative_uncertainty
        # How far the shape misplaces energy inside a segment: at most how well it predicts
        # whole segments (sigma), and no more than the load varies from update to update.
        spread = min(self._sigma, self._seg_scatter_j) if self._seg_scatter_j else self._sigma
        if self._flat_shape and self._seg_scatter_j:
            spread = self._flat_spread_j()  # whole segments show nothing of its misses
        # A power value averaged over longer than an update (declared 10%) lags the load:
        # its shape misplaces energy inside a segment by up to that share (not on a load
        # that does not vary between updates: nothing for it to lag).
        shape_rel = rel_u if rel_u >= 0.1 and (self._varying or self._jump_rate > 0) else 0.0
        bracket = bracket_share(self._half_bracket, self._seg_s, self._slow_reads)
        spreads = EDGE_SPREADS * (1.0 - EDGE_READ_FASTER + 2.0 * EDGE_READ_FASTER * bracket)
        if not self._miss_varies and not self._slow_reads:  # see EDGE_SPREADS_STEADY
            spreads = self._ramped(EDGE_SPREADS_STEADY * (0.5 + bracket), spreads)
        estimated = spread_estimate_factor(self._sigma_n)
        spreads *= estimated
        seg_len = tau[kk + 1] - tau[kk]
        cap, bound = self._one_change(
            seg_len, (x - tau[kk]) / np.maximum(seg_len, 1e-12), frac, d_e
        )
        hidden = self._hidden_swing_j()
        inside = edge_j(
            d_e, frac, self._hard_only[kk], spread, shape_rel, spreads, cap, bound, hidden
        )
        inside = self._near_anchor_bound(x, kk, inside)
        first, last = self._outside_edges(x, ends, (spread, shape_rel, spreads), estimated)
        edge = np.where(k < 0, first, np.where(k >= len(tau) - 1, last, inside))
        # Beyond the anchors, the update holding the edge has an unseen end of its own, off
        # its grid by its own jitter (steady 1 s jobs, ± 3 ms: 9 J off at ± 5.7 J); so where
        # uneven segments can only be jitter (reads that divide the update period).
        scatter = self._anchor_timing_j(x, k, self._anchor_scatter_s, self._jitter_share())
        jitter = self._anchor_timing_j(x, k, self._anchor_jitter_s, math.sqrt(2.0))
        return np.asarray(np.hypot(np.hypot(edge, scatter), jitter))

    def _flat_rms(self) -> float:
        """Root mean square (J) of the residuals of regular segments away from load changes.

        Over the job's settled segments (running sums: O(1)) and this curve's. Not a robust
        spread: a periodic load's residuals take a few values, half of them may sit near the
        median, and outliers beyond five such spreads left out its largest misses (a 35/45 ms
        square wave's 0.6 J for 17 J).
        """
        stats = self._stats
        same = len(self._resid) == len(self._trusted)
        own = self._resid[self._trusted] if same else np.zeros(0)
        sq = float(np.square(own).sum()) + (stats.miss_sq_j2 if stats else 0.0)
        n = len(own) + (stats.miss_n if stats else 0)
        return math.sqrt(sq / n) if n else 0.0

    def _flat_spread_j(self) -> float:
        """How far a flat shape misplaces energy inside a segment: the spread (J) of the rule.

        One value per segment shows nothing of how the load moves inside it, but a
        part-time value (25 ms of each 100 ms update on H100) is the mean of a part of it:
        ``w (p − P̄)``, its miss against the counter's average over its window ``w``, is
        how far the load's running energy strays from a straight line over that part, and
        the residual is ``T (P̄ − p)``. So the residuals' root mean square, times
        :data:`FLAT_MISS_SHARE`, bounds the stray at an edge where the loads vary inside an
        update; the update-to-update spread holds where they do not. A 35/45 ms square wave
        read every 10 ms, its updates alike (a spread of 1-4 J), strayed by 3 J at edges
        while its values missed by 15-21 J: 5 s windows 77% covered with the spread alone.
        Not on a load steady from one update to the next whose values miss by little
        (``_miss_varies``): there the misses are the values' noise, which strays nothing.
        """
        if not self._miss_varies:  # noise on a steady load's values
            return self._seg_scatter_j
        share = ALIASED_MISS_SHARE if self._miss_sized else FLAT_MISS_SHARE
        return max(self._seg_scatter_j, share * self._flat_rms_j)

    def _jitter_share(self) -> float:
        """How much of one anchor's misplacement an edge beyond the anchors gets (1 or √2).

        √2 where the reads divide the update period (10, 20, 25, 50 ms of 100 ms): uneven
        segments there are updates off their grid, and the unseen end of the update
        holding the edge is off by its own jitter (steady 1 s jobs, ± 2 ms crossing 10 ms
        reads: 6-7.6 J off at ± 5.6 J). Read every 30 or 40 ms, the unevenness is the reads'
        beat against exact updates, and the unseen end lies one exact period away.
        """
        return math.sqrt(2.0) if self._reads_divide() else 1.0

    def _reads_divide(self) -> bool:
        """Whether the reads divide the update period (10, 20, 25, 50 or 100 ms of 100 ms)."""
        reads = self._reads_per_update()
        return reads >= 0.9 and abs(reads - round(reads)) < 0.1

    def _reads_beat(self) -> bool:
        """Whether reads that do not divide the update period misplaced anchors apart.

        Read every 30 or 40 ms, each update's change sits at its own place in its read gap
        (segments of 90 and 120 ms, or 80 and 120), in a pattern that repeats: the
        independent misplacement :meth:`_anchor_scatter` sizes bounds those errors (steady
        700 W 1 s jobs at 40 ms reads: 100% covered at a median |error|/± of 0.69, 5 s
        windows of kernels at 0.26).
        """
        return self._anchor_scatter_s > 0 and not self._reads_divide()

    def _wrap_signs(self, seg_len: FloatArray) -> npt.NDArray[np.int_]:
        """Per segment: +1 one read gap longer than the typical, −1 shorter, else 0.

        Where the reads divide the update period (at least 2 per update) every anchor sits
        at the same place in its read gap, and the lag they share cancels; but the GPU's
        clock runs off the host's (``greenai.windows.CLOCK_REL``), so that place drifts,
        and on crossing a read it wraps by a whole gap: one segment reads a gap long or
        short, always the same way (updates that jitter across a read cross back). Edges
        on either side of a wrap are off by up to a read gap apart (20 s jobs at 10 ms
        reads of a GPU 80 ppm off the host erred 4-5 J at ± 0.8 J where one fell inside).
        """
        signs = np.zeros(len(seg_len), dtype=np.int_)
        if len(seg_len) < 2 or not self._reads_divide() or self._reads_per_update() < 1.9:
            return signs
        gap = 2.0 * self._half_bracket
        off = (seg_len - self._seg_s) / gap  # (the typical: a real period off the declared)
        signs[(off > 0.5) & (off < 1.5)] = 1
        signs[(off < -0.5) & (off > -1.5)] = -1
        return signs

    def _wrap_rate(self, seg_len: FloatArray) -> float:
        """The shared lag's wraps per second over the job so far (see :meth:`_wrap_signs`).

        A drifting lag wraps one way; updates jittering across a read cross back (the
        lag stays within the gap: long and short segments differ by one at most), so
        where both show, only wraps beyond that one count.
        """
        signs = self._wrap_signs(seg_len)
        stats = self._stats
        (up, down), span = (stats.wraps, stats.wrap_span_s) if stats else ((0, 0), 0.0)
        fresh = self.tau[:-1] >= (stats.wrap_until_s if stats is not None else -math.inf)
        up += int((signs[fresh] > 0).sum())
        down += int((signs[fresh] < 0).sum())
        span += float(seg_len[fresh].sum())
        net = abs(up - down) - (1 if up and down else 0)
        return max(net, 0) / span if span > 0 else 0.0

    def _reads_per_update(self) -> float:
        """Reads per counter update (25 ms reads of 100 ms: 4); 0 read slower than it updates.

        From the anchors' lag: half the read gap where reads are faster than the updates.
        """
        if self._slow_reads:
            return 0.0
        return self.spec.update_period_s / max(2.0 * self._half_bracket, 1e-12)

    def _outside_edges(
        self, x: FloatArray, ends: FloatArray, rule: tuple[float, float, float], estimated: float
    ) -> tuple[FloatArray, FloatArray]:
        """Edges' uncertainty (J) before the first anchor and after the last.

        ``ends``: ``C`` at ``x``; ``rule``: the edge rule's spread (J), shape error and
        spreads; ``estimated``: how unsure the spread is.
        """
        ae = self.anchor_e
        spread, shape_rel, _ = rule
        rel_u = self.spec.relative_uncertainty
        rel = max(rel_u, abs(self._calibration - 1.0))
        before, after = np.abs(ae[0] - ends), np.abs(ends - ae[-1])
        if self._few_segments:  # a short stretch with no history: the shape is unproven
            rel = max(rel, FEW_SEGMENTS_REL)
            outside_first = rel * before + 2.0 * self._sigma
            outside_last = rel * after + 2.0 * self._sigma
        else:  # as inside, unless the end segment is next to a load change (power lags)
            typical = float(_median(np.abs(np.diff(ae)))) if len(ae) > 1 else 0.0
            cal_rel = max(abs(self._calibration - 1.0), shape_rel)
            out = estimated * self._ramped(EDGE_SPREADS_STEADY, EDGE_SPREADS)
            hard = self._hard_only
            first_hard = bool(hard[0]) if len(hard) else True
            last_hard = bool(hard[-1]) if len(hard) else True
            if first_hard:
                outside_first = rel * before + 2.0 * self._sigma
            elif self._flat_shape and self._seg_scatter_j > 0:  # see _extrapolate
                outside_first = flat_outside_edge_j(before, typical, spread, estimated)
            else:
                outside_first = outside_edge_j(before, typical, spread, out, cal_rel)
            outside_first = self._with_start_step(x, outside_first)
            outside_last = (
                rel * after + 2.0 * self._sigma
                if last_hard
                else outside_edge_j(after, typical, spread, out, cal_rel)
            )
        outside_last = self._with_end_step(x, ends, outside_last)
        first, last = self._aliased_outside(x, (outside_first, before), (outside_last, after))
        seg_p, hard = self.segment_power(), self._hard_only
        if self._start_update is not None:  # (no placed step: the bound's max holds)
            start = (seg_p[:2], bool(hard[:1].any()))
            first = self._with_start_step(
                x, self._outer_edge(x, first, self._start_update, start, rule)
            )
        if self._end_update is not None and self._tail_next is not None:  # no step seen
            after_w = self._tail_next[2] / max(self._seg_s, 1e-12)
            end = (np.concatenate([seg_p[-1:], [after_w]]), bool(hard[-1:].any()))
            last = self._outer_edge(x, last, self._end_update, end, rule)
        return first, last

    def _near_anchor_bound(
        self, x: FloatArray, kk: npt.NDArray[np.intp], inside: FloatArray
    ) -> FloatArray:
        """An edge's uncertainty (J) inside a long segment, at most what the load can draw.

        Read slower than the counter updates, a segment's hard bound is most of its
        energy; near an anchor the edge is off by at most what the highest power read
        draws from there (kernel jobs read every 1 s with a step at the start: ± 420 J
        on 2 kJ, 30x too wide).
        """
        if not self._slow_reads:
            return inside
        near_s = np.maximum(np.minimum(x - self.tau[kk], self.tau[kk + 1] - x), 0.0)
        most_w = self._max_power_w() * (1.0 + self.spec.relative_uncertainty)
        return np.asarray(np.minimum(inside, most_w * (near_s + self._half_bracket)))

    def _anchor_scatter(self, seg_len: FloatArray) -> float:
        """How far (s, one standard deviation) anchors are misplaced apart from one another.

        Each anchor sits half its read gap before the read that saw the change; where the
        reads keep one phase to the updates (10 ms reads of a 100 ms update) every anchor is
        off alike, and that shared shift cancels on a steady load (the window rule's shift
        term holds it across a change). Where they do not (30 or 40 ms reads, or a counter
        whose period the reads do not divide), each is off on its own: segments of a
        regular update read 90 and 120 ms long, and steady 700 W 1 s windows read 30 ms
        apart were 46% covered. A segment's length less the mean is the difference of its
        two anchors' misplacements: half their mean square is one anchor's variance, at most
        the half bracket's square (a misplacement bounded by it: updates jittering ± 2 ms
        across a read sit near both ends of their bracket, and capped at a uniform one's,
        ``half / √3``, steps' 50 ms windows read 87% covered once edges that share anchors
        were paired, :func:`greenai.windows.anchor_timing_j2`).
        """
        U = self.spec.update_period_s  # (the median of 80 and 120 ms segments is either)
        ok = (seg_len > 0.5 * U) & (seg_len < 1.5 * U)
        if ok.sum() < ANCHOR_SCATTER_SEGMENTS:
            return 0.0
        self._anchor_mean_s = float(np.mean(seg_len[ok]))
        d = seg_len[ok] - self._anchor_mean_s
        scatter = min(math.sqrt(float(np.mean(d * d)) / 2.0), self._half_bracket)
        return scatter if scatter > 1e-6 else 0.0  # (rounding alone)

    def _anchor_jitter(self, d_e: FloatArray, seg_len: FloatArray) -> float:
        """How far (s, one standard deviation) updates fall off their grid, from residuals.

        An update that fires ``δₖ`` late moves ``P δₖ`` from its segment into the next one,
        while reads 10 ms apart still see every segment 100 ms long (a jitter of ± 1-3 ms
        crosses no read, and :meth:`_anchor_scatter` sees nothing): each anchor is off by
        its update's own ``δₖ``. On a load steady between updates, a counter delta less
        what the power values predict is ``P (δₖ₊₁ − δₖ)`` and what the values miss of the
        load's own variation; consecutive ones covary by ``−P² σ²`` (correlation −0.5 for
        jitter alone). Which values describe a segment is not known: those read in it
        (FakeGPU's describe the update before, and the load's wander, differenced, covaries
        negatively too: 5 W read as 0.3 ms of jitter) or those read in the next one (the
        wander then cancels). The residuals against both are taken, and the covariance
        nearer 0 counts (the counter's deltas alone carry the wander: a 30 W one hid ± 2 ms
        of jitter). Without residuals beyond :data:`JITTER_OUTLIER_SPREADS` robust spreads
        (a load step), where the correlation is below ``−JITTER_CORR`` (against the smaller
        of the residuals' variance and the deltas': noise on the power values adds to the
        residuals' alone, and 10 W of it read ± 2 ms 3 s jobs 83% covered, 89% now) over
        at least :data:`ANCHOR_JITTER_SEGMENTS` pairs of regular segments (history), on a
        load not varying between updates, with power values and :data:`PHASE_READS` reads
        per update at least (read slower, the shape inside a bracket is the larger
        unknown, and a chance correlation would size a jitter up to 29 ms); at most a
        uniform misplacement over the half bracket (``half / √3``; more crosses reads, and
        the segments' lengths show it). Where the test fails on too few segments to tell,
        a bound from the residuals' variance (:meth:`_jitter_untold`).
        """
        reads, self._jitter_untold_s = self._reads_per_update(), 0.0
        if self._varying or not self.has_power or reads < PHASE_READS - 0.1:
            return 0.0
        resid = self._resid
        if self._stats is not None and self._stats.segments:
            past = self._stats.history()
            resid = np.concatenate([past[0], resid])
            d_e = np.concatenate([past[3], d_e])
            seg_len = np.concatenate([past[1], seg_len])
        regular = _regular_segments(seg_len)
        predicted = (d_e - resid)[1:] * seg_len[:-1] / np.maximum(seg_len[1:], 1e-12)
        found = [
            _lag_one_covariance(resid, regular),
            _lag_one_covariance(d_e[:-1] - predicted, regular[:-1] & regular[1:]),
        ]
        power_w = _median(d_e[regular] / np.maximum(seg_len[regular], 1e-12)) if len(d_e) else 0
        if not power_w > 0:  # (NaN: none regular)
            return 0.0
        pairs = regular[:-1] & regular[1:]  # the residuals' spread bounds what is not told
        least = min(_spread_sq(resid, regular), _spread_sq(d_e[:-1] - predicted, pairs))
        if None in found:  # too few pairs to test
            self._jitter_untold_s = self._jitter_untold(least, power_w, regular)
            return self._jitter_untold_s
        cov, var = max(f for f in found if f is not None)
        raw = _lag_one_covariance(d_e, regular, running=True)  # the counter's own must agree
        if raw is not None:  # (None: too few of its own pairs to test, not told either way)
            var = min(var, raw[1])  # power values' noise adds to theirs, not to the counter's
        if raw is None or raw[0] >= 0 or var <= 0 or cov >= -JITTER_CORR * var:
            self._jitter_untold_s = self._jitter_untold(least, power_w, regular)
            return self._jitter_untold_s
        jitter = min(math.sqrt(-cov) / power_w, self._half_bracket / math.sqrt(3.0))
        return jitter if jitter > 1e-6 else 0.0

    def _jitter_untold(
        self, var_j2: float, power_w: float, regular: npt.NDArray[np.bool_]
    ) -> float:
        """A bound (s, one sd) on updates' jitter too few segments could tell; else 0.

        Jitter adds ``2 P² σ²`` to the residuals' variance, so ``√(var / 2) / P`` bounds
        it whatever else the residuals hold. Taken where fewer than
        :data:`JITTER_TELL_PAIRS` pairs of regular segments failed the covariance test
        (or were too few for it) and the energy it moves, ``√(var / 2)``, reaches
        :data:`JITTER_UNTOLD_J` (``_anchor_jitter``).
        """
        pairs = int(np.sum(regular[:-1] & regular[1:]))
        if pairs >= JITTER_TELL_PAIRS or not power_w > 0 or not var_j2 >= 2 * JITTER_UNTOLD_J**2:
            return 0.0
        return min(math.sqrt(var_j2 / 2.0) / power_w, self._half_bracket / math.sqrt(3.0))

    def _anchor_timing_unit(
        self, k: npt.NDArray[np.intp]
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Between anchors: ``1.96 σ P`` of their own misplacement (J) and their times (s).

        ``σ`` holds both kinds (:meth:`_anchor_scatter`, :meth:`_anchor_jitter`); inside
        the anchors :meth:`_anchor_timing_j` gives each edge this times its share, and
        :func:`greenai.windows.anchor_timing_j2` combines two edges that share anchors
        (:attr:`greenai.points.Points.timing_j`). 0 and NaN beyond the anchors.
        """
        tau, ae = self.tau, self.anchor_e
        sigma_s = math.hypot(self._anchor_scatter_s, self._anchor_jitter_s)
        inside = (k >= 0) & (k < len(tau) - 1)
        if sigma_s <= 0 or len(tau) < 2 or not inside.any():
            nan = np.full(k.shape, math.nan)
            return np.zeros(k.shape), nan, nan
        kk = np.minimum(np.maximum(k, 0), len(tau) - 2)
        power_w = np.abs(ae[kk + 1] - ae[kk]) / max(self._anchor_mean_s, 1e-12)
        unit = np.where(inside, 1.96 * sigma_s * power_w, 0.0)
        return unit, np.where(inside, tau[kk], math.nan), np.where(inside, tau[kk + 1], math.nan)

    def _anchor_timing_j(
        self, x: FloatArray, k: npt.NDArray[np.intp], sigma_s: float, outer: float
    ) -> FloatArray:
        """About 95% uncertainty (J) of ``C(x)`` from its anchors' own misplacement.

        ``C`` between two anchors misplaced by ``δₖ`` and ``δₖ₊₁`` is off by the load's
        power times ``(1 − f) δₖ + f δₖ₊₁`` (``f`` by time); beyond the first or last
        anchor, by the power times that anchor's, ``outer`` times. The power is the
        segment's energy over the mean segment length (its own length is off by the
        misplacement). ``sigma_s``: one anchor's misplacement (s, one sd).
        """
        if sigma_s <= 0 or len(self.tau) < 2:
            return np.zeros_like(x)
        tau, ae = self.tau, self.anchor_e
        kk = np.minimum(np.maximum(k, 0), len(tau) - 2)
        power_w = np.abs(ae[kk + 1] - ae[kk]) / max(self._anchor_mean_s, 1e-12)
        f = np.clip((x - tau[kk]) / np.maximum(tau[kk + 1] - tau[kk], 1e-12), 0.0, 1.0)
        share = np.where((k < 0) | (k >= len(tau) - 1), outer, np.sqrt((1 - f) ** 2 + f**2))
        return np.asarray(1.96 * sigma_s * power_w * share)

    def _one_change(
        self, seg_len: FloatArray, f_time: FloatArray, frac: FloatArray, d_e: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The most an edge can be off (J), two ways, in a segment of ``seg_len`` (s).

        ``f_time``: where the edge lies in the segment by time, ``frac`` by energy; ``d_e``:
        the segment's energy (J). In the data-driven term's form (:func:`one_change_j`),
        and whatever the load does within its range (:func:`range_bound_j`, infinite where
        anchors are off by more than it knows or deltas may be misread).
        """
        f_time = np.minimum(np.maximum(f_time, 0.0), 1.0)
        cap = one_change_j(seg_len, self._range_w, f_time, frac, d_e)
        bracket = bracket_share(self._half_bracket, self._seg_s, self._slow_reads)
        if bracket > RANGE_BOUND_BRACKET or self.spec.counter_integrates is not True:
            return cap, np.full_like(cap, math.inf)
        # plus what an anchor placed within its bracket moves across the range
        bound = range_bound_j(seg_len, self._range_w, f_time, frac, d_e)
        return cap, bound + self._half_bracket * self._range_w

    def _gap_energy_to(self, x: FloatArray) -> FloatArray:
        """Energy interpolated across read failures from the stretch's start to each ``x``."""
        total = np.zeros_like(x)
        if not len(self.t):
            return total
        for g0, g1 in self.gaps:
            end = self.t[-1] if g1 is None else g1
            lo, hi = max(g0, self.t[0]), np.minimum(x, end)
            total += np.where(hi > lo, self.integral(hi) - self.integral(np.full_like(x, lo)), 0.0)
        return total

    def power_at_samples(self) -> FloatArray:
        """Power (W) at each reading: the instant value, or the counter's segment average."""
        if self.has_power:
            return self.power
        if len(self.t) < 2:
            return np.zeros_like(self.t)
        c = self.energy_at(self.t)
        p = np.diff(c) / np.maximum(np.diff(self.t), 1e-12)
        return np.concatenate([p[:1], p])


def locked_loop(starts_s: FloatArray, update_period_s: float) -> float | None:
    """The period (s) of a regular loop locked to the sensor's updates, or None.

    A loop whose period divides the update period (steps every 25 or 50 ms with updates
    every 100 ms), or is a whole number of updates, puts the same part of the loop in the
    same place of every update. A sensor that sees part of each update (25 ms of 100 ms on
    A100/H100: Yang, Adámek and Armour, SC'24, arXiv:2312.02741) then sees the same part
    every time, and neither the power values nor a counter built from them show it. The
    loop counts as locked while its phase drifts by less than one loop period (or one
    update) over the observed span: otherwise the sampled part sweeps the whole loop.

    Args:
        starts_s: Start times (s) of the loop's iterations (steps, or entries of one
            phase), sorted; the last 257 are used.
        update_period_s: The sensor's update period (s).
    """
    t = np.asarray(starts_s, dtype=np.float64)[-257:]
    if len(t) < 9 or update_period_s <= 0:
        return None
    d = np.diff(t)
    period = float(_median(d))
    if period <= 0 or float(np.percentile(np.abs(d - period), 90)) > 0.05 * period:
        return None  # irregular: the phase wanders on its own
    u = update_period_s
    short, long_ = (period, u) if period <= u else (u, period)
    k = round(long_ / short)
    if k < 1 or k > 64:
        return None
    drift_per_long = abs(long_ - k * short)
    span_s = float(t[-1] - t[0])
    drift = drift_per_long * span_s / long_
    return period if drift < short else None


REGULAR_SEGMENT = (0.75, 1.5)
"""Segments from this share of the typical segment's length to this share count when
judging how the load varies between updates (:meth:`EnergyCurve._update_scatter`)."""


def _on_the_update_grid(
    tau: FloatArray, read_s: FloatArray, before_s: FloatArray, gap_s: float, update_s: float
) -> npt.NDArray[np.bool_]:
    """Anchors read off the sampling grid: onto the counter's update grid, or dropped.

    An anchor sits half its bracket back from the read that saw the change; the lag all
    regular anchors share cancels in every window and in the job's total. A read off the
    grid (the stop read, a read after a late one) has a shorter bracket and so a smaller
    lag: its segment came out short by the difference, its energy put in too little time.
    A steady 300 W job stopped 50 ms after a read read 142.9 J for 135.0 J (± 4.8); steady
    jobs of 3.05–10.05 s were covered 58–62% of the time, of 3.08 s 22%. Where the previous
    anchor plus whole update periods lies inside such a read's bracket, the change happened
    there as far as the shared lag goes (the counter updates on a fixed period): the anchor
    moves there. Where it does not, the shared lag is off by more than the bracket allows
    and no place in it is consistent with the other anchors: the anchor is dropped, and
    ``C`` up to the next one (or to the stop) comes from the power shape.

    Args:
        tau: Anchor times (s), changed in place.
        read_s: The reads that saw each anchor's change (s).
        before_s: Each of those reads' bracket: the time since the read before it (s).
        gap_s: The regular time between reads (s).
        update_s: The counter's update period (s).

    Returns:
        Per anchor: keep it.
    """
    keep = np.ones(len(tau), dtype=bool)
    short = np.flatnonzero(before_s[1:] < OFF_GRID * gap_s) + 1
    for j in short:
        prev = tau[j - 1]
        steps = max(1.0, round((read_s[j] - before_s[j] / 2.0 - prev) / update_s))
        guess = prev + steps * update_s
        if read_s[j] - before_s[j] - 1e-9 <= guess <= read_s[j] + 1e-9:
            tau[j] = min(guess, float(read_s[j]))
        else:
            keep[j] = False
    return keep


def _regular_segments(seg_len_s: FloatArray) -> npt.NDArray[np.bool_]:
    """Per segment: is its length within :data:`REGULAR_SEGMENT` of the typical one?"""
    typical = _median(seg_len_s) if len(seg_len_s) else 0.0
    lo, hi = REGULAR_SEGMENT
    return np.asarray((seg_len_s >= lo * typical) & (seg_len_s <= hi * typical))


def _spread_and_jumps(power_w: FloatArray, shape_w: float = math.inf) -> tuple[float, float, float]:
    """Robust spread (W) of consecutive updates' power, the largest jump (W), jumps per update.

    A *jump* is a change over :data:`_JUMP_SPREADS` spreads and over 25% of the typical
    power (as in :meth:`EnergyCurve._unsteady`: reads that land late on a busy host
    misplace anchors by ~10% of an update, which is no load step). ``shape_w``: how well
    the power values predict whole segments (W; see :func:`_steady_between_spread`).
    """
    signed = np.diff(power_w)
    diff = np.abs(signed)
    level = 0.25 * float(_median(np.abs(power_w)))
    spread = float(1.4826 * _median(diff) / np.sqrt(2.0))
    steps = _step_runs(signed, spread, level)[0]
    low = _steady_between_spread(signed, spread, level, shape_w)
    if low is not None:
        spread, steps = low
    if not len(steps):
        return spread, 0.0, 0.0
    return spread, float(steps.max()), len(steps) / len(diff)


def _step_runs(signed: FloatArray, spread: float, level: float) -> tuple[FloatArray, int]:
    """The load steps (W) among consecutive power differences, and the bursts among them.

    A step inside an update shows as two jumps in a row: one step, their sum. A late read
    or a burst inside one update shows as two opposite jumps, which cancel.
    """
    threshold = max(_JUMP_SPREADS * spread, level, 1e-9)
    big = np.abs(signed) > threshold / 2.0  # a step split over two updates: halves
    if not big.any():
        return np.zeros(0), 0
    first = big & ~np.concatenate([[False], big[:-1]])
    run_id = np.cumsum(first) - 1
    runs = int(first.sum())
    sums = np.abs(np.bincount(run_id[big], weights=signed[big], minlength=runs))
    lengths = np.bincount(run_id[big], minlength=runs)
    # a run of up to three that comes back is a burst inside an update or two
    bursts = int(np.sum((sums <= threshold) & (lengths <= 3)))
    return sums[sums > threshold], bursts


def _steady_between_spread(
    signed: FloatArray, spread: float, level: float, shape_w: float
) -> tuple[float, FloatArray] | None:
    """The spread (W) and steps of a load steady between frequent steps; None otherwise.

    Steps in half the updates put the median difference among the steps (150/650 W every
    0.2-0.5 s read a 10 J spread on a 0.5 J noise, every edge sized by it); the lower
    quartile still sees the noise, and on a load that varies alike from update to update
    both quartiles tell one spread. Taken only where (a) the power values predict whole
    segments far better than the segments differ (``shape_w`` at most
    :data:`STEADY_BETWEEN_SHAPE` of the spread: their values show the changes), (b) the
    differences fall in two groups (at most :data:`STEADY_BETWEEN_SHARE` between
    :data:`STEADY_BETWEEN_NOISE` noise spreads and half a step: square waves and kernels
    beating with the updates spread over it) and (c) the big ones are level changes that
    last (at most :data:`STEADY_BETWEEN_BURSTS` bursts per step: a burst inside an update
    goes up and down again, and 200 W loads with 30 ms bursts to 700 W read 35 of 40 jobs
    covered with the quartile's spread).
    """
    diff = np.abs(signed)
    if len(diff) < STEADY_BETWEEN_MIN or shape_w > STEADY_BETWEEN_SHAPE * spread:
        return None
    low = float(np.quantile(diff, 0.25)) / (_Q25_HALF_NORMAL * math.sqrt(2.0))
    if spread <= STEADY_BETWEEN_SPLIT * low:
        return None
    half_step = max(_JUMP_SPREADS * low, level) / 2.0
    between = (diff > STEADY_BETWEEN_NOISE * low * math.sqrt(2.0)) & (diff <= half_step)
    if float(np.mean(between)) > STEADY_BETWEEN_SHARE:
        return None
    steps, bursts = _step_runs(signed, low, level)
    if bursts > STEADY_BETWEEN_BURSTS * max(len(steps), 1):
        return None
    return low, steps


def _running_median(values: FloatArray) -> FloatArray:
    """The median of each value's :data:`CORR_MEDIAN_UPDATES` neighbours (ends padded)."""
    half = CORR_MEDIAN_UPDATES // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.asarray(np.median(windows, axis=1))


def _spread_sq(values: FloatArray, regular: npt.NDArray[np.bool_]) -> float:
    """Mean square (J²) of ``regular`` values around their median, without outliers.

    Values beyond :data:`JITTER_OUTLIER_SPREADS` robust spreads are left out: a segment
    next to a read failure (its anchor placed inside the gap) read 2.9 ms of jitter into
    a 1.2 s job alone. 0 under three values.
    """
    x = values[regular[: len(values)]]
    if len(x) < 3:
        return 0.0
    d = np.abs(x - _median(x))
    mad = 1.4826 * _median(d)
    return float(np.mean(np.square(d[d <= JITTER_OUTLIER_SPREADS * mad] if mad > 0 else d)))


def _lag_one_covariance(
    values: FloatArray, regular: npt.NDArray[np.bool_], running: bool = False
) -> tuple[float, float] | None:
    """Consecutive ``values``' covariance and their variance, around their median; or None.

    Only ``regular`` ones within :data:`JITTER_OUTLIER_SPREADS` robust spreads, None under
    :data:`ANCHOR_JITTER_SEGMENTS` such pairs (:meth:`EnergyCurve._anchor_jitter`).
    """
    if int(regular.sum()) <= ANCHOR_JITTER_SEGMENTS:
        return None
    # around a running median, a load's level changes are no covariance
    x = values - (_running_median(values) if running else _median(values[regular]))
    keep = regular.copy()
    mad = 1.4826 * _median(np.abs(x[regular]))
    if mad > 0:
        keep &= np.abs(x) <= JITTER_OUTLIER_SPREADS * mad
    pairs = keep[:-1] & keep[1:]
    if int(pairs.sum()) < ANCHOR_JITTER_SEGMENTS:
        return None
    return float(np.mean((x[:-1] * x[1:])[pairs])), float(np.mean(x[keep] ** 2))


def _lag_one_correlation(power_w: FloatArray) -> float:
    """Consecutive updates' correlation, where it is clearly positive; else 0.

    The spread of neighbours' differences sees ``σ² (1 − ρ)`` of updates that err
    together, and a sum of ``n`` such errors has ``n σ² (1 + 2ρ)``: a sampled counter's
    misreads of kernels of 10-40 ms, updating every 50 ms, correlate by ~0.2 (its 0.5 s
    windows were covered 74% taking them as independent). Counted only beyond two
    standard errors (``2 / sqrt(n)``) of at least 30 updates; negative ones are not used.
    """
    n = len(power_w)
    if n < 30:
        return 0.0
    # Around a running median: the load's own slow changes and steps are no misreads.
    x = power_w - _running_median(power_w)
    denom = float(np.dot(x, x))
    rho = float(np.dot(x[:-1], x[1:])) / denom if denom > 0 else 0.0
    return min(rho, 0.5) if rho > 2.0 / math.sqrt(n) else 0.0


def update_phase(tau: FloatArray, update_s: float, half_bracket_s: float) -> float:
    """Where a counter's updates fall, ``τ mod U`` of its recent anchors (s, in ``[0, U)``).

    Told only where the counter is read at least :data:`PHASE_READS` times per update
    (anchors then sit within half a sampling gap of the true update) and its last
    :data:`PHASE_ANCHORS` anchors agree (circular mean resultant at least
    :data:`PHASE_AGREE`: a counter whose updates drift or jitter has no one phase); NaN
    otherwise. Two devices' phases say whether their edges err together
    (:func:`greenai.windows.device_correlation`).
    """
    if update_s <= 0 or half_bracket_s * 2.0 * PHASE_READS > update_s:
        return math.nan
    recent = tau[-PHASE_ANCHORS:]
    if len(recent) < 4:
        return math.nan
    ref = float(recent[-1])
    angle = 2.0 * math.pi * ((recent - ref) % update_s) / update_s
    c, s = float(np.mean(np.cos(angle))), float(np.mean(np.sin(angle)))
    if math.hypot(c, s) < PHASE_AGREE:
        return math.nan
    offset = math.atan2(s, c) / (2.0 * math.pi) * update_s
    return float((ref + offset) % update_s)


def _fill_nan(values: FloatArray) -> FloatArray:
    ok = np.isfinite(values)
    if ok.all():
        return values
    idx = np.arange(len(values))
    return np.interp(idx, idx[ok], values[ok])


def _cumulative_trapezoid(t: FloatArray, p: FloatArray) -> FloatArray:
    if len(t) < 2:
        return np.zeros_like(t)
    return np.concatenate([[0.0], np.cumsum(np.diff(t) * (p[1:] + p[:-1]) / 2.0)])


def _median(values: FloatArray) -> float:
    """``np.median`` of a 1-d array, without its overhead (the same value, NaN included).

    Curves of a settling pass take several medians of a few hundred values each; numpy's
    general median costs several times the partition it does.
    """
    a = np.asarray(values, dtype=np.float64)
    n = len(a)
    if n == 0 or np.isnan(a).any():
        return float(np.median(a)) if n else math.nan
    half = n // 2
    if n % 2:
        return float(np.partition(a, half)[half])
    part = np.partition(a, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2.0)
