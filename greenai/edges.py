"""The edges of a settling pass's windows, evaluated at once, and the per-step figures.

A settling pass (:mod:`greenai.ledger`) closes hundreds of windows: steps, phases, the
``(other)`` gaps between top-level phases. Each window edge is an index into one table per
device: the times the pass evaluates on its curves (:meth:`Edges.at`), then the points carried
from earlier passes (:meth:`Edges.keep`: an open phase's start, the last step). Every window
that starts or ends at a mark points at the same entry, so windows that tile a longer one sum
to it exactly. :meth:`Table.windows` evaluates all of a pass's windows per device in one call
of :func:`greenai.windows.device_windows`: nothing is built per window and device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from greenai.points import POINT_COLUMNS, CurveModel, DeviceSpec, Points
from greenai.windows import WindowParts, device_windows

if TYPE_CHECKING:
    from collections.abc import Mapping

    from greenai.timeline import Pass

__all__ = ["Edges", "Point", "StepSeries", "Table"]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

Point = dict[str, tuple[tuple[float, ...], bool]]
"""A curve's values at one time, per device: :meth:`Points.rows`' values, and whether the
counter gave them."""

_MISSING = ((math.nan,) * POINT_COLUMNS, False)


class Edges:
    """The edges of one pass's windows: times to evaluate now, and points carried over.

    Indices from :meth:`at` count from 0; those from :meth:`keep` are negative (-1 for the
    first carried point) until :meth:`Table.index` places them after the evaluated ones.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.carried: list[Point] = []

    def at(self, t: float) -> int:
        """An edge at time ``t``, evaluated on this pass's curves."""
        self.times.append(t)
        return len(self.times) - 1

    def span(self, times: list[float]) -> range:
        """Edges at many times (in order), evaluated on this pass's curves."""
        first = len(self.times)
        self.times.extend(times)
        return range(first, len(self.times))

    def keep(self, point: Point) -> int:
        """An edge whose point an earlier pass evaluated."""
        self.carried.append(point)
        return -len(self.carried)

    def edge(self, t: float, point: Point | None) -> int:
        """The carried ``point`` if there is one, else ``t`` evaluated now."""
        return self.at(t) if point is None else self.keep(point)


class Table:
    """Per device, the curve's values at every edge of a pass (evaluated, then carried)."""

    def __init__(self, p: Pass, edges: Edges) -> None:
        self.n_new = len(edges.times)
        at = p.points(np.asarray(edges.times, dtype=np.float64))
        carried = edges.carried
        self.columns: dict[str, FloatArray] = {}  # (rows, POINT_COLUMNS): Points.rows
        self.counter: dict[str, npt.NDArray[np.bool_]] = {}
        for name, v in at.items():
            if carried:
                rows = [pt.get(name, _MISSING) for pt in carried]
                old = np.asarray([r[0] for r in rows], dtype=np.float64)
                self.columns[name] = np.concatenate([v.rows(), old.reshape(-1, POINT_COLUMNS)])
                flags = np.asarray([r[1] for r in rows], dtype=bool)
                self.counter[name] = np.concatenate([np.full(self.n_new, v.counter), flags])
            else:
                self.columns[name] = v.rows()
                self.counter[name] = np.full(self.n_new, v.counter)

    def index(self, idx: list[int]) -> IndexArray:
        """Edge indices (from :class:`Edges`) as rows of this table."""
        i = np.asarray(idx, dtype=np.intp)
        return np.where(i < 0, self.n_new - 1 - i, i)

    def point(self, idx: int) -> Point:
        """The values at one edge, per device (what a later pass carries)."""
        (i,) = self.index([idx])
        return {
            name: (tuple(float(x) for x in rows[i]), bool(self.counter[name][i]))
            for name, rows in self.columns.items()
        }

    def windows(
        self,
        ia: IndexArray,
        ib: IndexArray,
        a: FloatArray,
        b: FloatArray,
        specs: Mapping[str, DeviceSpec],
        models: Mapping[str, CurveModel],
    ) -> dict[str, WindowParts]:
        """Figures of windows ``[a_i, b_i]`` with edges at rows ``ia``, ``ib``, per device.

        A device missing at a carried edge (it had no curve then) has no share of that
        window; a window with a power-only edge follows the power rules.
        """
        out = {}
        for name, rows in self.columns.items():
            ok = np.isfinite(rows[ia, 0]) & np.isfinite(rows[ib, 0])
            counter = self.counter[name][ia] & self.counter[name][ib]
            spec, model = specs[name], models.get(name, CurveModel())
            if ok.all() and (counter.all() or not counter.any()):  # the usual case: one call
                start = Points.from_rows(rows[ia], bool(counter[0]) if len(ia) else False)
                end = Points.from_rows(rows[ib], start.counter)
                out[name] = WindowParts(*device_windows(spec, start, end, a, b, model))
                continue
            n = len(ia)
            parts = [np.zeros(n), np.zeros(n), np.zeros(n)]
            for flag in (True, False):
                m = ok & (counter == flag)
                if not m.any():
                    continue
                ja, jb = ia[m], ib[m]
                start, end = Points.from_rows(rows[ja], flag), Points.from_rows(rows[jb], flag)
                for whole, piece in zip(
                    parts, device_windows(spec, start, end, a[m], b[m], model), strict=True
                ):
                    whole[m] = piece
            out[name] = WindowParts(*parts)
        return out


_CHUNK = 1 << 16
"""Steps a :class:`StepSeries` chunk holds (1 MiB of address space; pages count once written)."""


class StepSeries:
    """Per-step figures of a whole job in fixed chunks of typed arrays: 16 bytes a step.

    Energy is kept as float64 (the steps must sum to the job to float rounding); the
    uncertainty and the duration as float32 (7 significant digits: a 10 s step to 1 µs).
    Chunks never grow in place, so memory is what the steps use, without a growing array's
    spare capacity or a copy on each growth.
    """

    def __init__(self) -> None:
        self._chunks: list[tuple[FloatArray, npt.NDArray[np.float32], npt.NDArray[np.float32]]]
        self._chunks = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def extend(
        self, energy_j: FloatArray, uncertainty_j: FloatArray, duration_s: FloatArray
    ) -> None:
        """Append steps' figures (arrays of one length; NaN energy: not measured)."""
        done, n = 0, len(energy_j)
        while done < n:
            at = self._n % _CHUNK
            if at == 0:
                self._chunks.append(
                    (np.empty(_CHUNK), np.empty(_CHUNK, np.float32), np.empty(_CHUNK, np.float32))
                )
            e, u, d = self._chunks[-1]
            k = min(n - done, _CHUNK - at)
            e[at : at + k] = energy_j[done : done + k]
            u[at : at + k] = uncertainty_j[done : done + k]
            d[at : at + k] = duration_s[done : done + k]
            done += k
            self._n += k

    def _column(self, j: int) -> FloatArray:
        if not self._chunks:
            return np.empty(0)
        whole = np.concatenate([chunk[j] for chunk in self._chunks])[: self._n]
        return np.asarray(whole, dtype=np.float64)

    def energy_j(self) -> FloatArray:
        """Each step's energy (J; NaN where no device was measured yet)."""
        return self._column(0)

    def uncertainty_j(self) -> FloatArray:
        """Each step's ~95% uncertainty (J)."""
        return self._column(1)

    def duration_s(self) -> FloatArray:
        """Each step's duration (s)."""
        return self._column(2)

    def last_durations_s(self, k: int) -> FloatArray:
        """The durations (s) of the last ``k`` steps (fewer if there are fewer)."""
        out: list[npt.NDArray[np.float32]] = []
        left = min(k, self._n)
        size = self._n - (len(self._chunks) - 1) * _CHUNK  # filled in the last chunk
        for _, _, d in reversed(self._chunks):
            if left <= 0:
                break
            take = min(left, size)
            out.append(d[size - take : size])
            left -= take
            size = _CHUNK
        if not out:
            return np.empty(0)
        return np.concatenate(out[::-1]).astype(np.float64)
