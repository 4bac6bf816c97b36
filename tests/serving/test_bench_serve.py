from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from fake_upstream import make_app, spawn, start  # noqa: E402

from greenai.bench.compare import compare_files  # noqa: E402
from greenai.errors import ConfigError  # noqa: E402
from greenai.serving.attribution import RequestEnergy  # noqa: E402
from greenai.serving.bench import (  # noqa: E402
    level_row,
    pareto,
    render_html,
    render_table,
    serve_document,
)
from greenai.serving.loadgen import Sample, generated_prompts, load_prompts, run_level  # noqa: E402


def energy(
    rid: str, j: float, prompt: int = 10, gen: int = 20, tokens: str = "counted"
) -> RequestEnergy:
    return RequestEnergy(
        rid, "m", "ok", 0.0, 1.0, prompt, gen, j, j / 4, 3 * j / 4, 0.1 * j, 0.0, "model",
        "spans", tokens=tokens,
    )  # fmt: skip


def test_a_level_counts_only_its_steady_requests() -> None:
    samples = [
        Sample("a", 0.0, 1.0, 200, False),  # warm-up
        Sample("b", 2.0, 3.0, 200, True),
        Sample("c", 2.0, 4.0, 200, True),
        Sample("d", 2.5, 3.5, 500, True),
        Sample("e", 9.0, 12.0, 200, False),  # ended after the window
    ]
    settled = {k: energy(k, j) for k, j in (("a", 99.0), ("b", 2.0), ("c", 4.0), ("e", 99.0))}
    row = level_row("serve/concurrency=2", {"concurrency": 2}, samples, settled, 10.0)
    assert row["requests"] == 2 and row["errors"] == 1
    assert row["j_per_request"] == pytest.approx(3.0)
    assert row["wh_per_1000_queries"] == pytest.approx(3.0 * 1000 / 3600)
    assert row["prefill_j_per_token"] == pytest.approx(1.5 / 20)
    assert row["decode_j_per_token"] == pytest.approx(4.5 / 40)
    assert row["tokens_per_s"] == pytest.approx(4.0)
    assert row["latency_p50_s"] == pytest.approx(1.5)
    assert row["j_per_request_uncertainty"] > 0.3  # the requests' own ± and their spread
    assert row["methods"] == ["model"]
    empty = level_row("serve/concurrency=9", {}, samples[:1], settled, 10.0)
    assert empty["status"] == "failed" and "steady window" in empty["reason"]


def test_j_per_token_leaves_out_estimated_counts() -> None:
    samples = [Sample(k, 2.0, 3.0, 200, True) for k in "abc"]
    settled = {
        "a": energy("a", 4.0),
        "b": energy("b", 8.0, tokens="estimated"),  # no usage: out of both parts
        "c": energy("c", 12.0, tokens="prompt_estimated"),  # streamed: out of prefill
    }
    row = level_row("serve/concurrency=3", {}, samples, settled, 10.0)
    assert row["prefill_j_per_token"] == pytest.approx(1.0 / 10)
    assert row["decode_j_per_token"] == pytest.approx((3.0 + 9.0) / 40)
    assert row["tokens_not_counted"] == 2 and row["j_per_request"] == pytest.approx(8.0)
    assert "tokens_not_counted" not in level_row("x", {}, samples[:1], settled, 10.0)


def test_pareto_keeps_what_nothing_beats() -> None:
    rows = [
        {"latency_p50_s": 1.0, "j_per_request": 5.0},
        {"latency_p50_s": 2.0, "j_per_request": 3.0},
        {"latency_p50_s": 3.0, "j_per_request": 4.0},
        {"latency_p50_s": None, "j_per_request": 1.0},
    ]
    assert pareto(rows, "latency_p50_s", "j_per_request") == [True, True, False, False]


def test_prompts_generated_or_from_a_file(tmp_path: Path) -> None:
    a, b = generated_prompts(8, seed=1), generated_prompts(8, seed=1)
    assert a == b and len({p.text for p in a}) > 1
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hi", "max_tokens": 5}\nplain line\n\n')
    got = load_prompts(f, default_max_tokens=7)
    assert [(p.text, p.max_tokens) for p in got] == [("hi", 5), ("plain line", 7)]
    f.write_text('{"prompt": 3}\n')
    with pytest.raises(ConfigError, match="string 'prompt'"):
        load_prompts(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_prompts(tmp_path / "missing")


def test_a_level_against_a_fake_server_and_the_document_compares(tmp_path: Path) -> None:
    async def go() -> list[Sample]:
        runner, url = await start(make_app(delay_s=0.002))
        try:
            async with aiohttp.ClientSession() as s:
                samples, lo, hi = await run_level(
                    s,
                    url,
                    "m",
                    generated_prompts(4, max_tokens=(3, 5)),
                    concurrency=4,
                    warmup_s=0.2,
                    duration_s=0.6,
                )
                assert hi - lo == pytest.approx(0.6)
                rate, _, _ = await run_level(
                    s,
                    url,
                    "m",
                    generated_prompts(4),
                    rate_per_s=50.0,
                    warmup_s=0.0,
                    duration_s=0.3,
                    stream=True,
                )
                assert rate and all(x.status == 200 for x in rate)
                return samples
        finally:
            await runner.cleanup()

    samples = asyncio.run(go())
    assert any(s.steady for s in samples) and any(not s.steady for s in samples)
    assert all(s.status == 200 for s in samples)
    settled = {f"r{i}": energy(f"r{i}", 1.0 + i) for i in range(4)}
    fake = [Sample(f"r{i}", 1.0, 1.5 + i / 10, 200, True) for i in range(4)]
    docs = []
    for k, scale in enumerate((1.0, 2.0)):
        rows = [
            level_row(
                f"serve/concurrency={c}",
                {"concurrency": c},
                fake,
                {key: energy(key, scale * v.energy_j / c) for key, v in settled.items()},
                5.0,
            )
            for c in (1, 4)
        ]
        doc = serve_document(rows, machine={"fingerprint": "x"}, server="s", model="m", notes=["n"])
        path = tmp_path / f"{k}.json"
        path.write_text(json.dumps(doc))
        docs.append(str(path))
    text_cmp = compare_files(docs, "text")  # one machine, both 'model': no device list
    assert "do not record their devices" in text_cmp and "devices differ" not in text_cmp
    assert "J/request" in render_table(doc) and "note: n" in render_table(doc)
    assert "data:image/png;base64," in render_html(doc)
    text = compare_files(docs, "json")
    cmp: Any = json.loads(text)
    assert len(cmp["comparisons"]) == 2
    first = cmp["comparisons"][0]["changes"][0]
    assert math.isclose(first["b"] / first["a"], 2.0, rel_tol=1e-9)


def test_the_command_counts_every_steady_request_however_few_the_meter_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`greenai bench serve` end to end. The proxy's meter keeps only its newest `keep`
    settled requests (10,000 by default): a sweep with more (a fast server, long levels)
    once lost the earlier levels' requests, and their J/request and tokens/s silently
    came from what was left. Here the meter keeps 3."""
    import greenai.serving.cli as serving_cli
    from greenai.cli import main

    real = serving_cli.hosted_proxy
    monkeypatch.setattr(serving_cli, "hosted_proxy", lambda *a, **k: real(*a, **{**k, "keep": 3}))
    monkeypatch.setenv("GREENAI_NO_PROGRESS", "1")  # the progress lines, plain
    proc, url = spawn(0.0005)
    out, html = tmp_path / "serve.json", tmp_path / "serve.html"
    try:
        code = main(
            ["bench", "serve", "--upstream", url, "--concurrency", "2,4", "--warmup", "0.3",
             "--duration", "1.5", "--baseline", "0", "--prompts", "8",
             "--json", str(out), "--html", str(html)]
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    assert code == 0
    err = capsys.readouterr().err
    steady = [int(n) for n in re.findall(r"(\d+) in the steady window", err)]
    doc = json.loads(out.read_text())
    assert len(steady) == len(doc["results"]) == 2
    for row, n in zip(doc["results"], steady, strict=True):
        assert n > 3 and row["requests"] == n and row["errors"] == 0
        assert row["tokens_per_s"] == pytest.approx(row["completion_tokens"] / row["duration_s"])
        for key in ("j_per_request", "prefill_j_per_token", "decode_j_per_token"):
            assert row[key] > 0 and row[f"{key}_uncertainty"] > 0
    assert "data:image/png;base64," in html.read_text()


def test_the_document_says_when_a_device_failed_mid_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device that fails mid-sweep (a process-scope model read timing out on a loaded
    machine did, against vLLM) leaves the figures interpolated: the document says so."""
    import greenai.serving.cli as serving_cli
    from greenai.testing import FakeGPU

    def devices(proc: Any, pid: Any) -> tuple[list[Any], str]:
        return [FakeGPU(power_w=200.0, failures=[(0.6, 1.2)], seed=1)], "machine scope"

    monkeypatch.setattr(serving_cli, "_devices", devices)
    out = _bench_serve_json(tmp_path, "1.5")
    notes = json.loads(out.read_text())["notes"]
    assert any(n.startswith("partial: gpu0 failed mid-run") for n in notes), notes
    assert any("gpu0 failed during the job (" in n for n in notes), notes  # the job's own


def test_the_document_records_its_devices_and_compare_cancels_their_shared_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `greenai bench` documents: `devices`, and each level's shared scale error."""
    import copy

    import greenai.serving.cli as serving_cli
    from greenai.devices.cpu_model import CpuModel

    def devices(proc: Any, pid: Any) -> tuple[list[Any], str]:
        # a model's ±50% is a scale error, the same in every run on this machine
        cpu = CpuModel(tdp_w=100.0, cpu_percent=lambda: 50.0, sockets=1, threads_per_socket=8)
        return [cpu], "machine scope"

    monkeypatch.setattr(serving_cli, "_devices", devices)
    out = _bench_serve_json(tmp_path, "1.0")
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert doc["devices"] == row["devices"] and len(doc["devices"]) == 1
    (device,) = doc["devices"]
    assert (device["kind"], device["method"]) == ("cpu", "model")
    shared = row["energy_shared_uncertainty_j"]
    assert shared == pytest.approx(0.5 * row["energy_j"], rel=0.02)
    assert shared <= row["uncertainty_j"]
    old = copy.deepcopy(doc)  # as written before: no devices, no shared part
    del old["devices"], old["results"][0]["devices"]
    del old["results"][0]["energy_shared_uncertainty_j"]
    paths = []
    for name, d in (("new", doc), ("old", old)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(d))
        paths.append(str(path))
    ratio_u = {}
    for path in paths:
        cmp = json.loads(compare_files([path, path], "json"))
        (ch,) = [c for c in cmp["comparisons"][0]["changes"] if c["figure"] == "J/sample"]
        assert ch["ratio"] == pytest.approx(1.0)
        ratio_u[path] = ch["ratio_uncertainty"]
        recorded = not any("do not record their devices" in n for n in cmp["notes"])
        assert recorded == (path == paths[0])
    independent = (row["uncertainty_j"] - shared) / row["energy_j"]
    assert ratio_u[paths[0]] == pytest.approx(math.hypot(independent, independent))
    assert ratio_u[paths[0]] < ratio_u[paths[1]]


def _bench_serve_json(tmp_path: Path, duration: str) -> Path:
    """Run `greenai bench serve` against a spawned fake upstream; its JSON document's path."""
    from greenai.cli import main

    proc, url = spawn(0.0005)
    out = tmp_path / "serve.json"
    try:
        code = main(
            ["bench", "serve", "--upstream", url, "--concurrency", "2", "--warmup", "0.3",
             "--duration", duration, "--baseline", "0", "--prompts", "8", "--period", "0.05",
             "--json", str(out)]
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    assert code == 0
    return out
