"""Which windows of a pytest-benchmark run were its timed rounds, for energy per round.

pytest-benchmark calls one *runner* for calibration, warmup and the timed rounds alike, and
records a duration in its stats only after a timed round. :class:`RoundRecorder` wraps the
fixture's runner factory to time-stamp every runner call on the tracker's clock, and its
stats to keep the last call's window whenever a round is recorded. So the energy per round
covers the timed rounds only: not calibration, warmup, the gaps between rounds, nor the
extra call that returns the function's result.

Rounds shorter than a GPU sensor's update period are seen at one phase of it: the first
:data:`MAX_SHIFTED` calls are then delayed to shifted start offsets (:mod:`greenai.protocol`),
the rounds are grouped by offset, and the spread of the groups' energy per round goes into
its uncertainty (:func:`greenai.windows.across_offsets`).

It relies on two internals of ``BenchmarkFixture`` (``_make_runner`` and ``_add_stats``,
present in pytest-benchmark 3 to 5). Where they are missing, nothing is wrapped and the
plugin reports the whole test instead (``per test`` in the summary).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from greenai.protocol import SHIFTS, needs_shifts, sensor_period_s, shift_s
from greenai.tracker import Tracker
from greenai.units import FLOP_PER_TFLOP
from greenai.windows import across_offsets

__all__ = ["MAX_SHIFTED", "RoundRecorder"]

MAX_SHIFTED = 4 * SHIFTS
"""Calls delayed to shifted offsets at most (4 trials of each offset, as Yang, Adámek and
Armour advise), so thousands of microsecond rounds do not each wait for the sensor."""


class RoundRecorder:
    """Time-stamps the timed rounds of one ``benchmark`` fixture.

    Attributes:
        windows: ``(start, end)`` of each timed round on the tracker's clock (s).
        offsets: The start-offset slot of each timed round (0 to ``SHIFTS - 1``), or -1
            for a round that was not delayed.
        iterations: Calls of the benchmarked function per round.
    """

    def __init__(self, tracker: Tracker, sleep: Callable[[float], None] = time.sleep) -> None:
        self.tracker = tracker
        self.windows: list[tuple[float, float]] = []
        self.offsets: list[int] = []
        self.iterations = 1
        self._last: tuple[float, float] | None = None
        self._last_slot = -1
        self._last_duration_s: float | None = None
        self._shifted = 0
        self._sleep = sleep
        self._period_s = sensor_period_s(tracker.devices)

    def _shift(self) -> int:
        """Delay the next call to its offset slot if rounds are short; the slot or -1."""
        last = self._last_duration_s
        if (
            self._period_s is None
            or last is None
            or self._shifted >= MAX_SHIFTED
            or not needs_shifts(last, self._period_s)
        ):
            return -1
        slot = self._shifted % SHIFTS
        self._sleep(shift_s(slot, self._period_s))
        self._shifted += 1
        return slot

    @classmethod
    def install(
        cls,
        fixture: Any,
        tracker: Tracker,
        now: Callable[[], float],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RoundRecorder | None:
        """Wrap ``fixture`` (a pytest-benchmark ``BenchmarkFixture``); None if it cannot be.

        Args:
            fixture: The test's ``benchmark`` fixture, before it runs.
            tracker: The test's tracker, whose windows these are.
            now: The tracker's clock (seconds).
            sleep: Waits a number of seconds: how a short round is delayed to its offset
                (a simulated clock's advance in tests).
        """
        make_runner = getattr(fixture, "_make_runner", None)
        add_stats = getattr(fixture, "_add_stats", None)
        if not callable(make_runner) or not callable(add_stats):
            return None
        recorder = cls(tracker, sleep)

        def _make_runner(function: Any, args: Any, kwargs: Any) -> Any:
            inner = make_runner(function, args, kwargs)

            def runner(*a: Any, **k: Any) -> Any:
                slot = recorder._shift()
                t0 = now()
                try:
                    return inner(*a, **k)
                finally:
                    t1 = now()
                    recorder._last = (t0, t1)
                    recorder._last_slot = slot
                    recorder._last_duration_s = t1 - t0

            return runner

        def _add_stats(stats: Any) -> Any:
            update = stats.update

            def counted(duration: float) -> Any:
                if recorder._last is not None:
                    recorder.windows.append(recorder._last)
                    recorder.offsets.append(recorder._last_slot)
                    recorder._last = None
                return update(duration)

            stats.update = counted
            recorder.iterations = int(getattr(stats, "iterations", 1) or 1)
            return add_stats(stats)

        fixture._make_runner = _make_runner
        fixture._add_stats = _add_stats
        return recorder

    @property
    def count(self) -> int:
        """Timed rounds recorded."""
        return len(self.windows)

    def extra_info(self, flops: float | None, samples: float | None) -> dict[str, Any]:
        """The energy figures of the rounds, for ``benchmark.extra_info`` (call after stop).

        Args:
            flops: FLOPs of one call of the benchmarked function, if declared.
            samples: Samples of one call, if declared.

        Returns:
            ``energy_per_round_j``, ``energy_per_round_uncertainty_j`` (about 95%: the
            smaller of the rounds' edge errors in quadrature and the error of the span
            from the first round to the last plus the energy of the gaps between rounds),
            ``energy_per_call_j``, ``energy_rounds``, ``energy_iterations`` (calls per
            round), ``energy_timed_s`` (time inside the rounds), ``avg_power_w`` (over the
            rounds), ``j_per_tflop`` and ``j_per_sample`` (None unless declared),
            ``energy_offsets`` (start-offset slots the rounds were spread over; 0 when
            not shifted), ``energy_offset_spread_j`` (the spread of energy per round
            across those slots, included in the uncertainty) and ``energy_window`` (what
            was measured). Energies are None with no device.
        """
        starts = [a for a, _ in self.windows]
        ends = [b for _, b in self.windows]
        window = self.tracker.energy_between(starts, ends)
        energy, unc = window.energy_j, window.uncertainty_j
        span = self.tracker.energy_between(starts[:1], ends[-1:])
        if energy is not None and unc is not None and span.energy_j is not None:
            # Rounds nearly tile their span, so their edge errors cancel pairwise; the span's
            # own error plus all the energy put in the gaps between rounds bounds the sum
            # better than the quadrature of thousands of tiny windows' edge errors.
            gaps_j = max(span.energy_j - energy, 0.0)
            unc = min(unc, (span.uncertainty_j or 0.0) + gaps_j)
        rounds, calls = self.count, self.count * self.iterations
        timed_s = math.fsum(b - a for a, b in self.windows)
        per_round_u = None if unc is None else unc / rounds
        slots = sorted({s for s in self.offsets if s >= 0})
        spread = None
        if energy is not None and per_round_u is not None and len(slots) >= 2:
            per_slot = []
            for slot in slots:
                mine = [w for w, s in zip(self.windows, self.offsets, strict=True) if s == slot]
                got = self.tracker.energy_between([a for a, _ in mine], [b for _, b in mine])
                if got.energy_j is not None:
                    per_slot.append(got.energy_j / len(mine))
            if len(per_slot) >= 2:
                figure = across_offsets(per_slot, per_round_u)
                per_round_u, spread = figure.uncertainty, figure.spread

        def per(n: float) -> float | None:
            return None if energy is None or not n else energy / n

        return {
            "energy_per_round_j": per(rounds),
            "energy_per_round_uncertainty_j": per_round_u,
            "energy_per_call_j": per(calls),
            "energy_rounds": rounds,
            "energy_iterations": self.iterations,
            "energy_timed_s": timed_s,
            "avg_power_w": per(timed_s),
            "j_per_tflop": per(flops * calls / FLOP_PER_TFLOP) if flops else None,
            "j_per_sample": per(samples * calls) if samples else None,
            "energy_offsets": len(slots) if spread is not None else 0,
            "energy_offset_spread_j": spread,
            "energy_window": "timed rounds only (no calibration, warmup or result call)",
        }
