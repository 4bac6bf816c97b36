"""Per-device power/energy points, and exact integration over any window.

Each device's readings become one cumulative-energy curve ``C(t)`` (joules). The energy of a
window ``[a, b]`` is ``C(b) - C(a)``, so windows are additive by construction: phases and
steps that tile a job sum exactly to the job total.

How ``C`` is built (see docs/accuracy.md for the reasoning and the measured numbers):

* **counter** devices: each read where the hardware counter changed is an *anchor*. The
  counter refreshes on its own period (about 100 ms on NVIDIA), so the change happened
  between this read and the previous one; the anchor sits half that span (at most half the
  update period) before the read. Between anchors ``C`` follows the shape of the integrated
  instant power, scaled to meet the counter exactly at both anchors, so a window shorter
  than the counter's period still gets a sound value instead of 0 J. Without instant power
  (RAPL) ``C`` is linear between anchors, which are then about 1 ms apart in time.
* **power** and **model** devices: ``C`` is the integral of the piecewise-linear power.

Uncertainty (about 95% coverage) for counter devices is data-driven: the scatter of each
anchor-to-anchor counter delta around what the power shape predicts measures how far an
interpolated edge can be off; it is capped by the hard bound that the true value lies between
the two bracketing counter values.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

from greenai.devices.base import Device, Method, Reading

FloatArray = npt.NDArray[np.float64]

_SHORT_WINDOW_REL = 0.10
"""Extra relative uncertainty of integrated power in windows shorter than the update period
(on the H100, step-held instant power over 25 ms windows had a p95 error of 9.9%)."""


@dataclass
class DeviceSeries:
    """The raw readings of one device, appended by the sampler thread."""

    name: str
    kind: str
    method: Method
    update_period_s: float
    counter_resolution_j: float
    relative_uncertainty: float
    t: list[float] = field(default_factory=list)
    energy_j: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    gaps: list[tuple[float, float | None]] = field(default_factory=list)

    @classmethod
    def for_device(cls, device: Device) -> DeviceSeries:
        """Create an empty series that describes ``device``."""
        return cls(
            name=device.name,
            kind=device.kind,
            method=device.method,
            update_period_s=device.update_period_s,
            counter_resolution_j=device.counter_resolution_j,
            relative_uncertainty=device.relative_uncertainty,
        )


class Timeline:
    """Thread-safe store of readings for a set of devices."""

    def __init__(self, devices: list[Device]) -> None:
        self._lock = threading.Lock()
        self.series: dict[str, DeviceSeries] = {d.name: DeviceSeries.for_device(d) for d in devices}

    def ensure(self, device: Device) -> None:
        """Add a series for ``device`` if none has its name (names can settle at open())."""
        with self._lock:
            if device.name not in self.series:
                self.series[device.name] = DeviceSeries.for_device(device)
            else:  # open() may have refined what the device is (counter found, etc.)
                s = self.series[device.name]
                s.method, s.update_period_s = device.method, device.update_period_s
                s.counter_resolution_j = device.counter_resolution_j
                s.relative_uncertainty = device.relative_uncertainty

    def add(self, name: str, t: float, reading: Reading) -> None:
        """Record one reading of device ``name`` taken at time ``t`` (seconds)."""
        e = np.nan if reading.energy_j is None else float(reading.energy_j)
        p = np.nan if reading.power_w is None else float(reading.power_w)
        with self._lock:
            s = self.series[name]
            s.t.append(t)
            s.energy_j.append(e)
            s.power_w.append(p)
            if s.gaps and s.gaps[-1][1] is None:
                s.gaps[-1] = (s.gaps[-1][0], t)

    def extend(self, name: str, t: FloatArray, energy_j: FloatArray, power_w: FloatArray) -> None:
        """Record many readings of device ``name`` at once, in time order (NaN: not read)."""
        if not len(t):
            return
        with self._lock:
            s = self.series[name]
            s.t.extend(np.asarray(t, dtype=np.float64).tolist())
            s.energy_j.extend(np.asarray(energy_j, dtype=np.float64).tolist())
            s.power_w.extend(np.asarray(power_w, dtype=np.float64).tolist())
            if s.gaps and s.gaps[-1][1] is None:
                s.gaps[-1] = (s.gaps[-1][0], float(t[0]))

    def mark_failure(self, name: str, t: float) -> None:
        """Note that device ``name`` failed to read at ``t``; a gap lasts until its next read."""
        with self._lock:
            s = self.series[name]
            if not s.gaps or s.gaps[-1][1] is not None:
                s.gaps.append((t, None))

    def curves(self) -> dict[str, EnergyCurve]:
        """Build the energy curve of every device that has at least one reading."""
        with self._lock:
            snapshot = [
                (s, np.array(s.t), np.array(s.energy_j), np.array(s.power_w), list(s.gaps))
                for s in self.series.values()
            ]
        return {s.name: EnergyCurve(s, t, e, p, g) for s, t, e, p, g in snapshot if len(t)}


class EnergyCurve:
    """The cumulative energy ``C(t)`` of one device, and its uncertainty over windows."""

    def __init__(
        self,
        series: DeviceSeries,
        t: FloatArray,
        energy_j: FloatArray,
        power_w: FloatArray,
        gaps: list[tuple[float, float | None]],
    ) -> None:
        self.name = series.name
        self.kind = series.kind
        self.series = series
        self.t = t
        self.counter = energy_j
        self.gaps = gaps
        self.has_power = bool(np.isfinite(power_w).any())
        self.power = _fill_nan(power_w) if self.has_power else np.zeros_like(t)
        self._cum_power = _cumulative_trapezoid(t, self.power)
        self._build_anchors(series)
        self.method: Method = self._effective_method(series.method)

    # --- construction -------------------------------------------------------------------
    def _build_anchors(self, s: DeviceSeries) -> None:
        ok = np.isfinite(self.counter)
        if s.method != "counter" or ok.sum() < 1:
            self.tau = np.empty(0)
            self.anchor_e = np.empty(0)
            return
        t, e = self.t[ok], self.counter[ok]
        gaps_t = np.diff(t)
        typical = float(np.median(gaps_t)) if len(gaps_t) else s.update_period_s
        changed = np.concatenate([[True], np.diff(e) > 0])
        before = np.concatenate([[min(typical, s.update_period_s)], gaps_t])
        lag = np.minimum(before, s.update_period_s) / 2.0
        self.tau = (t - lag)[changed]
        self._half_bracket = float(np.median(lag[changed]))
        self.anchor_e = e[changed]
        self._i_tau = self.integral(self.tau)
        d_e = np.diff(self.anchor_e)
        d_i = np.diff(self._i_tau)
        self._calibration = (
            float(np.clip(d_e.sum() / d_i.sum(), 0.5, 2.0))
            if self.has_power and d_i.sum() > 0
            else 1.0
        )
        self._sigma = self._segment_scatter(d_e, d_i, s)
        seg_len = np.diff(self.tau)
        # Only the hard bound holds where the power shape cannot be trusted: a segment much
        # longer than usual (it spans a read failure), or one next to a load change (the
        # shape may put the change in the wrong place).
        long_seg = seg_len > 3.0 * float(np.median(seg_len)) if len(seg_len) else seg_len > 0
        self._hard_only = long_seg | self._unsteady()

    def _unsteady(self) -> npt.NDArray[np.bool_]:
        """Per segment: does the counter's average power change by over 25% next to it?

        The counter's segment averages smooth out sensor noise; a real load change shows up
        as neighbouring segments that differ. One segment either side is included because
        power values lag the counter by up to one update period.
        """
        seg_p = np.diff(self.anchor_e) / np.maximum(np.diff(self.tau), 1e-12)
        if len(seg_p) == 0:
            return np.zeros(0, dtype=bool)
        padded = np.pad(seg_p, 1, mode="edge")
        near = np.stack([padded[:-2], padded[1:-1], padded[2:]])
        spread = near.max(axis=0) - near.min(axis=0)
        return np.asarray(spread > 0.25 * np.maximum(near.mean(axis=0), 1e-12))

    def _segment_scatter(self, d_e: FloatArray, d_i: FloatArray, s: DeviceSeries) -> float:
        """Robust spread (J) of counter deltas around what the power shape predicts."""
        if len(d_e) == 0:
            return 0.0
        if self.has_power:
            predicted = self._calibration * d_i
        else:
            seg_p = d_e / np.maximum(np.diff(self.tau), 1e-12)
            neighbour_p = np.convolve(np.pad(seg_p, 1, mode="edge"), [0.5, 0.0, 0.5], "valid")
            predicted = neighbour_p * np.diff(self.tau)
        resid = d_e - predicted
        floor = s.relative_uncertainty * float(np.median(d_e))
        if len(resid) < 4:
            return max(floor, s.counter_resolution_j)
        mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        return max(mad, s.counter_resolution_j)

    def _effective_method(self, declared: Method) -> Method:
        if declared == "counter" and len(self.tau) < 2:
            # The counter never changed inside the run: the figure comes from power alone.
            return "power" if self.has_power else "counter"
        return declared

    # --- evaluation ---------------------------------------------------------------------
    def integral(self, x: FloatArray) -> FloatArray:
        """Integral of the piecewise-linear power from the first reading to ``x`` (J)."""
        t, p, cum = self.t, self.power, self._cum_power
        x = np.asarray(x, dtype=np.float64)
        if len(t) == 1:
            return np.asarray(p[0] * (x - t[0]), dtype=np.float64)
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 2)
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
            return self.integral(x)
        tau, ae = self.tau, self.anchor_e
        k = np.searchsorted(tau, x, side="right") - 1
        kk = np.clip(k, 0, len(tau) - 2)
        frac = self._fraction(x, kk)
        interior = ae[kk] + (ae[kk + 1] - ae[kk]) * frac
        ix = self.integral(x) if self.has_power else None
        before = self._extrapolate(x, 0, ix)
        after = self._extrapolate(x, len(tau) - 1, ix)
        return np.asarray(np.where(k < 0, before, np.where(k >= len(tau) - 1, after, interior)))

    def _fraction(self, x: FloatArray, k: npt.NDArray[np.intp]) -> FloatArray:
        """Where ``x`` lies inside segment ``k``, by energy shape (0 at its start, 1 at its end)."""
        tau = self.tau
        by_time = (x - tau[k]) / np.maximum(tau[k + 1] - tau[k], 1e-12)
        if not self.has_power:
            return np.asarray(np.clip(by_time, 0.0, 1.0))
        d_i = self._i_tau[k + 1] - self._i_tau[k]
        ok = d_i > 1e-12
        by_power = (self.integral(x) - self._i_tau[k]) / np.where(ok, d_i, 1.0)
        return np.asarray(np.clip(np.where(ok, by_power, by_time), 0.0, 1.0))

    def _extrapolate(self, x: FloatArray, j: int, ix: FloatArray | None) -> FloatArray:
        """Energy beyond the first/last anchor, from power (or the nearest segment's power)."""
        if ix is not None:
            return np.asarray(self.anchor_e[j] + self._calibration * (ix - self._i_tau[j]))
        if len(self.tau) < 2:
            return np.full_like(x, self.anchor_e[j])
        seg = 0 if j == 0 else len(self.tau) - 2
        p = (self.anchor_e[seg + 1] - self.anchor_e[seg]) / max(
            self.tau[seg + 1] - self.tau[seg], 1e-12
        )
        return np.asarray(self.anchor_e[j] + p * (x - self.tau[j]))

    def window(self, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Energy (J) and its ~95% uncertainty (J) over windows ``[a, b]`` (arrays)."""
        energy, independent, shared = self.window_parts(a, b)
        return energy, independent + shared

    def window_parts(
        self, a: FloatArray, b: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Energy (J) over windows ``[a, b]`` and its uncertainty (J) in two parts.

        ``independent`` varies from window to window (edges, sampling, gaps): over many
        windows it adds in quadrature. ``shared`` is the same relative error in every window
        of this device (a model's or a power sensor's scale error): it adds linearly, however
        many windows there are. The window's own uncertainty is their sum.
        """
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        energy = np.maximum(self.energy_at(b) - self.energy_at(a), 0.0)
        rel = self.series.relative_uncertainty
        none = np.zeros_like(energy)
        if self.method != "counter":
            length = np.maximum(b - a, 1e-12)
            short = _SHORT_WINDOW_REL * np.minimum(1.0, self.series.update_period_s / length)
            return energy, energy * short + self._gap_energy(a, b) * 0.5, energy * rel
        res = 2.0 * self.series.counter_resolution_j
        if len(self.tau) < 2:
            return energy, none + res, energy * rel
        u = self._edge_uncertainty(a) + self._edge_uncertainty(b) + res
        # The counter's refresh lags each read by an unknown but shared amount (at most the
        # half-bracket either way); it cancels on a steady load, not across a power change.
        # Power at each edge from the counter's own segment averages: power values may lag.
        seg_p = np.diff(self.anchor_e) / np.maximum(np.diff(self.tau), 1e-12)
        at = np.clip(
            np.searchsorted(self.tau, np.stack([a, b]), side="right") - 1, 0, len(seg_p) - 1
        )
        shift = self._half_bracket * np.abs(seg_p[at[1]] - seg_p[at[0]])
        return energy, np.asarray(u + shift), none

    def _edge_uncertainty(self, x: FloatArray) -> FloatArray:
        tau, ae = self.tau, self.anchor_e
        k = np.searchsorted(tau, x, side="right") - 1
        kk = np.clip(k, 0, len(tau) - 2)
        frac = self._fraction(x, kk)
        d_e = ae[kk + 1] - ae[kk]
        hard = d_e * np.maximum(frac, 1.0 - frac)
        soft = 2.0 * self._sigma + self.series.relative_uncertainty * d_e * np.minimum(
            frac, 1.0 - frac
        )
        inside = np.where(self._hard_only[kk], hard, np.minimum(hard, soft))
        rel = max(self.series.relative_uncertainty, abs(self._calibration - 1.0))
        ends = self.energy_at(x)
        outside_first = rel * np.abs(ae[0] - ends) + 2.0 * self._sigma
        outside_last = rel * np.abs(ends - ae[-1]) + 2.0 * self._sigma
        return np.asarray(
            np.where(k < 0, outside_first, np.where(k >= len(tau) - 1, outside_last, inside))
        )

    def _gap_energy(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """Energy interpolated across read failures inside each window."""
        total = np.zeros_like(a)
        for g0, g1 in self.gaps:
            end = self.t[-1] if g1 is None else g1
            lo, hi = np.maximum(a, g0), np.minimum(b, end)
            total += np.where(hi > lo, self.integral(hi) - self.integral(lo), 0.0)
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


TIMELINE_COLUMNS = ["t_s", "device", "method", "power_w", "counter_j", "energy_j"]


def timeline_frame(
    curves: dict[str, EnergyCurve], t0: float, *, after_s: float = -math.inf
) -> pd.DataFrame:
    """The readings of ``curves`` as one table, times in seconds since ``t0``.

    Columns are :data:`TIMELINE_COLUMNS`; ``energy_j`` is cumulative since ``t0``. Only
    readings later than ``after_s`` are included (what a checkpoint has not stored yet).
    """
    import pandas as pd

    frames = []
    for curve in curves.values():
        keep = curve.t - t0 > after_s
        if not keep.any():
            continue
        t = curve.t[keep]
        origin = curve.energy_at(np.array([t0]))[0]
        frames.append(
            pd.DataFrame(
                {
                    "t_s": t - t0,
                    "device": curve.name,
                    "method": curve.method,
                    "power_w": curve.power_at_samples()[keep],
                    "counter_j": curve.counter[keep],
                    "energy_j": curve.energy_at(t) - origin,
                }
            )
        )
    frame: pd.DataFrame = (
        pd.concat(frames, ignore_index=True)[TIMELINE_COLUMNS]
        if frames
        else pd.DataFrame(columns=TIMELINE_COLUMNS)
    )
    return frame
