"""RoundRecorder delays short rounds to shifted offsets of the sensor's update (issue 17)."""

from __future__ import annotations

import math
from typing import Any

import pytest

import greenai
from greenai.protocol import SHIFTS
from greenai.pytest_rounds import MAX_SHIFTED, RoundRecorder
from greenai.testing import FakeClock, FakeGPU, SquareWave


class _Fixture:
    """The two internals of pytest-benchmark's fixture that RoundRecorder wraps."""

    def _make_runner(self, function: Any, args: Any, kwargs: Any) -> Any:
        return lambda: function(*args, **kwargs)

    def _add_stats(self, stats: Any) -> Any:
        return stats


class _Stats:
    iterations = 1

    def __init__(self) -> None:
        self.durations: list[float] = []

    def update(self, duration: float) -> None:
        self.durations.append(duration)


def _run_rounds(round_s: float, rounds: int, mode: str = "sampled") -> tuple[Any, list[float]]:
    clock = FakeClock()
    # a wave locked to the 100 ms update: rounds at shifted offsets see other parts of it
    load = SquareWave(0.05, 0.05, high_w=700.0, low_w=100.0, start_s=0.0)
    gpu = FakeGPU(clock=clock, seed=2, power_w=load, counter_mode=mode)
    job = greenai.track("bench", devices=[gpu], clock=clock, period_s=0.01).start()
    delays: list[float] = []

    def sleep(s: float) -> None:
        delays.append(s)
        clock.advance(s)

    fixture = _Fixture()
    recorder = RoundRecorder.install(fixture, job, clock.now, sleep=sleep)
    assert recorder is not None
    stats = _Stats()
    # pytest-benchmark calls these two internals of its fixture; RoundRecorder wraps them.
    fixture._add_stats(stats)
    runner = fixture._make_runner(lambda: clock.advance(round_s), (), {})
    for _ in range(rounds):
        runner()
        stats.update(round_s)
    job.stop()
    return recorder, delays


def test_short_rounds_are_spread_over_the_offsets_and_their_spread_is_in_the_uncertainty() -> None:
    recorder, delays = _run_rounds(0.02, 60)
    assert len(delays) == MAX_SHIFTED  # the first round has no duration yet; then 32 delays
    assert recorder.offsets[1 : 1 + MAX_SHIFTED] == [i % SHIFTS for i in range(MAX_SHIFTED)]
    assert recorder.offsets[0] == -1 and set(recorder.offsets[1 + MAX_SHIFTED :]) == {-1}
    for i, d in enumerate(delays):  # each delay in its slot of the 100 ms update
        assert (i % SHIFTS) * 0.1 / SHIFTS <= d < (i % SHIFTS + 1) * 0.1 / SHIFTS
    info = recorder.extra_info(None, None)
    assert info["energy_offsets"] == SHIFTS
    spread = info["energy_offset_spread_j"]
    assert spread > 0  # the rounds start at other phases of the wave
    # the same rounds as if they had not been shifted: no spread, a smaller uncertainty
    recorder.offsets = [-1] * len(recorder.offsets)
    plain = recorder.extra_info(None, None)
    assert plain["energy_offsets"] == 0 and plain["energy_offset_spread_j"] is None
    assert plain["energy_per_round_j"] == pytest.approx(info["energy_per_round_j"])
    own = plain["energy_per_round_uncertainty_j"]
    assert info["energy_per_round_uncertainty_j"] == pytest.approx(math.hypot(own, spread))


def test_rounds_as_long_as_an_update_are_not_delayed() -> None:
    recorder, delays = _run_rounds(0.12, 10, mode="exact")
    assert delays == []
    info = recorder.extra_info(None, None)
    assert info["energy_offsets"] == 0 and info["energy_offset_spread_j"] is None
    assert info["energy_per_round_j"] == pytest.approx(400.0 * 0.12, rel=0.1)


def test_a_benchmark_group_is_compared_to_its_first_test_beyond_the_noise_only() -> None:
    import random

    from greenai.pytest_session import comparison_lines

    rng = random.Random(4)

    def row(test: str, seconds: float, noise: float, group: str = "g") -> dict[str, object]:
        rounds = [seconds * (1 + rng.gauss(0, noise)) for _ in range(40)]
        return {"test": test, "group": group, "round_s": rounds, "per_call_j": None}

    rows = [
        row("t::dense", 1e-3, 0.02),
        row("t::pruned", 1.005e-3, 0.02),  # the same dense work: within the noise
        row("t::smaller", 0.5e-3, 0.02),
        row("u::alone", 1e-3, 0.02, group="u"),  # a group of one: nothing to compare
    ]
    lines = comparison_lines(rows)
    assert lines[0] == "greenai: group g, against t::dense"
    assert lines[1].startswith("  t::pruned: no measurable difference at this precision (±")
    assert lines[2].startswith("  t::smaller: 50% less time per call (95% CI")
    assert not any("u::alone" in line for line in lines)
