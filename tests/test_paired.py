"""The A/B protocol: warm-up criterion, interleaving, stop rules, outliers, verdicts."""

from __future__ import annotations

import math
import random

import pytest

from greenai.errors import ConfigError
from greenai.paired import (
    Protocol,
    Ratio,
    implausible_saving,
    outliers,
    paired_ratio,
    round_order,
    run_rounds,
    unpaired_ratio,
    verdict,
    warm_up,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_warm_up_stops_once_two_windows_agree() -> None:
    clock = Clock()
    costs = iter([0.01 * (1 + 4 * 0.7**i) for i in range(1000)])  # cold, settling

    def call() -> None:
        clock.t += next(costs)

    got = warm_up(call, Protocol(warmup_window=5), clock)
    assert got.stable
    assert got.latency_s == pytest.approx(0.01, rel=0.05)
    assert 10 < got.calls < 40


def test_warm_up_gives_up_at_its_time_limit_and_says_so() -> None:
    clock = Clock()
    calls = []

    def call() -> None:  # latency that never settles: 5 fast calls, 5 slow ones...
        calls.append(1)
        clock.t += 0.01 if (len(calls) // 5) % 2 else 0.1

    got = warm_up(call, Protocol(warmup_window=5, warmup_max_s=2.0), clock)
    assert not got.stable
    assert 2.0 <= got.duration_s < 2.2


def test_rounds_are_interleaved_in_a_seeded_random_order() -> None:
    orders = [round_order(r, 3, seed=7) for r in range(20)]
    assert all(sorted(o) == [0, 1, 2] for o in orders)
    assert len({tuple(o) for o in orders}) > 1  # not always ABC
    assert orders == [round_order(r, 3, seed=7) for r in range(20)]  # reproducible
    assert orders != [round_order(r, 3, seed=8) for r in range(20)]


def test_drift_between_rounds_cancels_in_paired_ratios() -> None:
    # the machine slows 3x over the rounds (another job starts); B is truly 0.9x A
    drift = [1 + 0.1 * r for r in range(20)]
    noise = random.Random(3)
    a = [d * (1 + noise.gauss(0, 0.01)) for d in drift]
    b = [0.9 * d * (1 + noise.gauss(0, 0.01)) for d in drift]
    got = paired_ratio(a, b)
    assert got.low < 0.9 < got.high
    assert got.halfwidth < 0.02
    assert got.measurable
    unpaired = unpaired_ratio(a, b)  # the same figures, not paired: drift swamps the change
    assert not unpaired.measurable


def test_an_outlying_round_is_left_out_and_counted() -> None:
    a = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0]
    b = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0]  # B disturbed in the last round only
    got = paired_ratio(a, b)
    assert got.dropped == 1
    assert got.high < 1.05
    assert outliers([1.0, 1.0, 1.1, 0.9, 50.0], 5.0) == [False] * 4 + [True]
    assert outliers([1.0, 50.0], 5.0) == [False, False]  # too few to judge


def test_verdicts_claim_a_change_only_outside_the_noise() -> None:
    assert verdict(Ratio(0.6, 0.55, 0.65, 10)).startswith("40% less energy")
    assert verdict(Ratio(1.3, 1.2, 1.4, 10)).startswith("30% more energy")
    assert verdict(Ratio(3.0, 2.8, 3.2, 10)).startswith("3× the energy")
    flat = verdict(Ratio(0.9, 0.8, 1.02, 10))
    assert flat == "no measurable difference at this precision (±11%)"
    assert "too few rounds" in verdict(Ratio(0.5, 0.0, math.inf, 1))


def test_a_saving_with_unchanged_dense_work_is_implausible() -> None:
    cheaper = Ratio(0.11, 0.09, 0.13, 5)
    note = implausible_saving(cheaper, dense_flops_lower=False, size_lower=False, kernel=None)
    assert note is not None and "not a real saving" in note
    for kw in (
        {"dense_flops_lower": False, "size_lower": False, "kernel": "2:4 sparse"},
        {"dense_flops_lower": True, "size_lower": False, "kernel": None},
        {"dense_flops_lower": False, "size_lower": True, "kernel": None},
    ):
        assert implausible_saving(cheaper, **kw) is None  # type: ignore[arg-type]
    flat = Ratio(0.98, 0.9, 1.05, 5)
    assert implausible_saving(flat, dense_flops_lower=False, size_lower=False, kernel=None) is None


def _rounds_on(costs: dict[int, float], protocol: Protocol, glitch_round: int = -1):  # type: ignore[no-untyped-def]
    clock = Clock()
    rng = random.Random(5)
    seen: list[tuple[int, int]] = []

    def measure(v: int, r: int) -> float:
        seen.append((r, v))
        x = costs[v] * (1 + rng.gauss(0, 0.01))
        if r == glitch_round and v == 0:
            x *= 10  # a cold or disturbed baseline
        clock.t += x
        return x

    return run_rounds(measure, len(costs), protocol, clock), seen


def test_rounds_stop_at_the_stated_precision() -> None:
    rounds, seen = _rounds_on({0: 1.0, 1: 0.5, 2: 1.0}, Protocol(precision=0.05))
    assert rounds.stopped_by == "precision"
    assert len(rounds.kept) == 5
    assert all(x.halfwidth <= 0.05 for x in rounds.ratios(Protocol()))
    by_round = [[v for r2, v in seen if r2 == r] for r in range(5)]
    assert by_round == rounds.orders


def test_rounds_stop_at_the_budget_or_the_round_limit() -> None:
    noisy = Protocol(precision=1e-6, budget_s=30.0, max_rounds=100)
    rounds, _ = _rounds_on({0: 1.0, 1: 1.0}, noisy)
    assert rounds.stopped_by == "budget"
    assert 14 <= len(rounds.kept) <= 16  # two 1 s windows a round: 30 s is 15 rounds
    rounds, _ = _rounds_on({0: 1.0, 1: 1.0}, Protocol(precision=1e-6, max_rounds=8))
    assert rounds.stopped_by == "max_rounds" and len(rounds.kept) == 8


def test_an_outlying_baseline_round_is_measured_again() -> None:
    rounds, _ = _rounds_on({0: 1.0, 1: 0.5}, Protocol(), glitch_round=0)  # a cold baseline
    assert rounds.remeasured == 1
    assert rounds.kept[0] is False
    assert rounds.kept.count(True) == 5
    ratio = rounds.ratios(Protocol())[1]
    assert ratio.low < 0.5 < ratio.high


def test_protocol_refuses_rules_that_cannot_hold() -> None:
    with pytest.raises(ConfigError, match="min_rounds"):
        Protocol(min_rounds=1)
    with pytest.raises(ConfigError, match="max_rounds"):
        Protocol(min_rounds=5, max_rounds=4)
    with pytest.raises(ConfigError, match="paired rounds"):
        paired_ratio([1.0], [1.0, 2.0])
    assert "interleaved" in Protocol().describe()
