"""Online accounting: step and phase marks become figures as the timeline settles.

The tracker's hot path only records timestamps (:meth:`Ledger.step`, phase enter/exit). A
settling pass (:meth:`Ledger.settle`, run by the tracker's live thread every few seconds,
by :meth:`~greenai.Tracker.snapshot` and once more at stop) evaluates each mark exactly
once, in the first pass whose curves are final past it, and folds the windows it closes into
running figures: per-step energies (kept for the whole job), per-phase aggregates, the
``(other)`` phase, idle power. Every window that starts or ends at a mark uses that one
value, so phases, their children, ``(other)`` and steps add up exactly. Nothing is
recomputed from the start of the job: a pass costs what is new since the last one, and its
windows are evaluated over arrays (:mod:`greenai.edges`). Combination rules come from
:mod:`greenai.windows`.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from greenai.curve import locked_loop
from greenai.edges import Edges, Point, StepSeries, Table
from greenai.points import CurveModel, Points
from greenai.timeline import Pass, Timeline
from greenai.windows import (
    Spans,
    WindowParts,
    device_correlation,
    device_windows,
    sum_devices,
)

__all__ = ["OTHER_PHASE", "Ledger", "OpenPhase", "Point", "point_at"]

FloatArray = npt.NDArray[np.float64]

OTHER_PHASE = "(other)"
"""The job's time outside every top-level phase."""

_APART = "\0apart"
"""The key of windows cut out of steps (spans of phases out of steps inside a step)."""

RECENT_SPANS = 5_000
"""Closed phase spans kept for plots (older spans live on only in their phase's figures)."""

LOOP_SPANS = 257
"""Recent spans of each top-level phase in which a lock to sensor updates is looked for
(:func:`~greenai.curve.locked_loop` uses the last 257)."""


@dataclass
class OpenPhase:
    """A phase entered and not yet exited (on the caller's thread)."""

    path: str
    depth: int
    start: float
    point: Point | None = None
    end: float | None = None
    in_steps: bool = True
    """False: the phase's span is kept out of step energy (``phase(name, in_steps=False)``)."""
    end_point: Point | None = None
    """The curve values at ``end`` (kept for phases out of steps: a later step's edge)."""


@dataclass
class _Closing:
    """The windows a pass closes, as edge indices (see :class:`~greenai.edges.Edges`)."""

    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    ia: list[int] = field(default_factory=list)
    ib: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # phase path, OTHER_PHASE, or _APART
    steps: int = 0  # steps closed by the pass
    pieces: int = 0  # the first ``pieces`` windows are (parts of) those steps
    step_of: list[int] | None = None  # each piece's step; None: piece ``k`` is step ``k``
    step_s: list[float] = field(default_factory=list)  # each step's duration (s), if cut
    marks: list[tuple[OpenPhase, int, int]] = field(default_factory=list)
    """Phases out of steps closed by the pass, with their start and end edges."""

    def add(self, a: float, b: float, ia: int, ib: int, key: str) -> None:
        self.a.append(a)
        self.b.append(b)
        self.ia.append(ia)
        self.ib.append(ib)
        self.keys.append(key)


@dataclass
class Ledger:
    """The running figures of one tracked job."""

    timeline: Timeline
    t_baseline: float = 0.0
    t0: float = 0.0
    baseline: bool = False
    steps: deque[float] = field(default_factory=deque)
    apart: deque[OpenPhase] = field(default_factory=deque)
    """Outermost phases out of steps (``in_steps=False``), in order, until steps pass them."""
    apart_paths: set[str] = field(default_factory=set)
    """The phases opened with ``in_steps=False`` (their paths)."""
    apart_spans: Spans = field(default_factory=Spans)
    """The time cut out of settled steps: Σ steps + this = ``[t0, last step]``, exactly."""
    closed: deque[OpenPhase] = field(default_factory=deque)
    open_phases: list[OpenPhase] = field(default_factory=list)
    step_series: StepSeries = field(default_factory=StepSeries)
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
    first_phased: dict[str, CurveModel] = field(default_factory=dict)
    """Per device, the first model that told its update phase: the job's start edge errs
    with the phases then (:meth:`correlation`)."""
    board_gain: bool = False
    locked_s: dict[str, float] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _prev_step: tuple[float, Point | None] | None = None
    _cursor: tuple[float, Point | None] | None = None
    steps_done: int = 0

    @property
    def step_energy_j(self) -> list[float]:
        """Each settled step's energy (J; NaN: settled before any device was read)."""
        return self.step_series.energy_j().tolist()  # type: ignore[no-any-return]

    @property
    def step_uncertainty_j(self) -> list[float]:
        """Each settled step's ~95% uncertainty (J)."""
        return self.step_series.uncertainty_j().tolist()  # type: ignore[no-any-return]

    @property
    def step_duration_s(self) -> list[float]:
        """Each settled step's duration (s)."""
        return self.step_series.duration_s().tolist()  # type: ignore[no-any-return]

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
            p = self.timeline.begin(now_s, final=final, end_s=t1 if final else None)
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
            seen = self.models.get(name)  # a step at the start is seen by the first pass only
            # a sensor seen to alias the load stays so (a last stretch of few updates can't tell)
            was = seen if seen is not None and seen.aliased and not curve.model.aliased else None
            self.models[name] = replace(
                curve.model,
                board_gain=self.board_gain,
                locked=name in self.locked_s,
                start_step_w=max(curve.model.start_step_w, seen.start_step_w if seen else 0.0),
                aliased=curve.model.aliased or was is not None,
                shape_rel=was.shape_rel if was is not None else curve.model.shape_rel,
                aliased_per_update=(was or curve.model).aliased_per_update,
            )
            if name not in self.first_phased and math.isfinite(curve.model.update_phase_s):
                self.first_phased[name] = self.models[name]
        # A mark is evaluated once, in the first pass whose horizon passes it, and every
        # window edge at it shares that value: a later pass's curve starts after it and
        # would only extrapolate (at a 10 ms period its margin is under one counter update).
        edges, windows = Edges(), _Closing()
        steps, (prev_t, prev) = self._close_steps(H, edges, windows)
        c_t, cursor = self._close_phases(H, t1, edges, windows)
        t0 = edges.at(self.t0) if self.t0_point is None and self.t0 <= H else None
        due = self.baseline and self.baseline_point is None and self.t_baseline <= H
        base = edges.at(self.t_baseline) if due else None
        unsettled = [
            ph
            for ph in itertools.chain(self.open_phases, self.closed)
            if ph.point is None and ph.start <= H
        ]
        starts = [edges.at(ph.start) for ph in unsettled]
        if not p.curves:  # nothing measured yet: marks keep no point, a later pass has them
            self._fold_unmeasured(windows)
            assert self._cursor is not None
            if steps:
                self._prev_step = (prev_t, None)
            if c_t != self._cursor[0]:
                self._cursor = (c_t, None)
            return
        if not edges.times:
            return
        table = Table(p, edges)
        if t0 is not None:
            self.t0_point = table.point(t0)
            self.timeline.set_origins({n: v[0][0] for n, v in self.t0_point.items()})
        if base is not None:
            self.baseline_point = table.point(base)
        for ph, i in zip(unsettled, starts, strict=True):
            ph.point = table.point(i)
        if windows.a:
            self._fold(table, windows)
        self._keep_points(table, windows, prev_t, prev, c_t, cursor)

    def _keep_points(
        self,
        table: Table,
        windows: _Closing,
        prev_t: float,
        prev: int | None,
        c_t: float,
        cursor: int | None,
    ) -> None:
        """Keep the values at the edges a later pass starts from (last step, cursor, spans)."""
        for ph, start, end in windows.marks:  # a later step may end or start at their edges
            ph.point = ph.point or table.point(start)
            ph.end_point = table.point(end)
        assert self._prev_step is not None and self._cursor is not None
        keep = self._prev_step[1] if prev is not None and prev < 0 else None
        self._prev_step = (prev_t, keep or (table.point(prev) if prev is not None else None))
        keep = self._cursor[1] if cursor is not None and cursor < 0 else None
        self._cursor = (c_t, keep or (table.point(cursor) if cursor is not None else None))

    def _close_steps(
        self, H: float, edges: Edges, windows: _Closing
    ) -> tuple[int, tuple[float, int | None]]:
        """Close the steps settled by ``H``; how many, and the last step's time and edge."""
        assert self._prev_step is not None
        prev_t, prev_point = self._prev_step
        prev = edges.edge(prev_t, prev_point) if prev_point is not None or prev_t <= H else None
        steps = []
        while self.steps and self.steps[0] <= H:
            steps.append(self.steps.popleft())
        if not steps:
            return 0, (prev_t, prev)
        # They tile [previous step, last one]: each ends where the next starts.
        assert prev is not None
        ends = edges.span(steps)
        windows.steps = len(steps)
        if self.apart and self.apart[0].start < steps[-1]:
            self._cut_steps([(prev_t, prev), *zip(steps, ends, strict=True)], edges, windows)
            return len(steps), (steps[-1], ends[-1])
        windows.a.extend([prev_t, *steps[:-1]])
        windows.b.extend(steps)
        windows.ia.extend([prev, *ends[:-1]])
        windows.ib.extend(ends)
        windows.keys.extend([""] * len(steps))
        windows.pieces = len(steps)
        return len(steps), (steps[-1], ends[-1])

    def _cut_steps(self, bounds: list[tuple[float, int]], edges: Edges, windows: _Closing) -> None:
        """Step windows less the spans of phases out of steps: pieces that tile the rest.

        ``bounds`` are the steps' edges (time and edge index), the previous step's first.
        Each cut-out part becomes an :data:`_APART` window after the pieces, so pieces and
        parts tile the steps' span exactly.
        """
        apart, j, cut, step_of = list(self.apart), 0, _Closing(), []
        for k in range(len(bounds) - 1):
            (t, i), (b, ib) = bounds[k], bounds[k + 1]
            windows.step_s.append(b - t)
            while j < len(apart) and apart[j].start < b:
                ph = apart[j]
                if ph.end is not None and ph.end <= t:
                    j += 1
                    continue
                if ph.start > t:
                    s = edges.edge(ph.start, ph.point)
                    windows.add(t, ph.start, i, s, "")
                    step_of.append(k)
                    t, i = ph.start, s
                if ph.end is None or ph.end >= b:  # it runs on into the next step
                    cut.add(t, b, i, ib, _APART)
                    t, i = b, ib
                    break
                e = edges.edge(ph.end, ph.end_point)
                cut.add(t, ph.end, i, e, _APART)
                t, i, j = ph.end, e, j + 1
            if t < b:
                windows.add(t, b, i, ib, "")
                step_of.append(k)
        windows.pieces, windows.step_of = len(step_of), step_of
        for t, b, i, ib, key in zip(cut.a, cut.b, cut.ia, cut.ib, cut.keys, strict=True):
            windows.add(t, b, i, ib, key)
        last = bounds[-1][0]
        while self.apart and (self.apart[0].end or math.inf) <= last:
            self.apart.popleft()

    def _close_phases(
        self, H: float, t1: float | None, edges: Edges, windows: _Closing
    ) -> tuple[float, int | None]:
        """Close the phases settled by ``H`` and the ``(other)`` gaps between top-level ones.

        On the final pass the job's end ``t1`` closes the last gap. Returns the cursor (the
        end of the last top-level phase, or ``t1``): its time and edge.
        """
        assert self._cursor is not None
        c_t, c_point = self._cursor
        cursor = edges.edge(c_t, c_point) if c_point is not None or c_t <= H else None
        while self.closed and (self.closed[0].end or 0.0) <= H:
            ph = self.closed.popleft()
            assert ph.end is not None
            self.spans_seen += 1
            self.recent_spans.append((ph.path, ph.depth, ph.start - self.t0, ph.end - self.t0))
            start, end = edges.edge(ph.start, ph.point), edges.at(ph.end)
            windows.add(ph.start, ph.end, start, end, ph.path)
            if not ph.in_steps:
                windows.marks.append((ph, start, end))
                self.apart_paths.add(ph.path)
            if ph.depth:
                continue
            self.loop_starts.setdefault(ph.path, deque(maxlen=LOOP_SPANS)).append(ph.start)
            if ph.start > c_t:  # (other) ends at the phase's very start point
                assert cursor is not None
                windows.add(c_t, ph.start, cursor, start, OTHER_PHASE)
            if ph.end >= c_t:
                c_t, cursor = ph.end, end
        if t1 is None:
            return c_t, cursor
        if t1 > c_t:  # the final pass: the job's end closes (other)
            assert cursor is not None
            end = edges.at(t1)
            windows.add(c_t, t1, cursor, end, OTHER_PHASE)
            return t1, end
        return t1, None

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
        if self._prev_step is not None and len(self.step_series):
            d = self.step_series.last_durations_s(256)[::-1]
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

    def _fold(self, table: Table, w: _Closing) -> None:
        """Evaluate the pass's windows over arrays, per device, and fold them in."""
        a, b = np.asarray(w.a, dtype=np.float64), np.asarray(w.b, dtype=np.float64)
        specs = {name: self.timeline.tracks[name].spec for name in table.columns}
        per_device = table.windows(table.index(w.ia), table.index(w.ib), a, b, specs, self.models)
        total = sum_devices(
            ((d.energy_j, d.independent_j, d.shared_j) for d in per_device.values()),
            len(a),
            self.correlation(list(per_device)),
        )
        self._fold_parts(w, a, b, per_device, total)

    def correlation(self, names: list[str], *, since_start: bool = False) -> FloatArray:
        """How far the devices' independent uncertainties err together (0-1, pairwise).

        From this pass's models (:func:`greenai.windows.device_correlation`); with
        ``since_start``, also from the phases near the job's start (a window from the
        start has an edge there): the larger of the two, pair by pair.
        """
        empty = CurveModel()
        rho = device_correlation([self.models.get(n, empty) for n in names])
        if since_start:
            first = device_correlation([self.first_phased.get(n, empty) for n in names])
            rho = np.maximum(rho, first)
        return rho

    def _fold_unmeasured(self, w: _Closing) -> None:
        """Fold windows closed before any device had a curve: time only; steps' energy NaN."""
        a, b = np.asarray(w.a, dtype=np.float64), np.asarray(w.b, dtype=np.float64)
        nan = np.full(len(a), math.nan)
        self._fold_parts(w, a, b, {}, WindowParts(nan, nan, nan))

    def _fold_parts(
        self,
        w: _Closing,
        a: FloatArray,
        b: FloatArray,
        per_device: dict[str, WindowParts],
        total: WindowParts,
    ) -> None:
        """Fold the figures of a pass's windows (per device and summed) into the running ones."""
        duration = b - a
        n = w.pieces
        if w.steps:
            self._fold_steps(w, total, duration, bool(per_device))
        if len(w.keys) == n:
            return
        # Windows of one phase fold together: one numpy call per phase and device, not a
        # Python call per window.
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(w.keys[n:], start=n):
            groups.setdefault(key, []).append(i)
        measured = bool(per_device)
        for name, members in groups.items():
            idx = np.asarray(members, dtype=np.intp)
            if name == _APART:
                spans = self.apart_spans
            elif name == OTHER_PHASE:
                spans = self.other
            else:
                spans = self.phases.setdefault(name, Spans())
            if measured:
                spans.add(total.select(idx), duration[idx])
            else:
                spans.add(WindowParts.zeros(len(idx)), duration[idx])
            if name == _APART:
                continue
            for device, parts in per_device.items():
                self.device_phases.setdefault(device, {}).setdefault(name, Spans()).add(
                    parts.select(idx), duration[idx]
                )

    def _fold_steps(
        self, w: _Closing, total: WindowParts, duration: FloatArray, measured: bool
    ) -> None:
        """Append the pass's steps, each the sum of its pieces.

        A step's duration stays its whole span, so the steps still tile the job's time.
        """
        n = w.pieces
        self.steps_done += w.steps
        if w.step_of is None:
            self.step_series.extend(total.energy_j[:n], total.uncertainty_j[:n], duration[:n])
            return
        of, k = np.asarray(w.step_of, dtype=np.intp), w.steps
        energy = np.bincount(of, weights=total.energy_j[:n], minlength=k).astype(np.float64)
        independent = np.sqrt(np.bincount(of, weights=total.independent_j[:n] ** 2, minlength=k))
        shared = np.bincount(of, weights=total.shared_j[:n], minlength=k)
        if not measured:  # a step all cut out has no NaN piece to carry it
            energy = np.full(k, math.nan)
        self.step_series.extend(energy, independent + shared, np.asarray(w.step_s))

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
            ((d.energy_j, d.independent_j, d.shared_j) for d in per_device.values()),
            len(a),
            self.correlation(list(per_device), since_start=True),
        )


def _points(rows: list[tuple[tuple[float, ...], bool]]) -> Points:
    return Points.from_rows(np.asarray([r[0] for r in rows]), all(r[1] for r in rows))


def point_at(p: Pass, x: float) -> Point:
    """The curve values at one (possibly unsettled) time ``x``, per device."""
    at = p.points(np.array([x]))
    return {name: (tuple(float(c) for c in v.rows()[0]), v.counter) for name, v in at.items()}
