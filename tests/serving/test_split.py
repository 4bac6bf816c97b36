from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenai.errors import ConfigError
from greenai.serving import (
    Iteration,
    RequestSpan,
    attribute,
    estimate_first_token,
    fit_token_costs,
)


def steady(power_w: float, t1: float, n: int = 201) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, t1, n)
    return t, power_w * t


def test_requests_alone_get_their_stretch_and_the_gap_is_idle() -> None:
    t, e = steady(100.0, 10.0)
    a = RequestSpan("a", 1.0, 3.0, prompt_tokens=10, completion_tokens=20)
    b = RequestSpan("b", 5.0, 6.0, prompt_tokens=10, completion_tokens=20)
    att = attribute(t, e, [a, b], method="model")
    ra, rb = att.requests
    assert ra.energy_j == pytest.approx(200.0)
    assert rb.energy_j == pytest.approx(100.0)
    assert att.idle_j == pytest.approx(700.0)
    assert att.baseline_j == 0.0 and att.total_j == pytest.approx(1000.0)
    assert ra.method == "model" and ra.rule == "spans"
    assert any("baseline" in n for n in att.notes)
    # alone in flight, no rule can move its energy elsewhere
    assert ra.rule_uncertainty_j == pytest.approx(0.0, abs=1e-9)


def test_baseline_is_kept_apart_from_the_requests() -> None:
    t, e = steady(100.0, 10.0)
    a = RequestSpan("a", 2.0, 4.0, prompt_tokens=4, completion_tokens=4)
    att = attribute(t, e, [a], baseline_power_w=30.0)
    assert att.requests[0].energy_j == pytest.approx(140.0)
    assert att.baseline_j == pytest.approx(60.0)
    assert att.idle_j == pytest.approx(800.0)
    assert not att.notes


def test_overlapping_decodes_share_the_stretch_they_run_together() -> None:
    # both decode at one token per 10 ms from t=1; b runs 4x longer than a
    t, e = steady(200.0, 10.0)
    a = RequestSpan("a", 1.0, 2.0, prompt_tokens=5, completion_tokens=100, first_token_s=1.0)
    b = RequestSpan("b", 1.0, 5.0, prompt_tokens=5, completion_tokens=400, first_token_s=1.0)
    att = attribute(t, e, [a, b])
    ra, rb = att.requests
    assert rb.decode_energy_j / ra.decode_energy_j == pytest.approx(7.0, rel=1e-9)
    # while both run they share a second equally; b alone carries 3 s more
    assert ra.energy_j == pytest.approx(100.0)
    assert rb.energy_j == pytest.approx(100.0 + 600.0)
    assert ra.prefill_energy_j == 0.0  # the prompt took no time: first token at the start


def test_prefill_weight_charges_prompt_tokens_their_cost() -> None:
    t, e = steady(100.0, 4.0)
    a = RequestSpan("a", 0.0, 4.0, prompt_tokens=100, completion_tokens=0)
    b = RequestSpan("b", 0.0, 4.0, prompt_tokens=0, completion_tokens=100, first_token_s=0.0)
    plain = attribute(t, e, [a, b])
    weighted = attribute(t, e, [a, b], token_costs=(1.0, 3.0))
    assert plain.requests[0].energy_j == pytest.approx(200.0)
    assert weighted.requests[0].energy_j == pytest.approx(100.0)
    assert weighted.requests[1].energy_j == pytest.approx(300.0)


def test_iterations_place_tokens_and_their_costs_are_measured() -> None:
    # a curve whose every iteration costs 0.5 J + 0.01 J/prefill token + 0.1 J/decode token
    rng = np.random.default_rng(1)
    its, t, e = [], [0.0], [0.0]
    for k in range(40):
        p = int(rng.integers(0, 200)) if k % 3 == 0 else 0
        d = int(rng.integers(1, 16))
        ids = [f"r{j}" for j in range(d)]
        it = Iteration(
            k * 0.1,
            k * 0.1 + 0.1,
            prefill={"r0": p} if p else {},
            decode=dict.fromkeys(ids, 1),
        )
        its.append(it)
        t.append(it.end_s)
        e.append(e[-1] + 0.5 + 0.01 * p + 0.1 * d)
    assert fit_token_costs(
        np.diff(e), [sum(i.prefill.values()) for i in its], [sum(i.decode.values()) for i in its]
    ) == pytest.approx((0.01, 0.1), rel=1e-6)
    spans = [RequestSpan(f"r{j}", 0.0, 4.0, completion_tokens=1) for j in range(16)]
    att = attribute(t, e, spans, iterations=its)
    assert att.rule == "iterations"
    assert (att.prefill_weight, att.decode_weight) == pytest.approx((0.01, 0.1), rel=1e-6)
    assert att.requests_j + att.idle_j + att.baseline_j == pytest.approx(att.total_j, rel=1e-12)
    # r0 is in every iteration and carries all prefill tokens: the most energy
    assert max(att.requests, key=lambda r: r.energy_j).request_id == "r0"
    assert att.requests[0].prefill_energy_j > 0
    named = {rid for it in its for rid in it.decode}
    assert all((r.rule == "iterations") == (r.request_id in named) for r in att.requests)
    assert (len(named) < 16) == any("not in any reported iteration" in n for n in att.notes)


def test_a_request_without_tokens_is_charged_by_time_in_flight() -> None:
    t, e = steady(50.0, 2.0)
    att = attribute(t, e, [RequestSpan("x", 0.5, 1.5, status="error")])
    assert att.requests[0].energy_j == pytest.approx(50.0)
    assert att.requests[0].status == "error"


def test_bad_input_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="before it starts"):
        RequestSpan("a", 2.0, 1.0)
    with pytest.raises(ConfigError, match=">= 0"):
        RequestSpan("a", 0.0, 1.0, prompt_tokens=-1)
    with pytest.raises(ConfigError, match="first_token_s"):
        RequestSpan("a", 0.0, 1.0, first_token_s=2.0)
    with pytest.raises(ConfigError, match="2 points"):
        attribute([0.0], [0.0], [])
    with pytest.raises(ConfigError, match="rise"):
        attribute([0.0, 0.0], [0.0, 1.0], [])
    with pytest.raises(ConfigError, match="within"):
        attribute([0.0, 1.0], [0.0, 1.0], [], start_s=-1.0)
    with pytest.raises(ConfigError, match="unique"):
        attribute([0.0, 1.0], [0.0, 1.0], [RequestSpan("a", 0, 1), RequestSpan("a", 0, 1)])
    with pytest.raises(ConfigError, match="before it starts"):
        Iteration(1.0, 0.5)


spans_st = st.lists(
    st.tuples(
        st.floats(0.0, 9.0),
        st.floats(0.0, 5.0),
        st.integers(0, 2000),
        st.integers(0, 2000),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    spans=spans_st,
    powers=st.lists(st.floats(0.0, 800.0), min_size=2, max_size=60),
    baseline=st.one_of(st.none(), st.floats(0.0, 500.0)),
    window=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    n_iter=st.integers(0, 20),
)
def test_requests_baseline_and_idle_add_up_to_the_total(
    spans: list[tuple[float, float, int, int, float | None]],
    powers: list[float],
    baseline: float | None,
    window: tuple[float, float],
    n_iter: int,
) -> None:
    t = np.linspace(0.0, 12.0, len(powers) + 1)
    e = np.concatenate([[0.0], np.cumsum(np.array(powers) * np.diff(t))])
    reqs = [
        RequestSpan(
            f"r{i}",
            s,
            s + dur,
            prompt_tokens=p,
            completion_tokens=d,
            first_token_s=None if f is None else s + f * dur,
            # every other first token an estimate below a bound halfway to the end
            first_token_bound_s=None
            if f is None or i % 2
            else min(max(s + (f + (1 - f) / 2) * dur, s + f * dur), s + dur),
        )
        for i, (s, dur, p, d, f) in enumerate(spans)
    ]
    its = [
        Iteration(0.3 * k, 0.3 * k + 0.2, prefill={"r0": k}, decode={"r1": 1, "r2": 2})
        for k in range(n_iter)
    ]
    lo, hi = sorted(12.0 * x for x in window)
    att = attribute(
        t,
        e,
        reqs,
        iterations=its,
        start_s=lo,
        end_s=hi,
        baseline_power_w=baseline,
        uncertainty_j=5.0,
    )
    parts = att.requests_j + att.baseline_j + att.idle_j
    assert math.isclose(parts, att.total_j, rel_tol=1e-9, abs_tol=1e-9)
    assert att.total_j == pytest.approx(np.interp(hi, t, e) - np.interp(lo, t, e), abs=1e-9)
    for r in att.requests:
        assert r.energy_j >= -1e-9
        assert r.prefill_energy_j + r.decode_energy_j == pytest.approx(r.energy_j, abs=1e-9)
        assert r.uncertainty_j >= 0 and math.isfinite(r.uncertainty_j)
    if att.total_j > 0:
        assert math.fsum(r.curve_uncertainty_j for r in att.requests) <= 5.0 + 1e-6


@pytest.mark.parametrize("power_w", [1e-307, 5e-324, 1e-300])
def test_a_vanishing_total_gives_finite_shares(power_w: float) -> None:
    """A total near the smallest float (hypothesis once found ≈ 1e-308): part/total would
    overflow to inf and inf × 0 to NaN; every request's ± stays finite and ≤ the job's."""
    t = np.array([0.0, 1.0, 2.0])
    e = np.array([0.0, power_w, 2 * power_w])
    reqs = [
        RequestSpan("a", 0.0, 2.0, prompt_tokens=3, completion_tokens=5),
        RequestSpan("b", 0.5, 1.5, prompt_tokens=0, completion_tokens=0),
    ]
    att = attribute(t, e, reqs, uncertainty_j=5.0)
    for r in att.requests:
        assert math.isfinite(r.energy_j) and math.isfinite(r.uncertainty_j)
        assert 0.0 <= r.curve_uncertainty_j <= 5.0
    assert math.isclose(att.requests_j + att.baseline_j + att.idle_j, att.total_j, abs_tol=1e-300)


def test_a_first_token_below_a_bound_moves_by_its_estimate_and_the_rule_covers_the_bound() -> None:
    # a and b run together at a steady 100 W; b's first text came late, with 30 of its 40
    # tokens: its first token is an estimate, the seen time a bound
    t, e = steady(100.0, 10.0)
    f_b = estimate_first_token(2.0, 5.0, 6.0, 30, 40)
    assert f_b == pytest.approx(2.0 + 4.0 / 41)  # 10 tokens after cannot time 29 before
    assert estimate_first_token(2.0, 5.0, 6.0, 5, 40) == pytest.approx(5.0 - 4 / 35)
    assert estimate_first_token(2.0, 5.0, 6.0, 1, 40) == 5.0  # seen alone: as seen
    # the tokens after came as a late backlog: they time nothing, the spans rule's guess
    late = estimate_first_token(2.0, 5.0, 5.01, 1, 40, paced=False)
    assert late == pytest.approx(2.0 + 3.01 / 41)
    assert estimate_first_token(2.0, 5.0, 5.01, 5, 40, paced=False) == late
    assert estimate_first_token(2.0, 5.0, 5.0, 5, 40) >= 2.0  # never before the start
    a = RequestSpan("a", 1.0, 6.0, prompt_tokens=20, completion_tokens=40, first_token_s=1.5)
    b = RequestSpan(
        "b", 2.0, 6.0, 20, 40, first_token_s=f_b, first_token_bound_s=5.0, notes=("late",)
    )
    att = attribute(t, e, [a, b], uncertainty_j=0.0)
    at_bound = attribute(t, e, [a, RequestSpan("b", 2.0, 6.0, 20, 40, first_token_s=5.0)])
    plain = attribute(t, e, [a, RequestSpan("b", 2.0, 6.0, 20, 40, first_token_s=f_b)])
    for got, bound, est in zip(att.requests, at_bound.requests, plain.requests, strict=True):
        # the estimate decides the figures; the bound only widens the ±
        assert got.energy_j == pytest.approx(est.energy_j, rel=1e-12)
        assert got.decode_energy_j == pytest.approx(est.decode_energy_j, rel=1e-12)
        for part in ("energy_j", "decode_energy_j"):  # a's figures move with b's too
            move = abs(getattr(got, part) - getattr(bound, part))
            assert got.rule_uncertainty_j >= move - 1e-9 and move > 1.0
        if got.request_id == "b":
            assert got.notes == ("late",) and got.rule_uncertainty_j > est.rule_uncertainty_j
        else:
            assert got.notes == ()
            assert got.rule_uncertainty_j >= est.rule_uncertainty_j * (1 - 1e-12)
    assert math.isclose(att.requests_j + att.idle_j, att.total_j, rel_tol=1e-12)
    with pytest.raises(ConfigError, match="first_token_bound_s"):
        RequestSpan("c", 0.0, 1.0, first_token_s=0.5, first_token_bound_s=0.4)
    with pytest.raises(ConfigError, match="first_token_bound_s"):
        RequestSpan("c", 0.0, 1.0, first_token_bound_s=0.4)
