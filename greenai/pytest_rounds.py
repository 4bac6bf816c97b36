"""Which windows of a pytest-benchmark run were its timed rounds, for energy per round.

pytest-benchmark calls one *runner* for calibration, warmup and the timed rounds alike, and
records a duration in its stats only after a timed round. :class:`RoundRecorder` wraps the
fixture's runner factory to time-stamp every runner call on the tracker's clock, and its
stats to keep the last call's window whenever a round is recorded. So the energy per round
covers the timed rounds only: not calibration, warmup, the gaps between rounds, nor the
extra call that returns the function's result.

It relies on two internals of ``BenchmarkFixture`` (``_make_runner`` and ``_add_stats``,
present in pytest-benchmark 3 to 5). Where they are missing, nothing is wrapped and the
plugin reports the whole test instead (``per test`` in the summary).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from greenai.tracker import Tracker
from greenai.units import FLOP_PER_TFLOP

__all__ = ["RoundRecorder"]


class RoundRecorder:
    """Time-stamps the timed rounds of one ``benchmark`` fixture.

    Attributes:
        windows: ``(start, end)`` of each timed round on the tracker's clock (s).
        iterations: Calls of the benchmarked function per round.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.windows: list[tuple[float, float]] = []
        self.iterations = 1
        self._last: tuple[float, float] | None = None

    @classmethod
    def install(
        cls, fixture: Any, tracker: Tracker, now: Callable[[], float]
    ) -> RoundRecorder | None:
        """Wrap ``fixture`` (a pytest-benchmark ``BenchmarkFixture``); None if it cannot be.

        Args:
            fixture: The test's ``benchmark`` fixture, before it runs.
            tracker: The test's tracker, whose windows these are.
            now: The tracker's clock (seconds).
        """
        make_runner = getattr(fixture, "_make_runner", None)
        add_stats = getattr(fixture, "_add_stats", None)
        if not callable(make_runner) or not callable(add_stats):
            return None
        recorder = cls(tracker)

        def _make_runner(function: Any, args: Any, kwargs: Any) -> Any:
            inner = make_runner(function, args, kwargs)

            def runner(*a: Any, **k: Any) -> Any:
                t0 = now()
                try:
                    return inner(*a, **k)
                finally:
                    recorder._last = (t0, now())

            return runner

        def _add_stats(stats: Any) -> Any:
            update = stats.update

            def counted(duration: float) -> Any:
                if recorder._last is not None:
                    recorder.windows.append(recorder._last)
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
            rounds), ``j_per_tflop`` and ``j_per_sample`` (None unless declared) and
            ``energy_window`` (what was measured). Energies are None with no device.
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

        def per(n: float) -> float | None:
            return None if energy is None or not n else energy / n

        return {
            "energy_per_round_j": per(rounds),
            "energy_per_round_uncertainty_j": None if unc is None else unc / rounds,
            "energy_per_call_j": per(calls),
            "energy_rounds": rounds,
            "energy_iterations": self.iterations,
            "energy_timed_s": timed_s,
            "avg_power_w": per(timed_s),
            "j_per_tflop": per(flops * calls / FLOP_PER_TFLOP) if flops else None,
            "j_per_sample": per(samples * calls) if samples else None,
            "energy_window": "timed rounds only (no calibration, warmup or result call)",
        }
