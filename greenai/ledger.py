"""Online accounting: step and phase marks become figures as the timeline settles.

The tracker's hot path only records timestamps (:meth:`Ledger.step`, phase enter/exit). A
settling pass (:meth:`Ledger.settle`, run by the tracker's live thread every few seconds,
by :meth:`~greenai.Tracker.snapshot` and once more at stop) evaluates each mark exactly
once, when every device's curve is final past it, and folds the windows it closes into
running figures: per-step energies (kept for the whole job), per-phase aggregates, the
``(other)`` phase, idle power. Nothing is recomputed from the start of the job: a pass costs
what is new since the last one. Combination rules come from :mod:`greenai.windows`.
"""

from __future__ import annotations

import itertools
import math
import threading
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from greenai.curve import locked_loop
from greenai.points import CurveModel, Points
from greenai.timeline import Pass, Timeline
from greenai.windows import Spans, WindowParts, device_windows, sum_devices

OTHER_PHASE = "(other)"
"""The job's time outside every top-level phase."""

RECENT_SPANS = 5_000
"""Closed phase spans kept for plots (older spans live on only in their phase's figures)."""

LOOP_SPANS = 257
"""Recent spans of each top-level phase in which a lock to sensor updates is looked for
(:func:`~greenai.curve.locked_loop` uses the last 257)."""

Point = dict[str, tuple[float, float, float, float, bool]]
"""A curve's values at one time, per device: C, edge uncertainty, segment power, gap, counter."""


@dataclass
class OpenPhase:
    """A phase entered and not yet exited (on the caller's thread)."""

    path: str
    depth: int
    start: float
    point: Point | None = None
    end: float | None = None


@dataclass
class _Window:
    a: float
    b: float
    start: Point | None
    kind: str  # "step", "phase", "other"
    key: str = ""
    depth: int = 0
    end: Point | None = None


@dataclass
class DeviceTotals:
    """Running facts of one device inside the job."""

    peak_power_w: float = -math.inf
    samples: int = 0


@dataclass
class Ledger:
    """The running figures of one tracked job."""

    timeline: Timeline
    t_baseline: float = 0.0
    t0: float = 0.0
    baseline: bool = False
    steps: deque[float] = field(default_factory=deque)
    closed: deque[OpenPhase] = field(default_factory=deque)
    open_phases: list[OpenPhase] = field(default_factory=list)
    step_energy_j: array[float] = field(default_factory=lambda: array("d"))
    step_uncertainty_j: array[float] = field(default_factory=lambda: array("d"))
    step_duration_s: array[float] = field(default_factory=lambda: array("d"))
    phases: dict[str, Spans] = field(default_factory=dict)
    device_phases: dict[str, dict[str, Spans]] = field(default_factory=dict)
    other: Spans = field(default_factory=Spans)
    recent_spans: deque[tuple[str, int, float, float]] = field(
        default_factory=lambda: deque(maxlen=RECENT_SPANS)
    )
    spans_seen: int = 0
    loop_starts: dict[str, deque[float]] = field(default_factory=dict)
    """Per top-level phase, the start times (clock s) of its last settled spans."""
    t0_point: Point | None = None
    baseline_point: Point | None = None
    models: dict[str, CurveModel] = field(default_factory=dict)
    board_gain: bool = False
    locked_s: dict[str, float] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _prev_step: tuple[float, Point | None] | None = None
    _cursor: tuple[float, Point | None] | None = None
    _pending: list[_Window] = field(default_factory=list)
    _last_pass: Any = None
    steps_done: int = 0
    peak_total_w: float = -math.inf

    def last_step_point(self) -> tuple[float, Point] | None:
        """The last settled step's time and curve values (None before the first)."""
        if self._prev_step is None or self._prev_step[1] is None or not self.steps_done:
            return None
        return self._prev_step[0], self._prev_step[1]

    def begin(self, t_baseline: float, t0: float, baseline: bool) -> None:
        """Set the job's start (and the baseline's) on the clock."""
        self.t_baseline, self.t0, self.baseline = t_baseline, t0, baseline
        self._prev_step = (t0, None)
        self._cursor = (t0, None)

    # --- settling ------------------------------------------------------------------------
    def settle(self, now_s: float, *, final: bool = False, t1: float | None = None) -> Pass:
        """Evaluate every mark the curves are final past; close the windows they end.

        Returns the pass, still open: the caller may evaluate live points on it, then must
        call :meth:`Pass.commit`.
        """
        with self.lock:
            p = self.timeline.begin(now_s, final=final)
            try:
                self._settle(p, t1)
            except BaseException:
                p.commit()
                raise
            return p

    def _settle(self, p: Pass, t1: float | None) -> None:
        H = p.horizon_s
        self._find_locked_loops()
        for name, curve in p.curves.items():
            self.models[name] = replace(
                curve.model, board_gain=self.board_gain, locked=name in self.locked_s
            )
        # Move marks the caller made into windows (timestamps only, taken in order).
        while self.steps and self.steps[0] <= H:
            b = self.steps.popleft()
            assert self._prev_step is not None
            a, start = self._prev_step
            self._pending.append(_Window(a, b, start, "step"))
            self._prev_step = (b, None)  # its point is filled in below
        while self.closed and (self.closed[0].end or 0.0) <= H:
            ph = self.closed.popleft()
            assert ph.end is not None
            self._pending.append(_Window(ph.start, ph.end, ph.point, "phase", ph.path, ph.depth))
            if ph.depth == 0:
                assert self._cursor is not None
                c_t, c_point = self._cursor
                if ph.start > c_t:  # ends where the phase starts: the very same point
                    self._pending.append(_Window(c_t, ph.start, c_point, "other", end=ph.point))
                self._cursor = (max(c_t, ph.end), None)
        if t1 is not None:  # the final pass: the job's end closes (other)
            assert self._cursor is not None
            c_t, c_point = self._cursor
            if t1 > c_t:
                self._pending.append(_Window(c_t, t1, c_point, "other"))
            self._cursor = (t1, None)
        # Every time that needs a point now, evaluated at once.
        need: list[float] = []
        if self.t0_point is None and self.t0 <= H:
            need.append(self.t0)
        if self.baseline and self.baseline_point is None and self.t_baseline <= H:
            need.append(self.t_baseline)
        for w in self._pending:
            if w.start is None:
                need.append(w.a)
            if w.end is None:
                need.append(w.b)
        # A time is evaluated once, in the first pass that settles it, and every window
        # edge there shares that point: a later pass's curve starts after it and would only
        # extrapolate (at a 10 ms period its margin is shorter than one counter update).
        unsettled = [
            ph
            for ph in itertools.chain(self.open_phases, self.closed)
            if ph.point is None and ph.start <= H
        ]
        need.extend(ph.start for ph in unsettled)
        if not p.curves:
            self._close_without_energy()
            return
        if not need:
            return
        xs = np.asarray(need, dtype=np.float64)
        at = p.points(xs)
        lookup = {x: i for i, x in enumerate(need)}

        def point(x: float) -> Point:
            i = lookup[x]
            return {
                name: (
                    float(v.c_j[i]),
                    float(v.edge_j[i]),
                    float(v.seg_power_w[i]),
                    float(v.gap_j[i]),
                    v.counter,
                )
                for name, v in at.items()
            }

        if self.t0_point is None and self.t0 in lookup:
            self.t0_point = point(self.t0)
            self.timeline.set_origins({n: v[0] for n, v in self.t0_point.items()})
        if self.baseline and self.baseline_point is None and self.t_baseline in lookup:
            self.baseline_point = point(self.t_baseline)
        for ph in unsettled:
            ph.point = point(ph.start)
        starts = [w.start if w.start is not None else point(w.a) for w in self._pending]
        ends = [w.end if w.end is not None else point(w.b) for w in self._pending]
        self._fold(self._pending, starts, ends)
        # The last step's and the cursor's points, for the next windows.
        if self._prev_step is not None and self._prev_step[1] is None:
            t = self._prev_step[0]
            if t in lookup:
                self._prev_step = (t, point(t))
        if self._cursor is not None and self._cursor[1] is None and self._cursor[0] in lookup:
            self._cursor = (self._cursor[0], point(self._cursor[0]))
        self._pending = []

    def _find_locked_loops(self) -> None:
        """Mark counter devices whose sensor updates a step or phase loop is locked to."""
        todo = [
            (name, track)
            for name, track in self.timeline.tracks.items()
            if name not in self.locked_s and track.spec.method == "counter"
        ]
        if not todo:
            return
        loops = []
        settled = np.empty(0)
        if self._prev_step is not None and len(self.step_duration_s):
            d = np.asarray(self.step_duration_s[-256:])[::-1]
            settled = self._prev_step[0] - np.concatenate([[0.0], np.cumsum(d)])[::-1]
        pending = list(itertools.islice(reversed(self.steps), 257))[::-1]
        steps = np.concatenate([settled, np.asarray(pending, dtype=float)])
        if len(steps) >= 9:
            loops.append(steps[-257:])
        starts = {key: list(v) for key, v in self.loop_starts.items()}  # settled
        for ph in itertools.islice(reversed(self.closed), 1024):  # closed, not settled yet
            if ph.depth == 0:
                starts.setdefault(ph.path, []).append(ph.start)
        loops += [np.sort(np.asarray(v)) for v in starts.values() if len(v) >= 9]
        if not loops:
            return
        for name, track in todo:
            for times in loops:
                period = locked_loop(times, track.spec.update_period_s)
                if period is not None:
                    self.locked_s[name] = period
                    track.stats.locked_period_s = period
                    break

    def _close_without_energy(self) -> None:
        self._fold_parts(self._pending, {}, WindowParts.zeros(len(self._pending)), measured=False)
        self._pending = []

    def _fold(self, windows: list[_Window], starts: list[Point], ends: list[Point]) -> None:
        if not windows:
            return
        a, b = [w.a for w in windows], [w.b for w in windows]
        per_device = self.parts_by_device(starts, ends, a, b)
        total = sum_devices(
            ((d.energy_j, d.independent_j, d.shared_j) for d in per_device.values()), len(a)
        )
        self._fold_parts(windows, per_device, total)

    def _fold_parts(
        self,
        windows: list[_Window],
        per_device: dict[str, WindowParts],
        total: WindowParts,
        *,
        measured: bool = True,
    ) -> None:
        """Fold the figures of ``windows`` (per device and summed) into the running ones.

        Unmeasured windows (no device had a curve yet) count their time; their steps' energy
        is NaN.
        """
        a, b = [w.a for w in windows], [w.b for w in windows]
        # Windows of one kind and phase fold together (a pass closes hundreds of windows on
        # many devices: one numpy call per group, not a Python call per window and device).
        duration = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, w in enumerate(windows):
            groups.setdefault((w.kind, w.key), []).append(i)
            if w.kind == "phase":
                self.recent_spans.append((w.key, w.depth, w.a - self.t0, w.b - self.t0))
                self.spans_seen += 1
                if w.depth == 0:
                    self.loop_starts.setdefault(w.key, deque(maxlen=LOOP_SPANS)).append(w.a)
        for (kind, key), members in groups.items():
            idx = np.asarray(members, dtype=np.intp)
            if kind == "step":  # in order: windows are folded in the order they closed
                self.steps_done += len(members)
                self.step_duration_s.extend(duration[idx].tolist())
                if measured:
                    self.step_energy_j.extend(total.energy_j[idx].tolist())
                    self.step_uncertainty_j.extend(total.uncertainty_j[idx].tolist())
                else:  # no device had a reading yet: not measured, and aligned with the steps
                    self.step_energy_j.extend([math.nan] * len(members))
                    self.step_uncertainty_j.extend([math.nan] * len(members))
                continue
            name = OTHER_PHASE if kind == "other" else key
            spans = self.other if kind == "other" else self.phases.setdefault(name, Spans())
            spans.add(total.select(idx), duration[idx])
            for device, parts in per_device.items():
                self.device_phases.setdefault(device, {}).setdefault(name, Spans()).add(
                    parts.select(idx), duration[idx]
                )

    def parts_by_device(
        self, starts: list[Point], ends: list[Point], a: list[float], b: list[float]
    ) -> dict[str, WindowParts]:
        """Figures of windows ``[a_i, b_i]`` from their end points, per device."""
        n = len(a)
        names = [name for name in ends[0] if all(name in s for s in starts)] if n else []
        out = {}
        av, bv = np.asarray(a, float), np.asarray(b, float)
        for name in names:
            spec = self.timeline.tracks[name].spec
            sa = _points([s[name] for s in starts])
            sb = _points([e[name] for e in ends])
            e, i, sh = device_windows(spec, sa, sb, av, bv, self.models.get(name, 0.0))
            out[name] = WindowParts(e, i, sh)
        return out

    def parts(
        self, starts: list[Point], ends: list[Point], a: list[float], b: list[float]
    ) -> WindowParts:
        """Figures of windows ``[a_i, b_i]`` from their end points, summed over devices."""
        per_device = self.parts_by_device(starts, ends, a, b)
        return sum_devices(
            ((d.energy_j, d.independent_j, d.shared_j) for d in per_device.values()), len(a)
        )


def _points(rows: list[tuple[float, float, float, float, bool]]) -> Points:
    arr = np.asarray([r[:4] for r in rows], dtype=np.float64).reshape(-1, 4)
    counter = all(r[4] for r in rows)
    return Points(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], counter)


def point_at(p: Pass, x: float) -> Point:
    """The curve values at one (possibly unsettled) time ``x``, per device."""
    at = p.points(np.array([x]))
    return {
        name: (float(v.c_j[0]), float(v.edge_j[0]), float(v.seg_power_w[0]), float(v.gap_j[0]),
               v.counter)
        for name, v in at.items()
    }  # fmt: skip
