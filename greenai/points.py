"""What a window rule needs of an energy curve: the device, the curve's model, its points.

:class:`greenai.curve.EnergyCurve` builds these; :mod:`greenai.windows` turns them into
window energies and uncertainties. They live apart from both so the two never import each
other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from greenai.devices.base import Method

__all__ = ["POINT_COLUMNS", "SHORT_WINDOW_REL", "CurveModel", "DeviceSpec", "Points"]

FloatArray = npt.NDArray[np.float64]

SHORT_WINDOW_REL = 0.10
"""Extra relative uncertainty of integrated power in windows shorter than the update period
(on the H100, step-held instant power over 25 ms windows had a p95 error of 9.9%)."""


@dataclass(frozen=True)
class DeviceSpec:
    """What the timeline must know of a device to build its curve."""

    name: str
    kind: str
    method: Method
    update_period_s: float
    counter_resolution_j: float
    relative_uncertainty: float
    counter_integrates: bool | None = None
    """Whether the counter integrates every instant (True), adds up part-time power values
    (False), or nobody knows (None: the uncertainty covers a part-time counter)."""
    power_limit_w: float | None = None
    """The power the device cannot exceed (W), or None where not known."""
    power_window_s: float | None = None
    """How long each power value averages the load (s), or None where not known."""


SLOW_READS = 1.5
"""Counter segments longer than this many updates: the counter is read slower than it
updates, and each segment holds several updates (see :func:`reads_slower`)."""

SLOW_SOURCE_S = 0.05
"""Counters updating at least this slowly (GPUs, ~100 ms) set the default sampling period
(:func:`greenai.sampling.sampler.default_period_s`); faster ones (RAPL, ~1 ms) are read
slower than they update by design, and their rules stay as calibrated."""


def reads_slower(seg_s: float, update_s: float) -> bool:
    """Whether a slow source's counter is read slower than it updates (s, s)."""
    return update_s >= SLOW_SOURCE_S and seg_s > SLOW_READS * update_s


def bracket_share(half_bracket_s: float, seg_s: float, slow_reads: bool) -> float:
    """Half the anchors' bracket over the segment (a share, at most 0.5).

    0.5 where the counter is read slower than it updates (see
    :attr:`CurveModel.bracket_share`).
    """
    if slow_reads:
        return 0.5
    return min(half_bracket_s / max(seg_s, 1e-12), 0.5)


@dataclass(frozen=True)
class CurveModel:
    """What :func:`greenai.windows.device_windows` needs of a curve beyond its points.

    Attributes:
        half_bracket_s: Half the typical span in which a counter change happened (s).
        seg_scatter_j: Robust spread (J) of the load's energy from one counter update to the
            next (see :class:`greenai.curve.EnergyCurve`); 0 without a counter.
        jump_j: The largest recent change of one update's energy well beyond that spread
            (a load step), J; 0 without one.
        jump_rate: Such changes per update, recently.
        seg_s: Typical time between counter updates (s).
        varying: The load varies between updates by over
            :data:`greenai.curve.VARYING_REL` of an update's energy (robust spread); load
            steps alone (``jump_rate``) do not make it varying.
        locked: A loop whose period divides the update period was detected: the power
            shape cannot place energy inside an update (see :func:`locked_loop`).
        board_gain: Add the board's gain error (:data:`greenai.windows.BOARD_GAIN_REL`) as
            a shared part.
        part_time: The sensor may see only part of each update (a power value, or a counter
            not declared to integrate every instant): :func:`greenai.windows.sampling_j`
            applies.
        fallback: A counter device whose counter did not change in the stretch: the figure
            comes from power values alone.
        few_updates: Fewer than four counter updates and no job history: the uncertainty
            rests on the sensor model (:data:`greenai.curve.FEW_SEGMENTS_REL`), not on the
            load's own readings.
        max_power_w: The highest power the readings showed (W): the bound on what a load
            may draw between updates where the device declares no power limit.
        start_step_w: The load's step at the job's start (W; 0 without one): the first
            power value read (the load before the job) lies outside the job's own range,
            and where in the first update the step fell is unknown.
        end_step_w: The load's change into the update the job ended in (W; 0 without
            one): seen from the counter's first change after the end
            (:attr:`greenai.curve.EnergyCurve.end_step_w`); where in that update it fell
            is unknown.
        update_s: The counter's declared update period (s): segments longer than it are
            read slower than the counter updates.
        slow_reads: The counter is read slower than it updates (:func:`reads_slower` of
            its segments, and reads themselves over half an update apart).
        update_phase_s: Where the counter's updates fall, seconds in ``[0, update_s)`` of
            the clock (:func:`greenai.curve.update_phase`); NaN where not told (read once
            per update or slower, no counter, updates that drift).
        update_corr: How consecutive updates' energies correlate, where clearly positive
            (0 otherwise): a part-time sensor's misreads of neighbouring updates then err
            together (:func:`greenai.windows.sampling_j`).
        aliased: The power values read far off an integrating counter on a load that does
            not vary between updates: the sensor sees the same part of every update, so
            only the counter's bounds hold inside one
            (:meth:`greenai.curve.EnergyCurve._aliased_load`).
        aliased_per_update: Aliased, told from the power values missing whole segments
            update by update while agreeing with the counter over the stretch (a load
            whose pattern drifts through the updates), not from their totals.
        shape_rel: How far the power values' integral reads off the counter over the
            stretch (relative; positive where the counter reads more).
        read_beat_s: The read gap (s) where reads that do not divide the update period
            beat against the updates (30 or 40 ms reads of a 100 ms update): anchors are
            misplaced apart from one another, and the ± takes that as a bound; 0 otherwise.
        wraps_per_s: How often (per second, net) the anchors' shared lag wrapped by a
            read gap over the job so far: the GPU's clock running off the host's
            (:func:`greenai.windows.clock_j`).
        jitter_untold_s: A bound (s, one sd) on how far the counter's updates may jitter
            off their grid, which the ± takes where too few updates could tell it
            (:meth:`greenai.curve.EnergyCurve._jitter_untold`); 0 otherwise.
        scatter_n: How many regular segments ``seg_scatter_j`` was judged from (0: not
            told): a spread judged from few is less certain
            (:func:`greenai.windows.spread_estimate_factor`).
    """

    half_bracket_s: float = 0.0
    seg_scatter_j: float = 0.0
    jump_j: float = 0.0
    jump_rate: float = 0.0
    seg_s: float = 0.1
    varying: bool = False
    locked: bool = False
    board_gain: bool = False
    part_time: bool = True
    fallback: bool = False
    few_updates: bool = False
    max_power_w: float = 0.0
    start_step_w: float = 0.0
    end_step_w: float = 0.0
    update_s: float = 0.1
    update_corr: float = 0.0
    slow_reads: bool = False
    update_phase_s: float = math.nan
    aliased: bool = False
    aliased_per_update: bool = False
    shape_rel: float = 0.0
    read_beat_s: float = 0.0
    wraps_per_s: float = 0.0
    jitter_untold_s: float = 0.0
    scatter_n: int = 0

    @property
    def bracket_share(self) -> float:
        """Half the anchors' bracket over the segment, at most 0.5.

        0.5 read once per update, smaller read faster (anchors within half a sampling
        gap); 0.5 where a slow source is read slower than it updates (its segments'
        insides are no better known).
        """
        return bracket_share(self.half_bracket_s, self.seg_s, self.slow_reads)


POINT_COLUMNS = 7
"""Values :class:`Points` holds per time, in :meth:`Points.rows` order."""


@dataclass(frozen=True)
class Points:
    """Everything a window rule needs at a set of times, per time (arrays of one length).

    Attributes:
        c_j: Cumulative energy ``C(x)`` (J, an arbitrary but fixed origin).
        edge_j: About 95% uncertainty of ``C(x)`` (J) from where the edge falls between
            counter updates; 0 for power and model curves.
        seg_power_w: The counter's average power in the segment holding ``x`` (W).
        gap_j: Cumulative energy interpolated across read failures up to ``x`` (J).
        counter: Whether ``C`` came from counter anchors (else from integrated power).
        timing_j: Between two anchors, ``1.96 σ P`` of their own misplacement (J: updates
            that jitter, reads that beat; ``σ`` one anchor's, ``P`` the segment's power),
            of which ``edge_j`` holds the share ``√((1 − f)² + f²)`` at ``x`` (``f`` by
            time); 0 elsewhere or None. Two edges near each other share anchors, and
            :func:`greenai.windows.anchor_timing_j2` combines them exactly.
        anchor_lo_s: The time (s) of the anchor before ``x``, where ``timing_j`` is.
        anchor_hi_s: The time (s) of the anchor after ``x``, where ``timing_j`` is.
    """

    c_j: FloatArray
    edge_j: FloatArray
    seg_power_w: FloatArray
    gap_j: FloatArray
    counter: bool
    timing_j: FloatArray | None = None
    anchor_lo_s: FloatArray | None = None
    anchor_hi_s: FloatArray | None = None

    def rows(self) -> FloatArray:
        """The values as an ``(n, POINT_COLUMNS)`` array (:meth:`from_rows` reads it)."""
        n = len(self.c_j)
        nan = np.full(n, math.nan)
        return np.column_stack(
            [
                self.c_j,
                self.edge_j,
                self.seg_power_w,
                self.gap_j,
                np.zeros(n) if self.timing_j is None else self.timing_j,
                nan if self.anchor_lo_s is None else self.anchor_lo_s,
                nan if self.anchor_hi_s is None else self.anchor_hi_s,
            ]
        ).reshape(n, POINT_COLUMNS)

    @classmethod
    def from_rows(cls, rows: FloatArray, counter: bool) -> Points:
        """Points from an ``(n, POINT_COLUMNS)`` array of :meth:`rows`."""
        r = np.asarray(rows, dtype=np.float64).reshape(-1, POINT_COLUMNS)
        return cls(r[:, 0], r[:, 1], r[:, 2], r[:, 3], counter, r[:, 4], r[:, 5], r[:, 6])

    def take(self, index: npt.NDArray[np.intp] | slice) -> Points:
        """The points at ``index``."""
        return Points.from_rows(self.rows()[index], self.counter)
