"""Every rule that turns windows of a curve into figures and their uncertainties.

One module, so the tracker, the reports, the compression sweep, the pytest plugin and the
distributed aggregation agree (they used to restate these rules, and disagreed):

* **one device, one window** (:func:`device_windows`): energy ``C(b) - C(a)``; an
  *independent* part of the uncertainty (where each edge falls between counter updates,
  counter resolution, energy interpolated across read failures, short-window sampling) and
  a *shared* part (a model's or a power sensor's scale error, the same in every window of
  that device);
* **devices** add linearly (:func:`sum_devices`): their errors are not known to be
  independent (one PSU, one load);
* **spans** of one phase or many windows: independent parts in quadrature, shared parts
  linearly (:class:`Spans`);
* **windows that tile** a stretch (steps) sum to the stretch: the sum's uncertainty is the
  stretch's own, not a combination of the tiles (interior edges cancel exactly);
* **per-unit figures** (J/step, J/sample, J/token, J/TFLOP): the total's value and
  uncertainty divided by the count (:func:`per_unit`);
* **two runs compared** (``greenai compare``): their errors taken as independent — relative
  uncertainties in quadrature for a ratio (:func:`ratio_with_uncertainty`), absolute ones
  for a difference (:func:`difference_with_uncertainty`);
* **repeats** of one measurement (sweeps, benchmark rounds): the spread of the repeats and
  the measurement's own uncertainty in quadrature (:func:`with_spread`).

Uncertainties are about 95% coverage, in joules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from greenai.curve import SHORT_WINDOW_REL, DeviceSpec, Points

if TYPE_CHECKING:
    from collections.abc import Iterable

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "Spans",
    "WindowParts",
    "device_windows",
    "difference_with_uncertainty",
    "linear",
    "per_unit",
    "ratio_with_uncertainty",
    "sum_devices",
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

    def take(self, i: int) -> WindowParts:
        """Window ``i`` alone."""
        return WindowParts(
            self.energy_j[i : i + 1], self.independent_j[i : i + 1], self.shared_j[i : i + 1]
        )

    @classmethod
    def zeros(cls, n: int) -> WindowParts:
        """``n`` windows of no energy."""
        return cls(np.zeros(n), np.zeros(n), np.zeros(n))


def device_windows(
    spec: DeviceSpec,
    start: Points,
    end: Points,
    a: FloatArray,
    b: FloatArray,
    half_bracket_s: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Energy (J), independent and shared uncertainty (J) of one device over ``[a, b]``.

    Args:
        spec: The device.
        start: The curve's values at the windows' starts ``a``.
        end: The curve's values at the windows' ends ``b``.
        a: Window starts (s).
        b: Window ends (s).
        half_bracket_s: Half the span in which a counter change is known to have happened.
    """
    energy = np.maximum(end.c_j - start.c_j, 0.0)
    if start.counter and end.counter:
        res = 2.0 * spec.counter_resolution_j
        # The counter's refresh lags each read by an unknown but shared amount (at most the
        # half-bracket either way); it cancels on a steady load, not across a power change.
        shift = half_bracket_s * np.abs(end.seg_power_w - start.seg_power_w)
        independent = start.edge_j + end.edge_j + res + shift
        return energy, np.asarray(independent), np.zeros_like(energy)
    length = np.maximum(b - a, 1e-12)
    short = SHORT_WINDOW_REL * np.minimum(1.0, spec.update_period_s / length)
    gap = np.maximum(end.gap_j - start.gap_j, 0.0)
    return energy, np.asarray(energy * short + gap * 0.5), energy * spec.relative_uncertainty


def sum_devices(parts: Iterable[tuple[FloatArray, FloatArray, FloatArray]], n: int) -> WindowParts:
    """The windows' figures summed over devices: every part adds linearly."""
    energy, independent, shared = np.zeros(n), np.zeros(n), np.zeros(n)
    for e, i, s in parts:
        energy, independent, shared = energy + e, independent + i, shared + s
    return WindowParts(energy, independent, shared)


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


def spans_uncertainty(independent_j: FloatArray, shared_j: FloatArray) -> float:
    """Uncertainty (J) of the sum of spans with these parts (quadrature + linear)."""
    return float(np.sqrt(np.sum(np.square(independent_j))) + np.sum(shared_j))


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


def with_spread(uncertainty: float, spread: float) -> float:
    """A repeated measurement's uncertainty: its own and the repeats' spread in quadrature."""
    return math.hypot(uncertainty, spread)
