"""Per-device readings that settle into energy curves as the job runs, at a bounded cost.

Readings enter through :class:`Timeline` (the sampler thread and the native feed call
:meth:`Timeline.add` / :meth:`Timeline.extend`), past a :class:`~greenai.guard.CounterGuard`
that stitches counter resets and rejects corrupt values. They wait in a short *working
stretch* until the device's curve is final past them (:meth:`EnergyCurve.settled_s
<greenai.curve.EnergyCurve.settled_s>`). A :class:`Pass` builds each device's curve over its
working stretch only, evaluates what the caller asks at settled times, and on
:meth:`Pass.commit` turns the settled readings into timeline rows and drops them from the
stretch. The job's running statistics (:class:`~greenai.curve.CurveStats`) carry what the
curve needs of the past, so nothing is recomputed from the start of the job.

Timeline rows (time, power, counter, cumulative energy) are kept at full resolution for the
last :data:`RETENTION_S` seconds and as :data:`BUCKET_S` buckets before that: each bucket
keeps the exact cumulative energy at its end, its mean and its peak power, so thinning never
loses energy.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from greenai.curve import CurveStats, EnergyCurve
from greenai.devices.base import Device, Reading
from greenai.guard import CounterGuard
from greenai.points import DeviceSpec, Points

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "BUCKET_S",
    "RETENTION_S",
    "TIMELINE_COLUMNS",
    "Pass",
    "Timeline",
    "rows_frame",
]

RETENTION_S = 600.0
"""Seconds of full-resolution timeline rows kept in memory (older rows become buckets)."""

BUCKET_S = 10.0
"""Length (s) of the buckets that older timeline rows are thinned to."""

STALL_S = 10.0
"""A device with no reading for this long no longer holds back the others' settling."""

_MARGIN_READINGS = 8
"""Settled readings kept at the head of a working stretch, so its first anchors are sound."""

TIMELINE_COLUMNS = ["t_s", "device", "method", "power_w", "counter_j", "energy_j", "peak_power_w"]


@dataclass
class _Rows:
    """Settled timeline rows of one device: ``t, power, counter, C, peak`` (peak NaN if raw)."""

    t: list[float] = field(default_factory=list)
    power: list[float] = field(default_factory=list)
    counter: list[float] = field(default_factory=list)
    c: list[float] = field(default_factory=list)
    peak: list[float] = field(default_factory=list)

    def append(
        self, t: FloatArray, p: FloatArray, e: FloatArray, c: FloatArray, pk: FloatArray
    ) -> None:
        self.t.extend(t.tolist())
        self.power.extend(p.tolist())
        self.counter.extend(e.tolist())
        self.c.extend(c.tolist())
        self.peak.extend(pk.tolist())

    def cut(self, k: int) -> _Rows:
        """Remove and return the first ``k`` rows."""
        head = _Rows(self.t[:k], self.power[:k], self.counter[:k], self.c[:k], self.peak[:k])
        for col in (self.t, self.power, self.counter, self.c, self.peak):
            del col[:k]
        return head

    def __len__(self) -> int:
        return len(self.t)


class DeviceTrack:
    """One device: its working stretch of raw readings, statistics and settled rows."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.t: list[float] = []
        self.e: list[float] = []
        self.p: list[float] = []
        self.gaps: list[tuple[float, float | None]] = []
        self.stats = CurveStats()
        self.guard = CounterGuard(spec.name)
        self.work = 0  # index of the working stretch's first reading in t/e/p
        self.prev: tuple[float, float] | None = None  # reading before the stretch
        self.origin = (0.0, 0.0)  # C and gap energy at the stretch's first reading
        self.kept_prev: tuple[float, float] | None = None  # reading before t[0]
        self.kept_origin = (0.0, 0.0)  # C and gap energy at t[0]
        self.settled_rows = 0  # readings of the stretch (from work) already made rows
        self.settled_s = -math.inf
        self.method = spec.method
        self.rows = _Rows()  # full resolution, the last RETENTION_S
        self.buckets = _Rows()  # older, thinned
        self.compacted_before_s = -math.inf
        self.samples = 0
        self.valid = 0  # readings with a usable counter or power value
        self.samples_at_t0 = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.peak_w = -math.inf  # highest settled power inside the job

    @property
    def energy_j(self) -> list[float]:
        """The kept counter values (J, after the guard; NaN: not read)."""
        return self.e

    @property
    def power_w(self) -> list[float]:
        """The kept power values (W; NaN: not read)."""
        return self.p

    def samples_in_job(self) -> int:
        """Readings taken since the job started (the baseline's excluded)."""
        return self.samples - self.samples_at_t0

    def peak_power_w(self, t0: float, curve: EnergyCurve | None) -> float:
        """Highest power (W) read inside the job, unsettled readings included."""
        peak = self.peak_w
        if curve is not None and len(curve.t):
            power = curve.power_at_samples()
            inside = curve.t >= t0
            if inside.any():
                peak = max(peak, float(power[inside].max()))
            elif not math.isfinite(peak):
                peak = float(power.max())
        return peak if math.isfinite(peak) else 0.0

    def last_power_w(self) -> float | None:
        """The latest power value (W), or the latest settled row's."""
        for value in reversed(self.p[-4:]):
            if math.isfinite(value):
                return value
        return self.rows.power[-1] if self.rows.power else None


class Timeline:
    """Thread-safe intake of readings for a set of devices, settled incrementally."""

    def __init__(self, devices: list[Device]) -> None:
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self.tracks: dict[str, DeviceTrack] = {d.name: DeviceTrack(_spec(d)) for d in devices}
        self._origins: dict[str, float] = {}
        self.problems: list[str] = []
        self._t0 = -math.inf
        self._peak_total_w = -math.inf
        self.end_s: float | None = None
        """The job's end, once its final pass began (later readings are the stop's tail)."""

    @property
    def t0(self) -> float:
        """When the job started (readings before it are the idle baseline)."""
        return self._t0

    @t0.setter
    def t0(self, value: float) -> None:
        with self._lock:
            self._t0 = value
            for track in self.tracks.values():
                track.samples_at_t0 = track.samples

    def peak_total_power_w(self) -> float | None:
        """Highest total power (W) across devices at any settled reading inside the job."""
        return self._peak_total_w if math.isfinite(self._peak_total_w) else None

    @property
    def series(self) -> dict[str, DeviceTrack]:
        """Each device's track (``.t``, ``.e``, ``.p``: its kept raw readings; ``.gaps``)."""
        return self.tracks

    # --- intake (sampler thread) ---------------------------------------------------------
    def ensure(self, device: Device) -> None:
        """Add a track for ``device`` if none has its name (names can settle at open())."""
        with self._lock:
            track = self.tracks.get(device.name)
            if track is None:
                self.tracks[device.name] = DeviceTrack(_spec(device))
            else:  # open() may have refined what the device is (counter found, etc.)
                track.spec = _spec(device)
                track.method = track.spec.method

    def add(self, name: str, t: float, reading: Reading) -> None:
        """Record one reading of device ``name`` taken at time ``t`` (seconds)."""
        e = math.nan if reading.energy_j is None else float(reading.energy_j)
        p = math.nan if reading.power_w is None else float(reading.power_w)
        with self._lock:
            track = self.tracks[name]
            p = track.guard.check_power(p)
            e = track.guard.check(t, e, p)
            self._append(track, [t], [e], [p])

    def extend(self, name: str, t: FloatArray, energy_j: FloatArray, power_w: FloatArray) -> None:
        """Record many readings of device ``name`` at once, in time order (NaN: not read)."""
        if not len(t):
            return
        t_list = np.asarray(t, dtype=np.float64).tolist()
        e_list = np.asarray(energy_j, dtype=np.float64).tolist()
        p_list = np.asarray(power_w, dtype=np.float64).tolist()
        with self._lock:
            track = self.tracks[name]
            p_list = [track.guard.check_power(x) for x in p_list]
            e_list = [
                track.guard.check(a, b, c) for a, b, c in zip(t_list, e_list, p_list, strict=True)
            ]
            self._append(track, t_list, e_list, p_list)

    def _append(self, track: DeviceTrack, t: list[float], e: list[float], p: list[float]) -> None:
        if track.last_t is not None and t[0] <= track.last_t:  # a repeat read at one instant
            keep = [i for i, x in enumerate(t) if x > track.last_t]
            if not keep:
                return
            t, e, p = [t[i] for i in keep], [e[i] for i in keep], [p[i] for i in keep]
        if track.gaps and track.gaps[-1][1] is None:
            track.gaps[-1] = (track.gaps[-1][0], t[0])
        if track.first_t is None:
            track.first_t = t[0]
            first = next((x for x in e if math.isfinite(x)), None)
            if first is not None:  # C of a counter device is on the counter's scale
                track.origin = track.kept_origin = (first, 0.0)
        track.t.extend(t)
        track.e.extend(e)
        track.p.extend(p)
        track.samples += len(t)
        if len(t) == 1:  # the sampler's one reading a tick (NaN != NaN: not read)
            track.valid += e[0] == e[0] or p[0] == p[0]
        else:
            track.valid += sum(1 for a, b in zip(e, p, strict=True) if a == a or b == b)
        track.last_t = t[-1]

    def fail(self, name: str, why: str) -> None:
        """Drop device ``name`` from the figures from now on, saying why (once)."""
        track = self.tracks[name]
        track.valid = 0
        if why not in self.problems:
            self.problems.append(f"{name}: {why}")

    def counts_energy(self, name: str) -> bool:
        """Whether device ``name`` is measured by an energy counter that has been read."""
        with self._lock:
            track = self.tracks[name]
            return track.spec.method == "counter" and math.isfinite(_last_finite_e(track))

    def last_energy(self, name: str) -> float:
        """The last counter value read of device ``name`` (J, as guarded; NaN before one)."""
        with self._lock:
            return _last_finite_e(self.tracks[name])

    def last_time(self, name: str) -> float:
        """When device ``name`` was last read (clock seconds; -inf before any reading)."""
        with self._lock:
            last = self.tracks[name].last_t
        return -math.inf if last is None else last

    def mark_failure(self, name: str, t: float) -> None:
        """Note that device ``name`` failed to read at ``t``; a gap lasts until its next read."""
        with self._lock:
            track = self.tracks[name]
            if not track.gaps or track.gaps[-1][1] is not None:
                track.gaps.append((t, None))

    # --- settling ------------------------------------------------------------------------
    def begin(self, now_s: float, *, final: bool = False, end_s: float | None = None) -> Pass:
        """Build every device's curve over its working stretch (call :meth:`Pass.commit`).

        Passes run one at a time; the sampler keeps adding readings meanwhile. ``end_s``:
        the job's end, on the final pass (readings after it are the stop's tail, see
        :class:`~greenai.curve.EnergyCurve`).
        """
        self._pass_lock.acquire()
        if end_s is not None:
            self.end_s = end_s
        try:
            return Pass(self, now_s, final, end_s)
        except BaseException:
            self._pass_lock.release()
            raise

    def guard_notes(self) -> list[str]:
        """What the counter guards did (resets stitched, values rejected), one line each."""
        with self._lock:
            notes = [n for track in self.tracks.values() for n in track.guard.notes()]
            return [*notes, *self.problems]

    def guard_filled(self) -> bool:
        """Whether any guard had to fill in energy (a reset)."""
        with self._lock:
            return any(track.guard.filled_j > 0 for track in self.tracks.values())

    def curves(self) -> dict[str, EnergyCurve]:
        """Curves over each device's readings of the last :data:`RETENTION_S` seconds.

        For a job shorter than that, the whole job (benchmarks and tests use them; windows
        after the job use them too).
        """
        with self._lock:
            out = {}
            for name, tr in self.tracks.items():
                if tr.t:
                    out[name] = _curve(tr, kept=True, end_s=self.end_s)
            return out

    # --- rows ----------------------------------------------------------------------------
    def rows(
        self,
        t0: float,
        *,
        after_s: float = -math.inf,
        settled_only: bool = False,
        buckets: bool = True,
        as_frame: bool = True,
    ) -> Any:
        """Kept rows (buckets, then full resolution) as a frame, times since ``t0``.

        Columns: :data:`TIMELINE_COLUMNS`; ``energy_j`` is cumulative since ``t0``, and
        ``peak_power_w`` is set on bucket rows (NaN on single readings). Only rows later
        than ``after_s`` (seconds since ``t0``), found by bisection: the cost is the rows
        returned. ``as_frame=False`` gives the columns as a dict of arrays (no pandas).
        """
        frames = []
        cut = t0 + after_s
        with self._lock:
            for tr in self.tracks.values():
                parts = []
                for rows in ([tr.buckets] if buckets else []) + [tr.rows]:
                    k = bisect.bisect_right(rows.t, cut)
                    parts.append(_slice(rows, k))
                frames.append((tr, parts))
        if not settled_only:
            for tr, parts in frames:
                tail = self._unsettled_rows(tr)
                k = bisect.bisect_right(tail.t, cut)
                parts.append(_slice(tail, k))
        columns = row_columns(frames, self.origin_c(t0), t0)
        return rows_frame(columns) if as_frame else columns

    def bucket_rows(self, t0: float, *, after_s: float = -math.inf, as_frame: bool = True) -> Any:
        """Only the bucket rows later than ``after_s`` (see :meth:`rows`)."""
        cut = t0 + after_s
        with self._lock:
            frames = [
                (tr, [_slice(tr.buckets, bisect.bisect_right(tr.buckets.t, cut))])
                for tr in self.tracks.values()
            ]
        columns = row_columns(frames, self.origin_c(t0), t0)
        return rows_frame(columns) if as_frame else columns

    def origin_c(self, t0: float) -> dict[str, float]:
        """Per device, ``C(t0)``: as settled, or from the curve while ``t0`` is unsettled."""
        out = dict(self._origins)
        with self._lock:
            missing = [tr for n, tr in self.tracks.items() if n not in out and tr.t]
            curves = [(tr.spec.name, _curve(tr)) for tr in missing]
        for name, curve in curves:
            out[name] = float(curve.energy_at(np.array([t0]))[0])
        return out

    def set_origins(self, origins: dict[str, float]) -> None:
        """Record ``C`` at the job's start per device (rows' ``energy_j`` counts from it)."""
        self._origins = dict(origins)

    def _unsettled_rows(self, tr: DeviceTrack) -> _Rows:
        with self._lock:
            if len(tr.t) - tr.work <= tr.settled_rows or self.end_s is not None:
                return _Rows()  # once the job ended, what is left is the stop's tail
            curve = _curve(tr)
            k = tr.settled_rows
        t = curve.t[k:]
        return _Rows(
            t.tolist(),
            curve.power_at_samples()[k:].tolist(),
            curve.counter[k:].tolist(),
            curve.energy_at(t).tolist(),
            [math.nan] * len(t),
        )


class Pass:
    """One settling pass: curves over the working stretches, valid until :meth:`commit`.

    Attributes:
        horizon_s: Times up to here are settled for every device (``inf`` on the final pass).
        curves: Each device's curve over its stretch (devices with readings only).
    """

    def __init__(
        self, timeline: Timeline, now_s: float, final: bool, end_s: float | None = None
    ) -> None:
        self.timeline = timeline
        self.final = final
        self.end_s = end_s
        self.now_s = now_s
        self._lengths: dict[str, int] = {}
        self.curves: dict[str, EnergyCurve] = {}
        horizons = []
        with timeline._lock:
            for name, tr in timeline.tracks.items():
                self._lengths[name] = len(tr.t) - tr.work
                if len(tr.t) <= tr.work or not tr.valid:
                    continue  # no reading yet, or none usable: it holds no one back
                try:
                    self.curves[name] = _curve(tr, end_s=end_s)
                except Exception as exc:  # one device's bad data must not cost the others
                    timeline.fail(name, f"its readings could not be integrated: {exc!r}")
        for name, curve in self.curves.items():
            tr = timeline.tracks[name]
            settled = curve.settled_s()
            if tr.last_t is not None and tr.last_t < now_s - STALL_S:
                settled = max(settled, now_s - STALL_S)  # a failing device holds no one back
            horizons.append(settled)
        self.horizon_s = math.inf if final else (min(horizons) if horizons else now_s)

    @property
    def names(self) -> list[str]:
        """Devices with a curve in this pass."""
        return list(self.curves)

    def points(self, x: FloatArray) -> dict[str, Points]:
        """Per device, the curve's values at times ``x`` (all settled: ``x <= horizon_s``)."""
        return {name: curve.points(x) for name, curve in self.curves.items()}

    def commit(self) -> None:
        """Turn readings up to the horizon into rows, update statistics, trim the stretches."""
        tl = self.timeline
        try:
            batches = []
            for name, curve in self.curves.items():
                batch = self._commit_device(tl.tracks[name], curve)
                if batch is not None:
                    batches.append(batch)
            self._peak_total(batches)
        finally:
            tl._pass_lock.release()

    def _peak_total(self, batches: list[tuple[FloatArray, FloatArray]]) -> None:
        """Raise the job's peak total power with the rows this pass settled."""
        tl = self.timeline
        inside = [(t, p) for t, p in batches if len(t)]
        if not inside:
            return
        grid = np.unique(np.concatenate([t for t, _ in inside]))
        grid = grid[grid >= tl.t0]
        if not len(grid):
            return
        total = sum(np.interp(grid, t, p) for t, p in inside)
        tl._peak_total_w = max(tl._peak_total_w, float(np.max(total)))

    def _commit_device(
        self, tr: DeviceTrack, curve: EnergyCurve
    ) -> tuple[FloatArray, FloatArray] | None:
        n = self._lengths[tr.spec.name]
        t = curve.t
        upto = n if self.final else int(np.searchsorted(t, self.horizon_s, side="right"))
        if self.final and self.end_s is not None:  # the stop's tail makes no rows
            upto = min(upto, _rows_to_end(t, self.end_s))
        upto = max(upto, tr.settled_rows)  # what made rows stays settled
        tr.method = curve.method
        start = tr.settled_rows
        batch = None
        if upto > start:
            sl = slice(max(start - 1, 0), upto)  # one row before, to interpolate across
            samples_w = curve.power_at_samples()
            batch = (t[sl], samples_w[sl])
            sl = slice(start, upto)
            c = curve.energy_at(t[sl])
            power = samples_w[sl]
            nan = np.full(upto - start, math.nan)
            inside = t[sl] >= self.timeline.t0
            if inside.any():
                tr.peak_w = max(tr.peak_w, float(power[inside].max()))
            with self.timeline._lock:
                tr.rows.append(t[sl], power, curve.counter[sl], c, nan)
        previous = tr.settled_s
        tr.settled_s = float(t[upto - 1]) if upto else tr.settled_s
        if curve.method == "counter" and not self.final:
            curve.settle_into(tr.stats, tr.settled_s, previous)
        # Advance the stretch: keep a margin of settled readings ahead of the unsettled ones.
        keep_from = max(0, upto - _MARGIN_READINGS)
        with self.timeline._lock:
            tr.settled_rows = upto - keep_from
            if keep_from > 0:
                head = t[keep_from : keep_from + 1]
                tr.origin = (float(curve.energy_at(head)[0]), float(curve.gap_at(head)[0]))
                tr.prev = (
                    float(t[keep_from - 1]),
                    _last_finite(curve.counter[:keep_from], tr.prev),
                )
                tr.work += keep_from
            self._drop_old(tr)
            self._thin(tr)
        return batch

    def _drop_old(self, tr: DeviceTrack) -> None:
        """Forget raw readings older than the retention that the stretch no longer needs."""
        limit = self.now_s - RETENTION_S
        k = bisect.bisect_left(tr.t, limit, 0, tr.work)
        if k < 64:  # trim in batches, not every pass
            return
        new_first = tr.t[k]
        i = bisect.bisect_left(tr.rows.t, new_first)
        if i < len(tr.rows.t) and tr.rows.t[i] == new_first:
            tr.kept_origin = (tr.rows.c[i], tr.kept_origin[1])
        finite = [v for v in tr.e[:k] if math.isfinite(v)]
        tr.kept_prev = (tr.t[k - 1], finite[-1] if finite else -math.inf)
        del tr.t[:k], tr.e[:k], tr.p[:k]
        tr.work -= k
        horizon = tr.t[0] if tr.t else math.inf
        tr.gaps = [(a, b) for a, b in tr.gaps if b is None or b >= horizon]

    def _thin(self, tr: DeviceTrack) -> None:
        """Fold full-resolution rows older than the retention into buckets (lock held)."""
        rows = tr.rows
        if not rows.t or rows.t[0] >= self.now_s - RETENTION_S - BUCKET_S:
            return
        cut_s = math.floor((self.now_s - RETENTION_S) / BUCKET_S) * BUCKET_S
        k = bisect.bisect_left(rows.t, cut_s)
        if k < 2:
            return
        head = rows.cut(k)
        ht = np.asarray(head.t)
        bucket = np.floor(ht / BUCKET_S)
        ends = np.flatnonzero(np.append(bucket[1:] != bucket[:-1], True))
        starts = np.concatenate([[0], ends[:-1] + 1])
        c = np.asarray(head.c)
        power = np.asarray(head.power)
        prev_t = tr.buckets.t[-1] if tr.buckets.t else ht[0]
        prev_c = tr.buckets.c[-1] if tr.buckets.c else c[0]
        bt, bp, be, bc, bpk = [], [], [], [], []
        for s, e in zip(starts, ends, strict=True):
            dt = ht[e] - prev_t
            bt.append(ht[e])
            bp.append((c[e] - prev_c) / dt if dt > 0 else power[e])
            be.append(head.counter[e])
            bc.append(c[e])
            bpk.append(float(np.nanmax(power[s : e + 1])))
            prev_t, prev_c = ht[e], c[e]
        arrays = [np.asarray(x, dtype=float) for x in (bt, bp, be, bc, bpk)]
        tr.buckets.append(*arrays)
        tr.compacted_before_s = float(ht[-1]) + 1e-9


def _spec(device: Device) -> DeviceSpec:
    return DeviceSpec(
        name=device.name,
        kind=device.kind,
        method=device.method,
        update_period_s=device.update_period_s,
        counter_resolution_j=device.counter_resolution_j,
        relative_uncertainty=device.relative_uncertainty,
        counter_integrates=device.counter_integrates,
        power_limit_w=getattr(device, "power_limit_w", None),
        power_window_s=getattr(device, "power_window_s", None),
    )


def _curve(tr: DeviceTrack, *, kept: bool = False, end_s: float | None = None) -> EnergyCurve:
    """The curve over the working stretch, or (``kept``) over every kept reading."""
    k = 0 if kept else tr.work
    return EnergyCurve(
        tr.spec,
        np.asarray(tr.t[k:], dtype=np.float64),
        np.asarray(tr.e[k:], dtype=np.float64),
        np.asarray(tr.p[k:], dtype=np.float64),
        list(tr.gaps),
        stats=tr.stats,
        prev=tr.kept_prev if kept else tr.prev,
        origin_j=tr.kept_origin if kept else tr.origin,
        end_s=end_s,
    )


def _rows_to_end(t: FloatArray, end_s: float) -> int:
    """How many readings make rows on the final pass (the rows end where the figure does).

    Those up to the job's end, and the stop read where it came after the end.
    """
    upto = int(np.searchsorted(t, end_s, side="right"))
    if upto < len(t) and (upto == 0 or t[upto - 1] < end_s):
        upto += 1
    return upto


def _last_finite_e(track: DeviceTrack) -> float:
    for e in reversed(track.e):
        if math.isfinite(e):
            return e
    return track.prev[1] if track.prev is not None else math.nan


def _slice(rows: _Rows, k: int) -> _Rows:
    return _Rows(rows.t[k:], rows.power[k:], rows.counter[k:], rows.c[k:], rows.peak[k:])


def _last_finite(values: FloatArray, fallback: tuple[float, float] | None) -> float:
    ok = np.flatnonzero(np.isfinite(values))
    if len(ok):
        return float(values[ok[-1]])
    return fallback[1] if fallback is not None else -math.inf


def row_columns(
    parts: list[tuple[DeviceTrack, list[_Rows]]], origins: dict[str, float], t0: float
) -> dict[str, npt.NDArray[Any]]:
    """Rows of many devices as whole columns (:data:`TIMELINE_COLUMNS`), times since ``t0``."""
    columns: dict[str, list[Any]] = {c: [] for c in TIMELINE_COLUMNS}
    for tr, chunks in parts:
        t = np.concatenate([np.asarray(r.t, dtype=float) for r in chunks])
        if not len(t):
            continue
        c = np.concatenate([np.asarray(r.c, dtype=float) for r in chunks])
        origin = origins.get(tr.spec.name, float(c[0]))
        columns["t_s"].append(t - t0)
        columns["device"].append(np.full(len(t), tr.spec.name, dtype=object))
        columns["method"].append(np.full(len(t), tr.method, dtype=object))
        for name, attr in (
            ("power_w", "power"),
            ("counter_j", "counter"),
            ("peak_power_w", "peak"),
        ):
            columns[name].append(
                np.concatenate([np.asarray(getattr(r, attr), float) for r in chunks])
            )
        columns["energy_j"].append(c - origin)
    return {
        k: np.concatenate(v) if v else np.empty(0, dtype=object if k in _TEXT else float)
        for k, v in columns.items()
    }


_TEXT = ("device", "method")


def rows_frame(columns: dict[str, npt.NDArray[Any]]) -> pd.DataFrame:
    """The columns of :func:`row_columns` as one frame.

    One frame from whole columns: a frame per device and a concat cost ten times more.
    """
    import pandas as pd

    if not len(columns["t_s"]):
        empty: pd.DataFrame = pd.DataFrame(columns=TIMELINE_COLUMNS)
        return empty
    frame: pd.DataFrame = pd.DataFrame(columns)
    return frame
