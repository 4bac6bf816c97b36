from __future__ import annotations

import math

import numpy as np
import pytest

import greenai
from greenai.errors import ConfigError
from greenai.serving import RequestSpan, ServingMeter, attribute
from greenai.testing import FakeClock, FakeGPU


def test_live_requests_settle_in_passes_and_add_up_to_the_job() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(2.0, 100.0), (6.0, 400.0), (9.0, 100.0)], seed=3)
    seen = []
    with greenai.track("serve", devices=[gpu], clock=clock) as job:
        meter = ServingMeter(job, on_request=seen.append, keep=3)
        clock.advance(0.5)
        for k in range(8):
            with meter.request(model="tiny") as req:
                clock.advance(0.2)
                req.first_token()
                clock.advance(0.1 * (k + 1))
                req.tokens(prompt=16, completion=10 * (k + 1))
            clock.advance(0.3)
            if k % 3 == 0:
                meter.settle()
        open_id = meter.begin("late", model="tiny")
        clock.advance(0.5)
        assert meter.in_flight == 1
    meter.settle(final=True)
    tot = meter.totals()
    assert tot.requests == 9 and len(seen) == 9 and len(meter.recent) == 3
    assert math.isclose(tot.requests_j + tot.baseline_j + tot.idle_j, tot.total_j, rel_tol=1e-9)
    r = job.result
    assert tot.total_j == pytest.approx(r.energy_j, rel=0.02)
    assert tot.idle_j > 0 and tot.baseline_j == 0.0
    assert tot.method == "counter" and tot.rules == ("spans",)
    assert tot.prompt_tokens == 8 * 16 and tot.completion_tokens == 360
    late = next(s for s in seen if s.request_id == open_id)
    assert late.status == "unfinished" and late.energy_j > 0
    # each request carries its own curve and rule uncertainty
    assert all(s.curve_uncertainty_j > 0 for s in seen)


def test_settling_in_passes_gives_what_one_pass_gives() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=250.0, seed=5)
    spans = []
    with greenai.track("serve", devices=[gpu], clock=clock) as job:
        meter = ServingMeter(job)
        clock.advance(0.2)
        for k in range(6):  # two requests overlap each time
            a = meter.begin(f"a{k}")
            clock.advance(0.15)
            b = meter.begin(f"b{k}")
            clock.advance(0.25)
            meter.end(a, prompt_tokens=8, completion_tokens=20)
            clock.advance(0.1)
            meter.end(b, prompt_tokens=30, completion_tokens=5)
            meter.settle()
    meter.settle(final=True)
    got = {r.request_id: r.energy_j for r in meter.recent}
    for r in meter.recent:
        spans.append(
            RequestSpan(r.request_id, r.start_s, r.end_s, r.prompt_tokens, r.completion_tokens)
        )
    cols = job.timeline(as_frame=False)
    once = attribute(cols["t_s"], cols["energy_j"], spans)
    for r in once.requests:
        assert got[r.request_id] == pytest.approx(r.energy_j, rel=1e-9)


def test_after_the_fact_requests_and_baseline() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(1.0, 80.0), (3.0, 300.0), (5.0, 80.0)], seed=1)
    with greenai.track("serve", devices=[gpu], clock=clock, baseline_s=1.0) as job:
        clock.advance(5.0)
    meter = ServingMeter(job)
    meter.add(RequestSpan("x", 1.0, 3.0, prompt_tokens=10, completion_tokens=100))
    meter.settle(final=True)
    (x,) = meter.recent
    tot = meter.totals()
    assert tot.baseline_j == pytest.approx(80.0 * 2.0, rel=0.1)
    assert x.energy_j == pytest.approx(220.0 * 2.0, rel=0.1)
    assert math.isclose(tot.requests_j + tot.baseline_j + tot.idle_j, tot.total_j, rel_tol=1e-9)
    with pytest.raises(ConfigError, match="before"):
        meter.add(RequestSpan("y", 0.5, 1.0))
    with pytest.raises(ConfigError, match="not in flight"):
        meter.end("nope")
    with pytest.raises(ConfigError, match="keep"):
        ServingMeter(job, keep=-1)


def test_iterations_on_a_live_job() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=200.0, seed=2)
    with greenai.track("serve", devices=[gpu], clock=clock) as job:
        meter = ServingMeter(job)
        ids = [meter.begin(f"q{i}") for i in range(3)]
        t = meter.now_s()
        for k in range(20):
            clock.advance(0.05)
            decode = {rid: 1 for rid in ids[: 1 + k % 3]}
            meter.iteration(t, meter.now_s(), prefill={"q0": 50} if k == 0 else {}, decode=decode)
            t = meter.now_s()
        for rid in ids:
            meter.end(rid, prompt_tokens=50 if rid == "q0" else 0, completion_tokens=5)
    meter.settle(final=True)
    by_id = {r.request_id: r for r in meter.recent}
    assert {r.rule for r in by_id.values()} == {"iterations"}
    assert by_id["q0"].energy_j > by_id["q1"].energy_j > by_id["q2"].energy_j
    assert np.isfinite([r.uncertainty_j for r in by_id.values()]).all()


def test_bad_marks_are_refused_at_the_call_and_lose_no_request() -> None:
    clock = FakeClock()
    seen = []
    with greenai.track("serve", devices=[FakeGPU(clock=clock)], clock=clock) as job:
        meter = ServingMeter(job, on_request=seen.append)
        clock.advance(0.5)
        for bad in (math.nan, math.inf):
            with pytest.raises(ConfigError, match="start_s must be finite"):
                meter.begin("never", start_s=bad)
        rid = meter.begin("kept")
        with pytest.raises(ConfigError, match="t_s must be finite"):
            meter.first_token(rid, t_s=math.nan)
        clock.advance(0.5)
        for bad in (-1, 1.5, "12", math.nan, True):
            with pytest.raises(ConfigError, match="token counts"):
                meter.end(rid, prompt_tokens=bad)  # type: ignore[arg-type]
        assert meter.in_flight == 1  # still in flight: ended again with good counts
        meter.end(rid, prompt_tokens=4, completion_tokens=8)
        clock.advance(0.5)
    meter.settle(final=True)  # nothing refused earlier can break the final pass
    assert [(s.request_id, s.status, s.prompt_tokens) for s in seen] == [("kept", "ok", 4)]
    assert seen[0].energy_j > 0


def test_a_request_handle_takes_whole_token_counts_only() -> None:
    clock = FakeClock()
    with greenai.track("serve", devices=[FakeGPU(clock=clock)], clock=clock) as job:
        meter = ServingMeter(job)
        with meter.request() as req:
            clock.advance(0.5)
            with pytest.raises(ConfigError, match="whole numbers"):
                req.tokens(prompt=2.5)
            req.tokens(prompt=np.int64(3), completion=4.0)
    meter.settle(final=True)
    assert [(r.prompt_tokens, r.completion_tokens) for r in meter.recent] == [(3, 4)]


def test_a_first_read_that_held_many_tokens_is_a_bound_not_the_first_token() -> None:
    # Three lone requests of 50 tokens on a steady draw, each 1 s long, its first text seen
    # at 0.98 s: seen alone (the decode did take those 20 ms), seen with 49 of the 50 tokens
    # (the server's chunks merged: the decode took the whole second), and seen with 10 of
    # 50 whose 40 others came over the last 20 ms.
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=200.0, noise_w=0.0, seed=4)
    with greenai.track("serve", devices=[gpu], clock=clock) as job:
        meter = ServingMeter(job)
        for rid, seen in (("alone", 1), ("merged", 49), ("partly", 10)):
            clock.advance(0.5)
            meter.begin(rid)
            clock.advance(0.98)
            meter.first_token(rid)
            clock.advance(0.02)
            meter.end(rid, prompt_tokens=4, completion_tokens=50, first_tokens=seen)
        clock.advance(0.5)
    meter.settle(final=True)
    by = {r.request_id: r for r in meter.recent}
    tot = meter.totals()
    assert math.isclose(tot.requests_j + tot.baseline_j + tot.idle_j, tot.total_j, rel_tol=1e-9)
    alone, merged, partly = by["alone"], by["merged"], by["partly"]
    assert not alone.notes and alone.decode_energy_j == pytest.approx(0.02 * 200, rel=0.05)
    # merged: nothing timed the decode after the read: placed one step of 51 after the start
    assert merged.decode_energy_j == pytest.approx(merged.energy_j * 50 / 51, rel=0.02)
    (note,) = merged.notes
    assert "49 of the 50" in note and "0.980 s" in note and "0.020 s (estimate)" in note
    # its ± covers the split with the first token where it was seen (decode 4 J)
    assert merged.decode_energy_j - merged.uncertainty_j <= 0.02 * 200 * 1.05
    assert merged.rule_uncertainty_j == pytest.approx(merged.decode_energy_j - 4.0, rel=0.05)
    # partly: 40 tokens over 20 ms time the 9 before the read: 4.5 ms earlier
    assert partly.decode_energy_j == pytest.approx(0.0245 * 200, rel=0.05)
    assert "10 of the 50" in partly.notes[0]
    assert partly.decode_energy_j - partly.uncertainty_j <= 0.02 * 200 * 1.05
    assert partly.to_dict()["notes"] == list(partly.notes) and alone.to_dict()["notes"] == []
