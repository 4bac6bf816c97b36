"""The proxy's Prometheus metrics: J/request and J/token histograms, by model (issue 25)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("prometheus_client")

from greenai.serving.attribution import RequestEnergy
from greenai.serving.metrics import RequestMetrics


def _request(
    rid: str, model: str | None, prompt: int, gen: int, pre_j: float, dec_j: float
) -> RequestEnergy:
    return RequestEnergy(
        rid, model, "ok", 0.0, 1.0, prompt, gen, pre_j + dec_j, pre_j, dec_j, 0.1, 0.0,
        "counter", "spans",
    )  # fmt: skip


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for labels, value in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        key = tuple(sorted(tuple(kv.split("=", 1)) for kv in labels.split(",")))
        out[tuple((k, v.strip('"')) for k, v in key)] = float(value)
    return out


def test_joules_per_token_and_per_request_are_histograms_by_model() -> None:
    m = RequestMetrics()
    rows = [
        _request("a", "llama", 10, 20, 0.5, 4.0),
        _request("b", "llama", 30, 10, 1.5, 2.0),
        _request("c", "qwen", 5, 0, 0.2, 0.0),  # nothing generated: no decode J/token
        _request("d", None, 4, 8, 0.1, 0.8),
    ]
    for r in rows:
        m.observe(r)
    text = m.exposition()[0].decode()
    token_sum = _samples(text, "greenai_token_energy_joules_sum")
    token_count = _samples(text, "greenai_token_energy_joules_count")

    def key(model: str, phase: str) -> tuple[tuple[str, str], ...]:
        return (("method", "counter"), ("model", model), ("phase", phase))

    assert token_sum[key("llama", "decode")] == pytest.approx(4.0 / 20 + 2.0 / 10)
    assert token_count[key("llama", "decode")] == 2
    assert token_sum[key("llama", "prefill")] == pytest.approx(0.5 / 10 + 1.5 / 30)
    assert key("qwen", "decode") not in token_count and token_count[key("qwen", "prefill")] == 1
    assert token_count[key("unknown", "decode")] == 1  # no model named: "unknown"
    request_sum = _samples(text, "greenai_request_energy_joules_sum")
    by_model = {dict(k)["model"]: v for k, v in request_sum.items()}
    assert by_model == pytest.approx({"llama": 8.0, "qwen": 0.2, "unknown": 0.9})
    buckets = _samples(text, "greenai_token_energy_joules_bucket")
    assert buckets[tuple(sorted((*key("llama", "decode"), ("le", "0.3"))))] == 2  # 0.2, 0.2
    assert buckets[tuple(sorted((*key("llama", "decode"), ("le", "0.1"))))] == 0
