"""Every rule that turns windows of a curve into figures and their uncertainties.

One module, so the tracker, the reports, the compression sweep, the pytest plugin and the
distributed aggregation agree (they used to restate these rules, and disagreed):

* **one device, one window** (:func:`device_windows`): energy ``C(b) - C(a)``; an
  *independent* part of the uncertainty (where each edge falls between counter updates,
  counter resolution, energy interpolated across read failures, short-window sampling) and
  a *shared* part (a model's or a power sensor's scale error, the same in every window of
  that device);
* **devices** (:func:`sum_devices`): shared parts linearly; independent parts linearly
  too (one load, updates that may fall together), except between devices read fast
  enough to tell that their counters update at phases apart (:func:`device_correlation`);
* **spans** of one phase or many windows: independent parts in quadrature, shared parts
  linearly (:class:`Spans`);
* **windows that tile** a stretch (steps) sum to the stretch: the sum's uncertainty is the
  stretch's own, not a combination of the tiles (interior edges cancel exactly);
* **per-unit figures** (J/step, J/sample, J/token, J/TFLOP): the total's value and
  uncertainty divided by the count (:func:`per_unit`);
* **two runs compared** (``greenai compare``): their errors taken as independent — relative
  uncertainties in quadrature for a ratio (:func:`ratio_with_uncertainty`), absolute ones
  for a difference (:func:`difference_with_uncertainty`);
* **repeats** of one measurement (sweeps, benchmark rounds, bench trials): the spread of
  the repeats and the measurement's own uncertainty in quadrature (:func:`with_spread`);
  repeats at shifted start offsets: their mean, and the spread as its Student-t 95%
  interval (:func:`across_offsets`).

Uncertainties are about 95% coverage, in joules.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from greenai.points import CurveModel, DeviceSpec, Points

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "BOARD_GAIN_REL",
    "CLOCK_REL",
    "WRAP_SHARE",
    "OffsetFigure",
    "Spans",
    "WindowParts",
    "across_offsets",
    "anchor_timing_j2",
    "clock_j",
    "compare_with_uncertainty",
    "device_correlation",
    "device_windows",
    "difference_with_uncertainty",
    "edge_j",
    "flat_outside_edge_j",
    "linear",
    "locked_swing_j",
    "one_change_j",
    "outside_edge_j",
    "part_time_edges_j",
    "per_unit",
    "power_only_span_s",
    "range_bound_j",
    "ratio_with_uncertainty",
    "spread_estimate_factor",
    "sum_devices",
    "t_quantile_975",
    "together_share",
    "with_spread",
]


@dataclass(frozen=True)
class WindowParts:
    """Energy and uncertainty parts of ``n`` windows (arrays of length ``n``, joules)."""

    energy_j: FloatArray
    independent_j: FloatArray
    shared_j: FloatArray

    @property
    def uncertainty_j(self) -> FloatArray:
        """Each window's own uncertainty: independent + shared (J)."""
        return np.asarray(self.independent_j + self.shared_j)

    def select(self, index: npt.NDArray[np.intp]) -> WindowParts:
        """The windows at ``index`` (an integer array)."""
        return WindowParts(self.energy_j[index], self.independent_j[index], self.shared_j[index])

    @classmethod
    def zeros(cls, n: int) -> WindowParts:
        """``n`` windows of no energy."""
        return cls(np.zeros(n), np.zeros(n), np.zeros(n))


BOARD_GAIN_REL = 0.05
"""Each board's steady gain error: about ±5% against an external meter on 70+ NVIDIA GPUs
(Yang, Adámek and Armour, "Accurate and Convenient Energy Measurements for GPUs", SC'24;
preprint arXiv:2312.02741). Shared: the same in every window of that board."""


CLOCK_REL = 8e-5
"""How far a GPU's counter updates may run from the reads' clock (relative, ~95%).

Reads are timed on the host's clock, the counter updates on the GPU's: two crystals, a
common tolerance ±50 ppm each (uniform), so their rates differ by up to 100 ppm, by 78 ppm
at 95% (the difference of two uniforms is triangular: ``100 (1 − √0.05)``). The anchors'
shared lag then is not quite shared: it drifts by the rate difference times the time
between two edges, and wraps by a read gap where it crosses a read (:func:`clock_j`
counts wraps). A counter updating every 100.01 ms
against 10 ms reads: 20 s steady 700 W jobs erred 1.4 J, 11x their ± (all missed); 10 s
windows 0 of 96 covered. The GPU run (``benchmarks/gpu_accuracy.py``) fits the counter's
period to the µs and says what the rate difference is on real hardware."""


def device_windows(
    spec: DeviceSpec,
    start: Points,
    end: Points,
    a: FloatArray,
    b: FloatArray,
    model: CurveModel | float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Energy (J), independent and shared uncertainty (J) of one device over ``[a, b]``.

    The independent part combines sources that err independently in quadrature (each a
    ~95% half-width): the two edges (:func:`edge_j`), counter quantisation, the counter's
    shared refresh lag across a power change, and part-time sampling (:func:`sampling_j`);
    a loop locked to the updates adds the counter's bracket linearly (a bound, not a
    spread). Power curves: part-time sampling as measured from the power values' own
    scatter, half the energy interpolated across read failures, and the sensor's scale
    error as the shared part. Each term's constant is checked by
    ``benchmarks/calibration.py`` (coverage 90–99%, median |error|/± 0.15–0.6 per regime).

    Args:
        spec: The device.
        start: The curve's values at the windows' starts ``a``.
        end: The curve's values at the windows' ends ``b``.
        a: Window starts (s).
        b: Window ends (s).
        model: The curve's :class:`~greenai.curve.CurveModel` (or, alone, the half-span in
            which a counter change is known to have happened, s).
    """
    if not isinstance(model, CurveModel):
        model = CurveModel(half_bracket_s=float(model))
    energy = np.maximum(end.c_j - start.c_j, 0.0)
    length = np.maximum(b - a, 1e-12)
    if start.counter and end.counter:
        independent = _counter_independent_j(spec, (start, end), (a, b), energy, model)
        shared = energy * BOARD_GAIN_REL if model.board_gain and spec.kind == "gpu" else 0.0
        return energy, independent, np.asarray(np.zeros_like(energy) + shared)
    return _power_windows(spec, start, end, energy, length, model)


def _counter_independent_j(
    spec: DeviceSpec,
    points: tuple[Points, Points],
    edges_s: tuple[FloatArray, FloatArray],
    energy: FloatArray,
    model: CurveModel,
) -> FloatArray:
    """The independent uncertainty (J) of counter windows (see :func:`device_windows`)."""
    start, end = points
    length = np.maximum(edges_s[1] - edges_s[0], 1e-12)
    res = 2.0 * spec.counter_resolution_j
    # The counter's refresh lags each read by an unknown but shared amount, uniform in
    # +-half-bracket (95%: 0.95 of it); it cancels on a steady load, not across a change.
    step_w = end.seg_power_w - start.seg_power_w
    shift = np.hypot(0.95 * model.half_bracket_s * np.abs(step_w), _shift_local_j(model, length))
    sampled = sampling_j(model, length, step_w) if model.part_time else 0.0
    if model.part_time and not model.varying:
        sampled = np.sqrt(np.square(sampled) + np.square(part_time_edges_j(model, length)))
    # On a load that does not vary between updates, two edges inside one update err
    # together (one smooth misplaced shape): see together_share. A varying load's shape
    # is its own at each edge (the factor read kernel-like loads' 25 ms windows 70%).
    together: FloatArray | float = 1.0
    if not model.varying and not model.aliased:
        together = np.sqrt(together_share(model, length))
    # The anchors' own misplacement, taken out of each edge and combined where the two
    # edges share anchors (anchor_timing_j2); the rest of each edge as before.
    timing_sq, own_a, own_b = anchor_timing_j2(start, end, *edges_s)
    rest_sq = np.maximum(start.edge_j**2 - own_a**2, 0.0)
    rest_sq = rest_sq + np.maximum(end.edge_j**2 - own_b**2, 0.0)
    edges_sq = rest_sq * together**2 + timing_sq
    if model.aliased:  # bounds on one periodic load inside every update: they add up
        edges_sq = (start.edge_j + end.edge_j) ** 2
    clock = clock_j(spec, model, energy, length)
    independent = np.sqrt(edges_sq + res**2 + shift**2 + np.square(sampled) + clock**2)
    independent = np.where(length < model.seg_s, INSIDE_ONE_UPDATE * independent, independent)
    if model.locked:
        # A loop locked to the updates: the power shape, seen at the same part of every
        # update, cannot place energy inside one. Only the bracket holds at each edge; on
        # a counter that may integrate, the curve's edges already hold only the counter's
        # bounds (EnergyCurve._judge_aliased), which do not shrink with the window.
        bracket = (start.seg_power_w + end.seg_power_w) * model.seg_s
        near = np.minimum(1.0, model.seg_s / length)
        independent = independent + bracket * near
        if model.part_time:
            independent = independent + locked_swing_j(spec, model, energy, length)
    return np.asarray(independent)


WRAP_SHARE = 0.05
"""A window holding a wrap of the anchors' shared lag with at least this chance (the job's
wraps per second × its length) carries the whole read gap (:func:`clock_j`)."""


def clock_j(
    spec: DeviceSpec, model: CurveModel, energy: FloatArray, length: FloatArray
) -> FloatArray | float:
    """What the GPU's clock running off the reads' moves between two edges (J, ~95%).

    The anchors' shared lag drifts by :data:`CLOCK_REL` of the time between the edges (or
    by what the job's wraps show, if faster), and by no more than a read gap (two half
    brackets) as the load's power: ``P × min(drift × length, gap)``. Where the lag wrapped
    (:attr:`~greenai.points.CurveModel.wraps_per_s`) often enough that the window may hold
    a wrap (:data:`WRAP_SHARE`), its edges are off by up to the whole gap. Only on GPUs
    (a CPU's counters keep the host's own time).
    """
    if spec.kind != "gpu":
        return 0.0
    gap = 2.0 * model.half_bracket_s
    drift = max(CLOCK_REL, model.wraps_per_s * gap)
    span = np.minimum(drift * length, gap)
    span = np.where(model.wraps_per_s * length >= WRAP_SHARE, gap, span)
    return np.asarray(energy / np.maximum(length, 1e-12) * span)


def _shift_local_j(model: CurveModel, length: FloatArray) -> FloatArray | float:
    """About 95% of what the counter's shared lag misplaces at a varying load's edges (J).

    The lag ``φ`` (uniform in ± half a bracket) moves each edge's energy by ``φ`` times the
    power drawn right there, not the segment's average: kernels of 10-40 ms read once per
    100 ms update moved 15 J across a 10 s window whose two segments averaged 411 and
    387 W (± 1.6 J), and such windows were 89% covered. The local powers at two edges
    differ like two updates' (the update-to-update spread, each), so ``φ (Pₐ − P_b)`` has
    a 95% point of 1.26 (``|U·Z|``, uniform × normal) × half bracket × √2 spread
    (:data:`SHIFT_LOCAL_QUANTILE`); over a window shorter than the half bracket the two
    stretches overlap, and the term shrinks with it. On a load that does not vary
    between updates the segments' powers say it all: 0.
    """
    if not model.varying or model.seg_s <= 0:
        return 0.0
    spread_w = model.seg_scatter_j / model.seg_s
    near = np.minimum(1.0, length / max(model.half_bracket_s, 1e-12))
    hb = model.half_bracket_s
    return np.asarray(SHIFT_LOCAL_QUANTILE * math.sqrt(2.0) * hb * spread_w * near)


def _power_windows(
    spec: DeviceSpec,
    start: Points,
    end: Points,
    energy: FloatArray,
    length: FloatArray,
    model: CurveModel,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Energy, independent and shared uncertainty (J) of power and model windows."""
    gap = np.maximum(end.gap_j - start.gap_j, 0.0)
    rel = spec.relative_uncertainty
    if model.board_gain and spec.kind == "gpu" and spec.method == "power":
        rel = max(rel, BOARD_GAIN_REL)  # the sensor's scale error is the board's gain
    if model.fallback:
        # A counter device whose counter did not change in the stretch: its figure comes
        # from a few part-time power values that cannot show the load inside an update.
        sampled = np.maximum(FALLBACK_REL * energy, sampling_j(model, length))
        # Up to the highest power read (the stop's tail included, and the sensor's own
        # error on it): the values read during a job shorter than one update may all be
        # from before it (a GPU idle until the job: 0.05 s 400 W jobs read 6 J for 20 J
        # with a ± of 4 J, 12-19% covered).
        highest_j = model.max_power_w * (1.0 + spec.relative_uncertainty) * length
        if spec.power_limit_w:
            # A load that varies inside the update may have drawn more than any value read
            # shows (kernels of 10-40 ms running before 20 ms jobs, values all read in
            # their gaps: 89% covered up to the highest value): the device's limit bounds it.
            highest_j = np.maximum(highest_j, spec.power_limit_w * length)
        sampled = np.maximum(sampled, highest_j - energy)
    elif spec.method == "power":
        sampled = sampling_j(model, power_only_span_s(length, model.seg_s))
    else:
        sampled = np.zeros_like(energy)
    independent = np.asarray(sampled + gap * 0.5)
    return energy, np.asarray(independent + np.zeros_like(energy)), energy * rel


SHIFT_LOCAL_QUANTILE = 1.26
"""The 95% point of ``|U·Z|`` with ``U`` uniform in ±1 and ``Z`` standard normal: a shared
lag uniform in ± half a bracket times a normal difference of local powers
(:func:`_shift_local_j`)."""

INSIDE_ONE_UPDATE = 0.9
"""A window shorter than one counter update keeps this share of its independent
uncertainty. Its two edges mostly sit in one segment, between the same two anchors, so
their errors are partly one error (a bridge's edges covary), not two independent ones; the
whole bridge covariance (``σ² Δf (1 − Δf)`` for edges ``Δf`` apart) overstates the credit
on a periodic load, whose edges a half-period apart err in opposite directions (square
30/30 ms, 25 ms windows at 10 ms reads, read 88.5% covered with it). Calibration
(``benchmarks/calibration.py --full``): without this, kernel-like loads' 25–50 ms windows
read once per update and steady sampled 25 ms windows were covered 99.2–99.6% (over the
band), with it 97.7–98.5%; the lowest sub-update case, held-out gh200 sampled 50 ms
windows, 91.5%."""

TOGETHER_FLOOR = 0.3
"""The least share of the two edges' squared error a short window keeps
(:func:`together_share`): at 0.25 the gpu_accuracy selftest's 25 ms windows were covered
94.5%, at 0.3 96.5% (the calibration suite's 98.3–98.8% at a median ratio of 0.19–0.21)."""


def anchor_timing_j2(
    start: Points, end: Points, a: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Squared 95% uncertainty (J²) of windows ``[a, b]`` from their anchors' own misplacement.

    Between two anchors misplaced by ``δₖ`` and ``δₖ₊₁`` (updates that jitter off their
    grid, reads that beat against them), ``C`` is off by ``P ((1 − f) δₖ + f δₖ₊₁)``
    (``f`` by time): each edge alone carries ``u √((1 − f)² + f²)`` with ``u = 1.96 σ P``
    (:attr:`~greenai.points.Points.timing_j`). Two edges between the same two anchors err
    by ``P (f_b − f_a) (δₖ₊₁ − δₖ)`` (a 25 ms window inside one 100 ms update keeps
    about an eighth of the two edges' squares, and steady 700 W 25 ms windows with updates
    jittering ± 2 ms read 100% covered at a median |error|/± of 0.095 taking them apart);
    edges in neighbouring segments share the anchor between them; further apart they
    err apart. Returns the windows' squared term and each edge's own part (J), which
    ``edge_j`` holds.
    """
    zero = np.zeros(np.shape(a))
    ua, ub = start.timing_j, end.timing_j
    lo_a, hi_a, lo_b, hi_b = start.anchor_lo_s, start.anchor_hi_s, end.anchor_lo_s, end.anchor_hi_s
    if ua is None or ub is None or lo_a is None or hi_a is None or lo_b is None or hi_b is None:
        return zero, zero, zero
    with np.errstate(invalid="ignore"):
        fa = np.nan_to_num(np.clip((a - lo_a) / np.maximum(hi_a - lo_a, 1e-12), 0.0, 1.0))
        fb = np.nan_to_num(np.clip((b - lo_b) / np.maximum(hi_b - lo_b, 1e-12), 0.0, 1.0))
        same = lo_a == lo_b  # (NaN: beyond the anchors, never the same)
        next_to = hi_a == lo_b
    own_a = ua * np.sqrt((1.0 - fa) ** 2 + fa**2)
    own_b = ub * np.sqrt((1.0 - fb) ** 2 + fb**2)
    apart = own_a**2 + own_b**2
    inside = 2.0 * (0.5 * (ua + ub) * (fb - fa)) ** 2
    shared = ((1.0 - fa) * ua) ** 2 + ((1.0 - fb) * ub - fa * ua) ** 2 + (fb * ub) ** 2
    return np.where(same, inside, np.where(next_to, shared, apart)), own_a, own_b


def together_share(model: CurveModel, length_s: FloatArray) -> FloatArray:
    """The share of two edges' squared error a window keeps on a steady load (0..1).

    Two edges inside one update err together: ``C`` between them follows one misplaced
    smooth shape, so the window's error grows with its length until the edges are far
    enough apart to err independently. That span is set by how sharply the anchors pin the
    shape: an update long when the counter is read once per update, about half of one when
    read much faster (anchors within half a sampling gap of the true update): the same
    ``0.5 + half-bracket / update`` that scales :data:`EDGE_SPREADS_STEADY`. A window keeps
    its length over that span, at least :data:`TOGETHER_FLOOR`. Calibration: with half an
    update's share as the floor, 25 ms windows of steady loads read once per 100 ms update
    were covered 99.2–100% at a median |error|/± of 0.14–0.16 (their errors grow with the
    window's length: 0.067 J rms at 25 ms, 0.17 J at 100 ms).
    """
    if model.slow_reads:
        # Read slower than the counter updates, a segment holds several updates and the
        # edges err together only when both lie in one segment (a share 1 - L/S of windows
        # of length L): steady loads' 0.5 s windows read every 1 s were covered 77% with
        # the credit of one segment for all.
        inside = np.clip(1.0 - length_s / max(model.seg_s, 1e-12), 0.0, 1.0)
        return np.asarray(np.clip(1.0 - inside**2, TOGETHER_FLOOR, 1.0))
    span = max(model.seg_s * (0.5 + model.bracket_share), 1e-12)
    return np.asarray(np.clip(length_s / span, TOGETHER_FLOOR, 1.0))


def locked_swing_j(
    spec: DeviceSpec, model: CurveModel, energy_j: FloatArray, length_s: FloatArray
) -> FloatArray:
    """How far a part-time counter can be off under a loop locked to its updates (J, a bound).

    It sees the same part of the loop in every update, so no reading shows what the load
    drew in the rest: the window's true mean power lies anywhere between 0 and the power
    bound (the device's declared limit, :attr:`DeviceSpec.power_limit_w`, else the highest
    power the readings showed, :attr:`CurveModel.max_power_w`). The error does not average
    out over updates (it is the same in each): the bound holds for the whole window.
    Calibration: such windows of 1–10 s were covered 0% of the time without it.
    """
    bound = spec.power_limit_w or model.max_power_w
    mean_w = energy_j / np.maximum(length_s, 1e-12)
    return np.asarray(np.maximum(bound - mean_w, mean_w) * length_s)


EDGE_SPREADS = 3.1
"""An edge inside a counter segment is off by about the segment residuals' robust spread
``σ`` × ``sqrt(f (1 − f))`` (a bridge pinned at both anchors); ~95%: this many times it.
Calibration: with 2.8, exact counters on kernel-like loads and square waves were covered
91–94% and 87–88% over 60 runs of fresh update phases (95–96% over the 8 runs they had
been tuned on); with 3.1, 93–99% and 90–91%."""

EDGE_READ_FASTER = 0.2
"""On a varying load, :data:`EDGE_SPREADS` shrinks by up to this share as the counter is
read faster than it updates (anchors placed within half a sampling gap): the factor is
``1 − 0.2 + 0.4 × half-bracket / update``, 1 at one read per update, 0.82 at 10 ms reads
of 100 ms updates. Calibration: square-wave and kernel loads read at 10 ms were covered
99–100% without it (median |error|/± 0.17–0.37), 93–98% with it."""

EDGE_SPREADS_STEADY = 2.0
""":data:`EDGE_SPREADS` on a load that does not vary between updates (``CurveModel.varying``
False), when the counter is read once per update: there the spread is mostly sensor noise,
which misplaces less energy inside an update than a varying load's spread does, and what
it does misplace follows where the anchors sit. Read faster, the anchors sit closer (half
the sampling gap): the factor scales by ``0.5 + half-bracket / update`` (1.1 at 10 ms
reads of 100 ms updates). Calibration: steady loads read 2× too wide without either."""

SAMPLING_SPREADS = 2.0
"""A part-time sensor's error over ``n`` updates: this many × the updates' robust spread ×
``sqrt(n)`` (~95% of a normal spread: each update's misread is about one spread).
Calibration: with 1.5, sampled counters' 10 s windows on random kernels were covered 78%
over eight seeds (the errors of one run's long windows share a sign: about two
independent figures per seed)."""

PART_TIME_BIAS = 0.1
"""On a load that varies between updates, a part-time sensor's misreads of one run share a
sign: their sum grows with the window, about this many update-to-update spreads per update
(calibration: sampled counters on random kernels read 3–6% off over 10–18 s windows, the
same sign all run long, a bias that ``sqrt(n)`` alone covered 78–88% of the time)."""

SAMPLING_SPREADS_STEADY = 0.7
""":data:`SAMPLING_SPREADS` on a load that does not vary between updates
(``CurveModel.varying`` False): there the update-to-update spread is mostly slow wander,
shared by the part an update's sensor sees and the part it misses, so it overstates what a
part-time sensor misses (calibration: steady loads on a sampled counter read 2–3× too wide
at 1–10 s with 1.5; the constant is now 2.0)."""

PART_TIME_EDGE_SPREADS = 1.2
"""A part-time counter on a steady load: each window edge's partial update is misread by
about this many update-to-update spreads, an error that does not grow with the window
(:func:`part_time_edges_j`)."""

PART_TIME_EDGE_UPDATES = 3.0
"""...reached in full by windows of this many updates; shorter ones keep their share (the
partial updates at their two edges err together)."""

FALLBACK_REL = 1.0
"""A counter device's window with no counter change (a job shorter than one update) rests
on one or two part-time power values: its ± is at least this share of its energy."""


def edge_j(
    delta_j: FloatArray,
    fraction: FloatArray,
    hard_only: npt.NDArray[np.bool_],
    sigma_j: float,
    shape_rel: float,
    spreads: float = EDGE_SPREADS,
    one_change_j: FloatArray | float = math.inf,
    range_bound_j: FloatArray | float = math.inf,
    hidden_j: float = 0.0,
) -> FloatArray:
    """About 95% uncertainty (J) of ``C`` at an edge inside a counter segment.

    Two bounds compete and the smaller holds: the *hard* one (the true value lies between
    the bracketing counter values: ``delta × max(f, 1 − f)``) and the *data-driven* one
    (``EDGE_SPREADS × σ × sqrt(f (1 − f))`` from how well the power shape predicted whole
    segments, plus ``shape_rel × delta × min(f, 1 − f)`` for a power shape that lags), which
    is at most ``one_change_j`` (:func:`one_change_j`: what one level change across the
    load's range can misplace). Only the hard bound holds where the shape cannot be trusted
    (``hard_only``: a segment next to a load change, or spanning read failures).

    Args:
        delta_j: The segment's counter delta (J).
        fraction: Where the edge lies in its segment, by energy (0..1).
        hard_only: Per edge: only the hard bound holds.
        sigma_j: Robust spread of the segments' residuals (J).
        shape_rel: Relative error of the power shape inside a segment.
        spreads: How many spreads make the ~95% bound (:data:`EDGE_SPREADS`, or
            :data:`EDGE_SPREADS_STEADY` on a load that does not vary between updates).
        one_change_j: Per edge, the most the data-driven term may be (J; no limit by
            default).
        range_bound_j: Per edge, the most it can be off on a load within the power range
            the readings show (:func:`range_bound_j`): the hard bound is no wider.
        hidden_j: How far a swing faster than the power values' window can put the edge
            off (J; ``EnergyCurve._hidden_swing_j``): the data-driven term is at least
            this, and the range bound no narrower.
    """
    f = np.asarray(fraction)
    hard = np.minimum(delta_j * np.maximum(f, 1.0 - f), np.maximum(range_bound_j, hidden_j))
    soft = spreads * sigma_j * np.sqrt(f * (1.0 - f)) + shape_rel * delta_j * np.minimum(f, 1.0 - f)
    soft = np.maximum(np.minimum(soft, one_change_j), hidden_j)
    return np.asarray(np.where(hard_only, hard, np.minimum(hard, soft)))


def one_change_j(
    seg_len_s: FloatArray,
    range_w: float,
    f_time: FloatArray,
    f_energy: FloatArray,
    delta_j: FloatArray,
) -> FloatArray:
    """The most an edge inside a counter segment can be off on a load within a power range (J).

    ``C`` between two anchors follows the power shape, scaled to the counter. Where that
    shape is flat (the counter read faster than the power value refreshes: one value per
    segment), an edge at time fraction ``f`` is off by ``f (1 − f) × L × (m₁ − m₂)``, with
    ``m₁`` and ``m₂`` the true mean power before and after it in the segment of length
    ``L``: at most ``f (1 − f) × L × range``, whatever the load does (one level change
    across the whole range at the edge). A shape that is not flat adds ``|f − f_energy| ×
    delta`` (where it puts the edge by energy rather than time). Given in the data-driven
    term's form, ``0.5 × sqrt(f (1 − f)) × L × range``, at least that bound. It is what
    sizes an edge on a load that changes level about once per update: there the
    update-to-update spread, sized for a bridge of many changes, read 40–120 ms kernels'
    windows (10 ms reads) 99.5–100% covered at a median |error|/± of 0.17–0.30; with this,
    their 0.5 and 5 s windows read 97.7–98.5% at 0.24–0.33, their 50 ms ones 99.6% at 0.43
    (benchmarks/calibration.py ``--full``).

    Args:
        seg_len_s: The segment's length (s).
        range_w: How far apart the highest and lowest power the load reaches are (W); the
            readings show a lower figure, so a load that spikes where no reading sees it
            is not bounded by it.
        f_time: Where the edge lies in its segment, by time (0..1).
        f_energy: Where ``C`` puts it, by the power shape's energy (0..1).
        delta_j: The segment's counter delta (J).
    """
    return _within_range(seg_len_s, range_w, f_time, f_energy, delta_j, bridge=True)


def range_bound_j(
    seg_len_s: FloatArray,
    range_w: float,
    f_time: FloatArray,
    f_energy: FloatArray,
    delta_j: FloatArray,
) -> FloatArray:
    """The most an edge inside a counter segment can be off on a load within a range (J).

    ``f (1 − f) × L × range + |f − f_energy| × delta``, whatever the load does inside.

    The worst load draws the range's top before the edge and its bottom after it (or the
    reverse), :func:`one_change_j`'s case without its data-driven form. It bounds segments
    where the power shape cannot be trusted (next to a load change): their bound was the
    whole segment's energy on the far side of the edge, which read 150/650 W loads stepping
    every 0.2–0.5 s (10 ms reads) 100% covered at a median |error|/± of 0.02–0.11. The
    anchors' own placement (within half a bracket) is not in it: the curve adds half a
    bracket × range (:meth:`greenai.curve.EnergyCurve._one_change`).

    Args:
        seg_len_s: The segment's length (s).
        range_w: How far apart the highest and lowest power the readings show are (W).
        f_time: Where the edge lies in its segment, by time (0..1).
        f_energy: Where ``C`` puts it, by the power shape's energy (0..1).
        delta_j: The segment's counter delta (J).
    """
    return _within_range(seg_len_s, range_w, f_time, f_energy, delta_j, bridge=False)


def _within_range(
    seg_len_s: FloatArray,
    range_w: float,
    f_time: FloatArray,
    f_energy: FloatArray,
    delta_j: FloatArray,
    *,
    bridge: bool,
) -> FloatArray:
    """Share × L × range, plus where the shape puts the edge against time (J).

    The share is :func:`one_change_j`'s 0.5 √(f (1 − f)) (``bridge``) or
    :func:`range_bound_j`'s f (1 − f).
    """
    f = np.clip(np.asarray(f_time, dtype=np.float64), 0.0, 1.0)
    if not math.isfinite(range_w):
        return np.full_like(f, math.inf)
    share = 0.5 * np.sqrt(f * (1.0 - f)) if bridge else f * (1.0 - f)
    off = np.abs(f - f_energy) * np.asarray(delta_j)
    return np.asarray(share * np.asarray(seg_len_s) * range_w + off)


_MAD_FACTOR = (
    (4, 2.92), (5, 2.66), (6, 1.95), (8, 1.61), (10, 1.45), (15, 1.28),
    (20, 1.20), (30, 1.13), (50, 1.07), (100, 1.04), (200, 1.015),
)  # fmt: skip
"""(n, factor): how much wider than 1.96 median absolute deviations a 95% interval for a
fresh normal error must be when the deviation was judged from ``n`` residuals (Monte Carlo,
10⁵ draws each; the MAD of a few values is far from sure, and even ``n`` is worse)."""


def spread_estimate_factor(n: int) -> float:
    """How much wider a ~95% interval is when its spread was judged from ``n`` residuals.

    The edge rule's spread is the median absolute deviation of the stretch's own residuals
    (with the job's history): from ten of them 1.96 of it covers a fresh normal error 87% of
    the time, not 95% (:data:`_MAD_FACTOR`: 1.45 from 10, 1.13 from 30, 1.015 from 200,
    interpolated; beyond 200, ``1 + 3/n``). Fewer than four residuals are not a spread
    (``curve.FEW_SEGMENTS_REL`` stands in): 1. With one fixed number of spreads, steady 1 s
    jobs were covered 95% and 3 s jobs 99.4% (512 jobs): a short job's spread is less
    certain, not smaller.
    """
    if n < 4:
        return 1.0
    if n > 200:
        return 1.0 + 3.0 / n
    ns, factors = zip(*_MAD_FACTOR, strict=True)
    return float(np.interp(n, ns, factors))


OUTSIDE_SPREADS = 1.0
"""An edge beyond the last anchor has no anchor on its far side: it errs more than one
bridged between two (calibration: 1 s jobs were covered 81–84% without this factor). It
was 1.7 before the spread's own uncertainty (:func:`spread_estimate_factor`, 1.45 from
the ten residuals of a 1 s job) was counted apart: 1.2 × 1.45 kept 1 s jobs about where
they were and brought 2–3 s ones from 98.4–99.4% to about 96%. Once the job's start split
the update holding it (``EnergyCurve._find_start_update``), only the end stretch was left
beyond an anchor, and 1.2 read steady 700 W jobs of 1 s at 10 ms reads 98.4% covered at a
median |error|/± of 0.132, 2 s GH200 ones 100% at 0.104; at 1.0, 95.3% at 0.174 and
100% at 0.130 (3.07 s ones 98.4% at 0.171, from 100% at 0.157)."""


def outside_edge_j(
    extrapolated_j: FloatArray,
    typical_j: float,
    sigma_j: float,
    spreads: float,
    scale_rel: float,
) -> FloatArray:
    """About 95% uncertainty (J) of ``C`` beyond the first or last counter anchor.

    There ``C`` extends the calibrated power shape over ``extrapolated_j``: it can misplace
    energy as it does inside a segment (:func:`edge_j`, with the fraction of a typical
    segment's energy it spans, growing linearly past one segment) and carries the power
    shape's calibration error against the counter (``scale_rel``). A job's first and last
    stretch are such edges: the declared 5% of instant power there made a steady 1 s job's
    ± about 15 times its error (benchmarks/calibration.py). Next to a load change the caller
    keeps the declared relative uncertainty instead (power values lag a change).

    Args:
        extrapolated_j: Energy between the edge and the nearest anchor (J, >= 0).
        typical_j: A typical segment's counter delta (J).
        sigma_j: Robust spread of the shape's misplacement (J), as for :func:`edge_j`.
        spreads: How many spreads make the ~95% bound.
        scale_rel: Relative calibration error of the power shape.
    """
    e = np.abs(np.asarray(extrapolated_j, dtype=np.float64))
    x = e / max(typical_j, 1e-12)
    shape = OUTSIDE_SPREADS * spreads * sigma_j * np.sqrt(np.minimum(x, 1.0)) * np.maximum(x, 1.0)
    return np.asarray(shape + scale_rel * e)


FLAT_OUTSIDE_SPREADS = 1.96
"""Spreads of the 95% bound of a flat shape's stretch beyond the last anchor (see
:func:`flat_outside_edge_j`): a normal quantile, times how unsure the spread is."""


def flat_outside_edge_j(
    extrapolated_j: FloatArray, typical_j: float, update_spread_j: float, estimated: float
) -> FloatArray:
    """About 95% uncertainty (J) of ``C`` beyond the first or last anchor of a flat shape.

    Where the power value refreshes no faster than the counter, a stretch beyond the last
    anchor is extrapolated at its neighbouring segment's average power (the counter's, see
    ``EnergyCurve._extrapolate``). Its error is the stretch's length times the difference of
    two averages: the stretch's own, over a fraction ``x`` of a segment, and the
    neighbour's. On a load that varies faster than the updates the first varies ``1/x``
    times as much as a segment's (``update_spread_j``, J), so the error's spread is
    ``update_spread_j × sqrt(x (1 + x))``; a load that varies slower errs less.

    Args:
        extrapolated_j: Energy between the edge and the nearest anchor (J, >= 0).
        typical_j: A typical segment's counter delta (J).
        update_spread_j: Robust spread of consecutive segments' energy (J).
        estimated: How unsure that spread is (:func:`spread_estimate_factor`).
    """
    x = np.abs(np.asarray(extrapolated_j, dtype=np.float64)) / max(typical_j, 1e-12)
    return np.asarray(FLAT_OUTSIDE_SPREADS * estimated * update_spread_j * np.sqrt(x * (1.0 + x)))


def power_only_span_s(length_s: FloatArray, update_s: float) -> FloatArray:
    """The span (s) whose sampling error a power-only window shorter than an update carries.

    A window inside one update of a power-only device is interpolated between two part-time
    values: it keeps about ``sqrt(its share)`` of an update's error, not its share (a
    varying load's shape inside the update is its own; calibration: kernel-like loads'
    25 ms windows were covered 83% with the share alone).
    """
    u = max(update_s, 1e-12)
    return np.asarray(np.where(length_s < u, np.sqrt(np.maximum(length_s, 0.0) * u), length_s))


def part_time_edges_j(model: CurveModel, length_s: FloatArray) -> FloatArray:
    """The two edges' error (J, ~95%) of a part-time counter on a steady load.

    The counter sees part of each update; a window's edges split two updates, whose parts
    inside the window the counter cannot see. The power shape between anchors is flat for a
    part-time sensor, so the counter's residuals show nothing of it: it is sized from the
    update-to-update spread (:attr:`CurveModel.seg_scatter_j`), per edge
    :data:`PART_TIME_EDGE_SPREADS` of it, reached over :data:`PART_TIME_EDGE_UPDATES`
    updates. Calibration: sampled counters' 1 s windows on steady loads were covered 80–85%
    with the sampling term alone, their 10 s windows 95%.
    """
    n = np.asarray(length_s, dtype=np.float64) / max(model.seg_s, 1e-12)
    share = np.minimum(n / PART_TIME_EDGE_UPDATES, 1.0)
    return np.asarray(math.sqrt(2.0) * PART_TIME_EDGE_SPREADS * model.seg_scatter_j * share)


def sampling_j(
    model: CurveModel, length_s: FloatArray, step_w: FloatArray | None = None
) -> FloatArray:
    """How far a part-time sensor can be off over windows (J, ~95%).

    Each update's delta is off by about the load's variation inside it
    (``model.seg_scatter_j``), independently from one update to the next, so ``n`` updates
    are off by ``sqrt(n)`` times that: relative to the window it shrinks as ``1/sqrt(n)``.
    A window shorter than one update takes its share of one update's error. A load step
    (``model.jump_j``) may sit anywhere in the update that holds it: a window that holds
    one gets the whole jump, times the steps it holds on average. Which windows hold one is
    known from ``step_w``, the change of the counter's segment power between the window's
    edges (W): over a quarter of the jump, a step lies inside. Without it (or for windows
    that hold a step on average, where up and down steps may cancel in ``step_w``), any
    window that holds a step with a probability over 5% (from the recent rate of steps)
    gets it: that rule alone made 1 s windows on a load stepping every 10 s claim about
    100× their error (benchmarks/calibration.py). An exact counter needs none of this
    (``model.part_time`` is False when the device declares it integrates every instant);
    where that is unknown it is there (Yang, Adámek and Armour, SC'24, arXiv:2312.02741;
    docs/accuracy.md).
    """
    n = np.maximum(np.asarray(length_s, dtype=np.float64), 0.0) / max(model.seg_s, 1e-12)
    spreads = SAMPLING_SPREADS if model.varying else SAMPLING_SPREADS_STEADY
    if model.varying and model.update_corr > 0:
        # Misreads of neighbouring updates err together (the load's states outlast the
        # gap between the sensor's windows): the differences' spread sees (1 - ρ) of
        # their variance, a sum of n of them n (1 + 2ρ).
        rho = model.update_corr
        spreads *= math.sqrt((1.0 + 2.0 * rho) / (1.0 - rho))
    # The spread is judged from the stretch's own segments: from few, less certain (a
    # sampled counter on kernels of 10-40 ms, 1 s jobs read every 100 ms: 87.5% covered).
    spreads *= spread_estimate_factor(model.scatter_n)
    spread = spreads * model.seg_scatter_j * np.where(n < 1.0, n, np.sqrt(n))
    if model.varying:  # a run's misreads share a sign: see PART_TIME_BIAS
        spread = np.hypot(spread, PART_TIME_BIAS * model.seg_scatter_j * n)
    held = model.jump_rate * n
    likely = held > 0.05
    if step_w is not None:
        inside = np.abs(step_w) * model.seg_s > 0.25 * model.jump_j
        likely = np.where(held >= 1.0, True, likely & inside)
    jumps = np.where(likely, model.jump_j * np.maximum(held, 1.0), 0.0)
    return np.asarray(np.sqrt(spread**2 + jumps**2))


def sum_devices(
    parts: Iterable[tuple[FloatArray, FloatArray, FloatArray]],
    n: int,
    correlation: npt.NDArray[np.float64] | None = None,
) -> WindowParts:
    """The windows' figures summed over devices.

    Shared parts (scale errors) add linearly. Independent parts add linearly too, unless
    ``correlation`` (devices × devices, in the order of ``parts``; see
    :func:`device_correlation`) says how far two devices' err together: then
    ``sqrt(iᵀ ρ i)`` per window.
    """
    energy, shared = np.zeros(n), np.zeros(n)
    independent: list[FloatArray] = []
    for e, i, s in parts:
        energy, shared = energy + e, shared + s
        independent.append(np.asarray(i, dtype=np.float64))
    if not independent:
        return WindowParts(energy, np.zeros(n), shared)
    stacked = np.vstack([np.broadcast_to(i, (n,)) for i in independent])
    if (
        correlation is None
        or len(independent) == 1
        or bool(np.all(correlation >= 1.0))
        or not bool(np.all(np.isfinite(stacked)))  # inf x 0 would read NaN
    ):
        return WindowParts(energy, np.asarray(stacked.sum(axis=0)), shared)
    combined = np.einsum("in,ij,jn->n", stacked, correlation, stacked)
    return WindowParts(energy, np.sqrt(np.maximum(combined, 0.0)), shared)


PHASE_SPAN_SLACKS = 2.0
"""Over how many of their phases' slack (each device's half bracket, added) two devices'
edge errors stop correlating, beyond the slack itself (:func:`device_correlation`)."""


def device_correlation(models: Sequence[CurveModel]) -> npt.NDArray[np.float64]:
    """How far devices' independent uncertainties err together (devices × devices, 0–1).

    A window's edge error is the energy the power shape misplaces between the edge and
    the counter update next to it. Two devices that update at one phase misplace the same
    stretch of the same load: their errors are one error and add linearly (8 GPUs in
    phase running the same kernels, read once per update: 58% covered in quadrature).
    Updating at phases further apart than the kernels' scale, they misplace different
    stretches (FakeGPUs on the same random kernels, read every 10 ms: the job errors'
    correlation is 1.0 in phase, 0.77 at 5 ms apart, 0.35 at 10 ms, ~0 from 20 ms). Read
    fast enough to tell each device's phase (:attr:`CurveModel.update_phase_s`), a pair
    whose phases lie ``d`` apart correlates by ``1 - (d - slack) / (2 slack)``, clipped to
    ``[0, 1]``, with ``slack`` their half brackets added (how far each phase can be off).
    Pairs whose phases are not told, or whose counters update at different periods, keep
    1: linear, the safe rule. So do devices under a loop locked to their updates
    (:attr:`CurveModel.locked`), and those whose load looks steady from update to update:
    a load periodic with the update misplaces the same energy inside every update whatever
    the phase, and looks steady where no step marks it (8 GPUs on a 50/50 ms square wave,
    phases spread over the update: their job errors were the linear sum's, 11 of 30 jobs
    missed in quadrature, 4 linearly). Loads seen to vary (or step) keep the phases' rule.
    """
    k = len(models)
    rho = np.ones((k, k))
    for i, j in itertools.combinations(range(k), 2):
        mi, mj = models[i], models[j]
        told = all(
            math.isfinite(v)
            for v in (mi.update_phase_s, mj.update_phase_s, mi.half_bracket_s, mj.half_bracket_s)
        )
        seen = all(m.varying or m.jump_rate > 0 for m in (mi, mj)) and not (mi.locked or mj.locked)
        if not told or mi.update_s <= 0 or not seen:
            continue  # a load locked to the updates errs alike at every phase
        if not math.isclose(mi.update_s, mj.update_s, rel_tol=1e-6):
            continue
        apart = abs(mi.update_phase_s - mj.update_phase_s) % mi.update_s
        apart = min(apart, mi.update_s - apart)
        slack = mi.half_bracket_s + mj.half_bracket_s
        span = PHASE_SPAN_SLACKS * slack
        rho[i, j] = rho[j, i] = min(max(1.0 - (apart - slack) / max(span, 1e-12), 0.0), 1.0)
    return rho


class Spans:
    """Running figures of many spans (a phase entered many times, benchmark rounds).

    Independent parts combine in quadrature, shared parts linearly, so 200 short spans do
    not claim ±50% on a well-measured job, and a model's ±50% does not average down.
    """

    def __init__(self) -> None:
        self.count = 0
        self.duration_s = 0.0
        self.energy_j = 0.0
        self._independent_sq = 0.0
        self._shared_j = 0.0

    def add(self, parts: WindowParts, duration_s: FloatArray) -> None:
        """Fold windows (already summed over devices) into the running figures."""
        if len(parts.energy_j) == 1:  # the common case, one span: plain floats are faster
            self.count += 1
            self.duration_s += float(duration_s[0])
            self.energy_j += float(parts.energy_j[0])
            self._independent_sq += float(parts.independent_j[0]) ** 2
            self._shared_j += float(parts.shared_j[0])
            return
        self.count += len(parts.energy_j)
        self.duration_s += float(np.sum(duration_s))
        self.energy_j += float(np.sum(parts.energy_j))
        self._independent_sq += float(np.sum(parts.independent_j**2))
        self._shared_j += float(np.sum(parts.shared_j))

    def merge(self, other: Spans) -> None:
        """Fold another set of spans in (same rules)."""
        self.count += other.count
        self.duration_s += other.duration_s
        self.energy_j += other.energy_j
        self._independent_sq += other._independent_sq
        self._shared_j += other._shared_j

    @property
    def uncertainty_j(self) -> float:
        """About 95% uncertainty of :attr:`energy_j` (J)."""
        return math.sqrt(self._independent_sq) + self._shared_j


def per_unit(
    total_j: float | None, uncertainty_j: float | None, count: float | None
) -> tuple[float | None, float | None]:
    """A per-unit figure and its uncertainty: the total's, divided by ``count``.

    Returns ``(None, None)`` without a total or a positive count.
    """
    if total_j is None or not count or count <= 0:
        return None, None
    return total_j / count, (None if uncertainty_j is None else uncertainty_j / count)


def linear(uncertainties: Iterable[float]) -> float:
    """Uncertainties of parts that may err together (devices, ranks): a plain sum (J)."""
    return math.fsum(uncertainties)


def ratio_with_uncertainty(
    a: float, a_uncertainty: float, b: float, b_uncertainty: float
) -> tuple[float, float]:
    """``b / a`` and its uncertainty, the two runs' errors taken as independent.

    Relative uncertainties add in quadrature: ``u(r)/r = sqrt((u_a/a)² + (u_b/b)²)``. Where
    both runs share a systematic error (one energy model on one machine), part of it cancels
    in the ratio and this is cautious.

    Raises:
        ValueError: ``a`` is zero (no ratio) or an uncertainty is negative.
    """
    if a == 0:
        raise ValueError("no ratio to a zero figure")
    if a_uncertainty < 0 or b_uncertainty < 0:
        raise ValueError("uncertainties are >= 0")
    r = b / a
    rel = math.hypot(a_uncertainty / a, b_uncertainty / b if b else 0.0)
    return r, abs(r) * rel


def difference_with_uncertainty(
    a: float, a_uncertainty: float, b: float, b_uncertainty: float
) -> tuple[float, float]:
    """``b − a`` and its uncertainty, independent errors in quadrature (``sqrt(u_a² + u_b²)``).

    Raises:
        ValueError: An uncertainty is negative.
    """
    if a_uncertainty < 0 or b_uncertainty < 0:
        raise ValueError("uncertainties are >= 0")
    return b - a, math.hypot(a_uncertainty, b_uncertainty)


def compare_with_uncertainty(
    a: float,
    a_uncertainty: float,
    b: float,
    b_uncertainty: float,
    *,
    shared_rel: float = 0.0,
) -> tuple[float, float, float, float]:
    """``b / a`` and ``b − a`` with their uncertainties, a shared scale error cancelling.

    Each side's uncertainty holds a relative scale error ``shared_rel`` that is the *same*
    error in both (one energy model on one machine, one power sensor on one board): it
    cancels in the ratio and scales only the difference, so it is not added twice. The rest
    of each side's uncertainty (``uncertainty − shared_rel × value``) is independent:
    relative parts in quadrature for the ratio, absolute ones for the difference. With
    ``shared_rel=0`` this is :func:`ratio_with_uncertainty` and
    :func:`difference_with_uncertainty`.

    Returns:
        ``(ratio, ratio_uncertainty, difference, difference_uncertainty)``.

    Raises:
        ValueError: ``a`` is zero, an uncertainty is negative, or ``shared_rel`` is.
    """
    if shared_rel < 0:
        raise ValueError("shared_rel is >= 0")
    ia = max(a_uncertainty - shared_rel * abs(a), 0.0)
    ib = max(b_uncertainty - shared_rel * abs(b), 0.0)
    r, ur = ratio_with_uncertainty(a, ia, b, ib)
    d, ud = difference_with_uncertainty(a, ia, b, ib)
    return r, ur, d, ud + shared_rel * abs(d)


def with_spread(uncertainty: float, spread: float) -> float:
    """A repeated measurement's uncertainty: its own and the repeats' spread in quadrature."""
    return math.hypot(uncertainty, spread)


@dataclass(frozen=True)
class OffsetFigure:
    """A figure measured several times at shifted start offsets (:func:`across_offsets`).

    Attributes:
        value: The mean of the repeats (J, or J per unit).
        uncertainty: About 95%: :attr:`spread` and the measurement's own, in quadrature.
        spread: The Student-t 95% half-interval of the mean from the repeats' scatter.
        repeats: How many repeats.
    """

    value: float
    uncertainty: float
    spread: float
    repeats: int


def across_offsets(values: Sequence[float], uncertainty: float) -> OffsetFigure:
    """Combine repeats of one figure measured at shifted start offsets.

    A region shorter than the sensor's update period is seen by a part-time sensor at one
    phase of its updates; repeating it at evenly spaced start offsets and averaging is the
    mitigation Yang, Adámek and Armour measured (SC'24, arXiv:2312.02741: 8 offsets, 4
    trials). How much the repeats disagree is the part of the error they can show: the
    mean's Student-t 95% interval, in quadrature with ``uncertainty`` (the measurement's
    own, from the energy curve, which an error shared by every repeat still needs).

    Args:
        values: The figure from each repeat (at least 1).
        uncertainty: The measurement's own ~95% uncertainty of the mean, same unit.
    """
    v = [float(x) for x in values]
    mean = math.fsum(v) / len(v)
    spread = 0.0
    if len(v) >= 2:
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (len(v) - 1))
        spread = t_quantile_975(len(v) - 1) * sd / math.sqrt(len(v))
    return OffsetFigure(mean, with_spread(uncertainty, spread), spread, len(v))


_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile (two-sided 95% interval) for ``df`` degrees of freedom."""
    if df < 1:
        return math.inf
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.96 + 2.4 / df  # within 0.002 of the exact value beyond 30
