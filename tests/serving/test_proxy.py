from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from fake_upstream import make_app, start  # noqa: E402

import greenai  # noqa: E402
from greenai.report.requests_html import note_kind  # noqa: E402
from greenai.serving import ServingMeter  # noqa: E402
from greenai.serving.metrics import RequestMetrics  # noqa: E402
from greenai.serving.proxy import (  # noqa: E402
    BROKE_OFF_NOTE,
    REQUEST_ID_HEADER,
    TIMEOUT_NOTE,
    EnergyProxy,
    ProxyOptions,
)
from greenai.testing import FakeGPU  # noqa: E402

Body = Callable[..., Awaitable[Any]]


async def with_proxy(
    test: Callable[[aiohttp.ClientSession, str, EnergyProxy], Awaitable[None]],
    *,
    upstream: str | None = None,
    **options: Any,
) -> EnergyProxy:
    up_runner = None
    if upstream is None:
        up_runner, upstream = await start(make_app())
    gpu = FakeGPU(power_w=200.0, seed=1)
    job = greenai.Tracker("serve", devices=[gpu], period_s=0.02)
    await asyncio.to_thread(job.start)
    meter = ServingMeter(job)
    opts = ProxyOptions(upstream=upstream, port=0, settle_s=0.2, **options)
    proxy = EnergyProxy(opts, meter, metrics=RequestMetrics())
    runner = aiohttp.web.AppRunner(proxy.app())
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as client:
            await test(client, url, proxy)
    finally:
        await runner.cleanup()
        await asyncio.to_thread(job.stop)
        await asyncio.to_thread(meter.settle, final=True)
        proxy.take()
        if up_runner is not None:
            await up_runner.cleanup()
    t = meter.totals()
    assert math.isclose(t.requests_j + t.baseline_j + t.idle_j, t.total_j, rel_tol=1e-9)
    return proxy


def settled(proxy: EnergyProxy) -> dict[str, Any]:
    return proxy.settled()


def test_forwards_unchanged_and_charges_each_request() -> None:
    got: dict[str, Any] = {}

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        direct = json.dumps({"model": "m", "prompt": "hello", "max_tokens": 5})
        async with client.post(url + "/v1/completions", data=direct) as r:
            assert r.status == 200
            got["plain"] = (await r.read(), r.headers[REQUEST_ID_HEADER])
        body = {"model": "m", "prompt": "hello world!", "max_tokens": 6, "stream": True}
        async with client.post(url + "/v1/completions", json=body) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            got["sse"] = (await r.read(), r.headers[REQUEST_ID_HEADER])
        async with client.post(
            url + "/v1/completions", json={**body, "stream_options": {"include_usage": True}}
        ) as r:
            got["sse_usage"] = (await r.read(), r.headers[REQUEST_ID_HEADER])
        async with client.post(
            url + "/v1/completions",
            json={"model": "m", "prompt": "hi", "max_tokens": 3},
            headers={"x-greenai-energy": "1"},
        ) as r:
            got["header"] = r.headers.get("x-greenai-energy-j")
            got["method"] = r.headers.get("x-greenai-energy-method")
        async with client.get(url + "/v1/models") as r:  # not a metered request
            assert (await r.json())["data"][0]["id"] == "fake"
        async with client.get(url + "/greenai/metrics") as r:
            got["metrics"] = await r.text()

    proxy = asyncio.run(with_proxy(test))
    rows = settled(proxy)
    plain = rows[got["plain"][1]]
    assert json.loads(got["plain"][0])["usage"]["completion_tokens"] == 5
    assert (plain.prompt_tokens, plain.completion_tokens, plain.model) == (7, 5, "m")
    sse = rows[got["sse"][1]]
    assert got["sse"][0].count(b"data: ") == 7  # 6 chunks and [DONE], as sent
    assert (sse.prompt_tokens, sse.completion_tokens) == (3, 6)  # 12 chars / 4, 6 chunks
    assert rows[got["sse_usage"][1]].prompt_tokens == 7
    assert float(got["header"]) > 0
    assert got["method"].endswith("; rule=spans")
    assert all(r.energy_j > 0 and r.status == "ok" for r in rows.values())
    assert len(rows) == 4
    counts = re.findall(
        r'greenai_request_energy_joules_count\{method="[^"]+",model="m",status="ok"\} (\S+)',
        got["metrics"],
    )
    assert sum(float(c) for c in counts) == 4  # the header request settled: all before it too


def test_a_response_without_usage_has_its_tokens_estimated_and_said_so() -> None:
    got: dict[str, Any] = {}

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        for model, extra in (("bare", {"no_usage": True}), ("full", {})):
            body = {"model": model, "prompt": "hello world!", "max_tokens": 40, **extra}
            async with client.post(url + "/v1/completions", json=body) as r:
                assert ("usage" in await r.json()) == (not extra)
                got[model] = r.headers[REQUEST_ID_HEADER]
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with client.get(url + f"/greenai/requests/{got['bare']}") as r:
                if r.status == 200:
                    got["json"] = await r.json()
                    break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)

    proxy = asyncio.run(with_proxy(test))
    bare, full = (settled(proxy)[got[m]] for m in ("bare", "full"))
    # 12 prompt characters and 40 generated, 4 a token: estimates, labelled as such
    assert (bare.prompt_tokens, bare.completion_tokens, bare.tokens) == (3, 10, "estimated")
    assert bare.j_per_token is None and not bare.prompt_counted and not bare.completion_counted
    assert bare.energy_j > 0 and bare.status == "ok"
    assert got["json"]["tokens"] == "estimated"
    assert any("estimated" in n for n in got["json"]["notes"])
    assert (full.tokens, full.completion_tokens, full.to_dict()["notes"]) == ("counted", 40, [])
    text = proxy.metrics.exposition()[0].decode()
    assert re.search(r'greenai_token_energy_joules_count\{[^}]*model="full"', text)
    assert not re.search(r'greenai_token_energy_joules_count\{[^}]*model="bare"', text)
    assert not re.search(r'greenai_tokens_total\{[^}]*model="bare"', text)
    assert re.search(
        r'greenai_requests_tokens_not_counted_total\{model="bare",tokens="estimated"\} 1', text
    )
    t = proxy.meter.totals()
    assert t.tokens_not_counted == 1 and t.completion_tokens == 50  # the sums say all
    assert t.decode_j_per_token == pytest.approx(full.decode_energy_j / 40)  # counts only


def test_a_prompt_of_token_ids_counts_its_tokens() -> None:
    got: dict[str, Any] = {}

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        for name, path, prompt, extra in (
            ("ids", "completions", list(range(100, 111)), {"no_usage": True}),  # 11 tokens
            ("batch", "completions", [[1, 2, 3], [4, 5, 6, 7]], {"stream": True}),  # 7 tokens
            ("error", "fail", list(range(5)), {}),  # a 500 error answer: 5 tokens
        ):
            body = {"model": "m", "prompt": prompt, "max_tokens": 8, **extra}
            async with client.post(f"{url}/v1/{path}", json=body) as r:
                assert r.status == (500 if name == "error" else 200)
                await r.read()
                got[name] = r.headers[REQUEST_ID_HEADER]

    proxy = asyncio.run(with_proxy(test))
    ids, batch, error = (settled(proxy)[got[k]] for k in ("ids", "batch", "error"))
    # an error answer's prompt may never have been processed: out of prefill J/token
    assert (error.prompt_tokens, error.tokens, error.prompt_counted) == (5, "error", False)
    assert error.completion_counted and error.completion_tokens == 0
    # no usage from the server: the prompt's ids are a count; the whole body's text is not
    assert (ids.prompt_tokens, ids.tokens, ids.prompt_counted) == (11, "completion_estimated", True)
    assert not ids.completion_counted and ids.completion_tokens == 2  # 8 characters / 4
    assert (batch.prompt_tokens, batch.completion_tokens, batch.tokens) == (7, 8, "counted")
    assert batch.j_per_token is not None
    assert proxy.meter.totals().prefill_j_per_token == pytest.approx(
        (ids.prefill_energy_j + batch.prefill_energy_j) / 18
    )


def test_upstream_faults_answer_clearly_and_keep_serving() -> None:
    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        async with client.post(url + "/v1/fail", json={}) as r:
            assert r.status == 500 and (await r.json())["error"] == "boom"
        async with client.post(url + "/v1/completions", data=b"{not json") as r:
            assert r.status == 400  # the upstream's answer, passed on
        async with client.post(url + "/v1/never", json={}) as r:
            assert r.status == 504 and "did not answer" in (await r.json())["error"]["message"]
            got["timeout"] = r.headers.get(REQUEST_ID_HEADER)  # the proxy's own error too
        async with client.post(url + "/v1/completions", json={"max_tokens": 2}) as r:
            assert r.status == 200  # still serving

    got: dict[str, Any] = {}
    proxy = asyncio.run(with_proxy(test, request_timeout_s=1.0))
    statuses = sorted(r.status for r in settled(proxy).values())
    assert statuses == ["http_400", "http_500", "ok", "timeout"]
    assert settled(proxy)[got["timeout"]].status == "timeout"


def test_upstream_down_is_a_502() -> None:
    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        async with client.post(url + "/v1/completions", json={"max_tokens": 2}) as r:
            assert r.status == 502
            assert "unreachable" in (await r.json())["error"]["message"]
            got["id"] = r.headers.get(REQUEST_ID_HEADER)  # matched to its metered request

    got: dict[str, Any] = {}
    proxy = asyncio.run(with_proxy(test, upstream="http://127.0.0.1:9"))
    assert [r.status for r in settled(proxy).values()] == ["upstream_error"]
    assert list(settled(proxy)) == [got["id"]]


def test_a_body_over_the_limit_is_refused_with_413() -> None:
    big = b"x" * (3 << 20)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 1 << 16):
            yield big[i : i + 1 << 16]

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        async with client.post(url + "/v1/completions", data=big) as r:
            assert r.status == 413
        async with client.post(url + "/v1/completions", data=chunks()) as r:
            assert r.status == 413
        async with client.post(url + "/v1/completions", json={"max_tokens": 2}) as r:
            assert r.status == 200

    asyncio.run(with_proxy(test, max_body_bytes=1 << 20))


def test_a_client_leaving_mid_stream_is_charged_for_what_was_generated() -> None:
    ids: list[str] = []

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        body = {"model": "m", "prompt": "p", "max_tokens": 200, "stream": True, "pause_s": 0.01}
        r = await client.post(url + "/v1/completions", json=body)
        ids.append(r.headers[REQUEST_ID_HEADER])
        seen = 0
        async for _ in r.content.iter_any():
            seen += 1
            if seen >= 5:
                break
        r.close()  # the client goes away
        deadline = asyncio.get_running_loop().time() + 10
        while proxy.meter.is_open(ids[0]):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        async with client.post(url + "/v1/completions", json={"max_tokens": 2}) as r2:
            assert r2.status == 200

    proxy = asyncio.run(with_proxy(test))
    r = settled(proxy)[ids[0]]
    assert r.status == "disconnected"
    assert 5 <= r.completion_tokens < 200 and r.energy_j > 0


def sse_events(raw: bytes) -> list[Any]:
    """The ``data:`` events of an SSE body, JSON decoded (``[DONE]`` as it is)."""
    out: list[Any] = []
    for event in raw.decode().split("\n\n"):
        data = [line[5:].strip() for line in event.splitlines() if line.startswith("data:")]
        if data:
            text = "\n".join(data)
            out.append(text if text == "[DONE]" else json.loads(text))
    return out


def test_a_stream_cut_at_the_timeout_ends_with_an_error_event() -> None:
    got: dict[str, Any] = {}

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        body = {"model": "m", "prompt": "p", "max_tokens": 50, "stream": True, "pause_s": 0.05}
        async with client.post(url + "/v1/completions", json=body) as r:
            assert r.status == 200  # sent before the cut
            got["id"], got["body"] = r.headers[REQUEST_ID_HEADER], await r.read()
        body = {"model": "m", "prompt": "p", "max_tokens": 3, "stream": True}
        async with client.post(url + "/v1/completions", json=body) as r:
            got["whole"] = await r.read()

    proxy = asyncio.run(with_proxy(test, request_timeout_s=1.0))
    events = sse_events(got["body"])
    *chunks, last = events
    assert chunks and all("choices" in c for c in chunks)
    assert set(last) == {"error"} and set(last["error"]) == {"message", "type", "code"}
    assert last["error"]["code"] == 504 and last["error"]["type"] == "greenai_proxy"
    assert "--request-timeout (1 s)" in last["error"]["message"]
    r = settled(proxy)[got["id"]]
    assert r.status == "timeout"  # kept, with what was measured until the cut
    assert r.completion_tokens == len(chunks) and 0 < len(chunks) < 50 and r.energy_j > 0
    assert sse_events(got["whole"])[-1] == "[DONE]"  # a whole stream: no error event


def test_a_stream_the_upstream_breaks_off_ends_with_an_error_event() -> None:
    got: dict[str, Any] = {}

    async def broken(request: Any) -> Any:
        resp = aiohttp.web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f'data: {{"choices": [{{"text": "t{i}"}}]}}\n\n'.encode())
        await asyncio.sleep(0.05)
        request.transport.close()  # the chunked body never ends
        return resp

    async def run() -> None:
        app = aiohttp.web.Application()
        app.router.add_post("/v1/completions", broken)
        up_runner, upstream = await start(app)

        async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
            async with client.post(url + "/v1/completions", json={"stream": True}) as r:
                got["id"], got["body"] = r.headers[REQUEST_ID_HEADER], await r.read()

        try:
            got["proxy"] = await with_proxy(test, upstream=upstream)
        finally:
            await up_runner.cleanup()

    asyncio.run(run())
    *chunks, last = sse_events(got["body"])
    assert len(chunks) == 3 and last["error"]["code"] == 502
    assert "broke off" in last["error"]["message"]
    r = settled(got["proxy"])[got["id"]]
    assert r.status == "upstream_error" and r.completion_tokens == 3


@pytest.mark.parametrize(
    ("fault", "started"),
    [("slow", False), ("slow", True), ("break", False), ("break", True)],
)
def test_a_whole_body_cut_short_never_looks_complete(fault: str, started: bool) -> None:
    """A non-streamed response the upstream does not finish (too slow for
    --request-timeout, or broken off): an error where nothing was sent yet, else a body
    the client reads as incomplete; the request's row says it was cut."""
    got: dict[str, Any] = {}

    async def half(request: Any) -> Any:
        resp = aiohttp.web.StreamResponse(headers={"content-type": "application/json"})
        await resp.prepare(request)  # the upstream's headers come at once, its body not
        if started:
            await resp.write(b'{"id": "cmpl-1", "choices": [{"text": "')
        await asyncio.sleep(0.3)
        if fault == "break":
            request.transport.close()
            return resp
        await asyncio.sleep(2.0)  # past the proxy's 1 s
        return resp

    async def run() -> None:
        app = aiohttp.web.Application()
        app.router.add_post("/v1/completions", half)
        up_runner, upstream = await start(app)

        async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
            async with client.post(url + "/v1/completions", json={"prompt": "hi"}) as r:
                got["status"], got["id"] = r.status, r.headers.get(REQUEST_ID_HEADER)
                try:
                    got["body"] = await r.read()
                except aiohttp.ClientPayloadError as exc:
                    got["incomplete"] = exc

        try:
            got["proxy"] = await with_proxy(test, upstream=upstream, request_timeout_s=1.0)
        finally:
            await up_runner.cleanup()

    asyncio.run(run())
    code, status = (504, "timeout") if fault == "slow" else (502, "upstream_error")
    (r,) = settled(got["proxy"]).values()
    assert r.status == status and r.energy_j > 0
    kind = TIMEOUT_NOTE if fault == "slow" else BROKE_OFF_NOTE
    assert [note_kind(n) for n in r.notes] == [kind], r.notes  # its URL's port no kind
    if started:  # the upstream's 200 and the start of its body were forwarded
        assert got["status"] == 200 and got["id"] == r.request_id
        assert "incomplete" in got and "body" not in got
        assert any("the body had started" in n for n in r.notes), r.notes
    else:  # the proxy's error carries the request's id as a whole answer does
        assert got["status"] == code and "incomplete" not in got
        assert got["id"] == r.request_id
        error = json.loads(got["body"])["error"]
        assert error["code"] == code and error["type"] == "greenai_proxy"
        assert ("--request-timeout (1 s)" if fault == "slow" else "broke off") in error["message"]
        assert any(f"before any byte was sent: answered {code}" in n for n in r.notes), r.notes


def test_a_thousand_concurrent_clients() -> None:
    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as many:

            async def one(i: int) -> int:
                body = {"model": "m", "prompt": "p", "max_tokens": 3, "stream": i % 2 == 0}
                async with many.post(url + "/v1/completions", json=body) as r:
                    await r.read()
                    return int(r.status)

            codes = await asyncio.gather(*(one(i) for i in range(1000)))
        assert codes == [200] * 1000

    proxy = asyncio.run(with_proxy(test))
    rows = settled(proxy)
    assert len(rows) == 1000 and all(r.completion_tokens == 3 for r in rows.values())


def test_each_request_is_a_span_with_its_energy_when_a_tracer_is_set() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        proxy.tracer = tracer
        async with client.post(url + "/v1/completions", json={"model": "m", "max_tokens": 4}):
            pass
        bare = {"model": "bare", "max_tokens": 4, "no_usage": True}
        async with client.post(url + "/v1/completions", json=bare):
            pass

    asyncio.run(with_proxy(test))
    span, bare = sorted(
        exporter.get_finished_spans(),
        key=lambda s: dict(s.attributes or {})["gen_ai.request.model"],
    )[::-1]
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.model"] == "m" and attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["greenai.tokens"] == "counted"
    estimated = dict(bare.attributes or {})  # estimates are not usage: not given as such
    assert estimated["greenai.tokens"] == "estimated" and estimated["greenai.energy_j"] > 0
    assert not [k for k in estimated if k.startswith("gen_ai.usage.")]
    assert attrs["greenai.energy_j"] > 0 and attrs["greenai.method"] in ("counter", "power")
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time < 5e9  # ended where the response did


def test_a_request_with_a_traceparent_is_a_span_of_the_client_trace() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
        proxy.tracer = provider.get_tracer("test")
        headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
        body = {"model": "m", "max_tokens": 2}
        async with client.post(url + "/v1/completions", json=body, headers=headers) as r:
            assert r.status == 200
        async with client.post(url + "/v1/completions", json={**body, "max_tokens": 3}) as r:
            assert r.status == 200

    asyncio.run(with_proxy(test))
    spans = sorted(
        exporter.get_finished_spans(),
        key=lambda s: dict(s.attributes or {})["gen_ai.usage.output_tokens"],
    )
    joined, alone = spans
    assert f"{joined.context.trace_id:032x}" == trace_id
    assert joined.parent is not None and f"{joined.parent.span_id:016x}" == parent_id
    assert joined.parent.is_remote
    assert alone.parent is None and f"{alone.context.trace_id:032x}" != trace_id


def test_the_upstream_gets_the_proxys_span_as_its_parent() -> None:
    """traceparent forwarded upstream names the proxy's span, in the client's trace."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    seen: list[dict[str, str]] = []

    async def echo(request: Any) -> Any:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        n = len(seen)  # told apart by their tokens
        return aiohttp.web.json_response({"usage": {"prompt_tokens": 1, "completion_tokens": n}})

    async def run() -> None:
        app = aiohttp.web.Application()
        app.router.add_post("/v1/completions", echo)
        up_runner, upstream = await start(app)

        async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
            proxy.tracer = provider.get_tracer("test")
            joined = {"Traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "k=v"}
            for headers in (joined, {}):
                async with client.post(url + "/v1/completions", json={}, headers=headers) as r:
                    assert r.status == 200

        try:
            await with_proxy(test, upstream=upstream)
        finally:
            await up_runner.cleanup()

    asyncio.run(run())
    spans = sorted(
        exporter.get_finished_spans(),
        key=lambda s: dict(s.attributes or {})["gen_ai.usage.output_tokens"],
    )
    for headers, span in zip(seen, spans, strict=True):
        _, trace, parent, _ = headers["traceparent"].split("-")
        assert f"{span.context.trace_id:032x}" == trace  # the proxy's span is the parent
        assert f"{span.context.span_id:016x}" == parent != client_span
    joined, alone = spans
    assert f"{joined.context.trace_id:032x}" == trace_id  # in the client's trace
    assert joined.parent is not None and f"{joined.parent.span_id:016x}" == client_span
    assert seen[0]["tracestate"] == "k=v"  # the client's trace state goes on with it
    assert alone.parent is None and f"{alone.context.trace_id:032x}" != trace_id


def test_a_failing_propagator_leaves_the_clients_trace_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """inject() raising (swallowed) must not cost the upstream the client's trace."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    import opentelemetry.propagate as propagate

    from greenai.serving.proxy import _start_span

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("propagator broke")

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client = {"traceparent": parent, "tracestate": "k=v"}
    request = SimpleNamespace(headers=client, method="POST", path="/v1/completions")
    tracer = sdk.TracerProvider().get_tracer("test")
    headers = {"Traceparent": parent, "tracestate": "k=v", "x-other": "1"}
    _start_span(tracer, request, "m", headers).end()  # a working propagator: ours replace
    assert "Traceparent" not in headers and headers["traceparent"] != parent
    assert headers["tracestate"] == "k=v" and headers["x-other"] == "1"
    monkeypatch.setattr(propagate, "inject", broken)
    headers = {"Traceparent": parent, "tracestate": "k=v", "x-other": "1"}
    _start_span(tracer, request, "m", headers).end()
    assert headers == {"Traceparent": parent, "tracestate": "k=v", "x-other": "1"}


def test_our_header_is_not_forwarded_whatever_its_case() -> None:
    seen: list[dict[str, str]] = []

    async def echo(request: Any) -> Any:
        seen.append(dict(request.headers))
        return aiohttp.web.json_response({"usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    async def run() -> None:
        app = aiohttp.web.Application()
        app.router.add_post("/v1/completions", echo)
        up_runner, upstream = await start(app)

        async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
            for name in ("x-greenai-energy", "X-Greenai-Energy", "X-GREENAI-ENERGY"):
                headers = {name: "0", "X-Custom": "kept"}
                async with client.post(url + "/v1/completions", json={}, headers=headers) as r:
                    assert r.status == 200

        try:
            await with_proxy(test, upstream=upstream)
        finally:
            await up_runner.cleanup()

    asyncio.run(run())
    assert len(seen) == 3
    for headers in seen:
        assert headers.get("X-Custom") == "kept"
        assert not [k for k in headers if k.lower() == "x-greenai-energy"], headers


def _choice(text: str, finish: str | None = None) -> bytes:
    """One chunk of a vLLM-style stream: a choice with its ``finish_reason``."""
    chunk = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def _merged_then_lone(request: Any) -> Any:
    """50 tokens: a first write 0.4 s late holding 45 of them (chunks a server merged, or a
    proxy read late), then 5 one by one; a token-by-token stream with ``"alone": true``."""
    body = await request.json()
    resp = aiohttp.web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    if body.get("backlog"):  # vLLM's API process behind its engine: 1 token, then 49 at once
        await asyncio.sleep(0.4)
        await resp.write(_choice("t0"))
        await asyncio.sleep(0.002)
        await resp.write(
            b"".join(_choice(f"t{i}", "length" if i == 49 else None) for i in range(1, 50))
        )
        n = 50
    elif body.get("alone"):
        for i in range(20):
            await asyncio.sleep(0.03)
            await resp.write(_choice(f"t{i}", "length" if i == 19 else None))
        n = 20
    else:
        await asyncio.sleep(0.4)
        await resp.write(b"".join(_choice(f"t{i}") for i in range(45)))
        for i in range(45, 50):
            await asyncio.sleep(0.005)
            await resp.write(_choice(f"t{i}", "length" if i == 49 else None))
        n = 50
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": n}}
    await resp.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
    await resp.write_eof()
    return resp


def test_a_late_first_read_holding_most_tokens_gets_an_estimated_first_token_and_a_note() -> None:
    ids: dict[str, str] = {}

    async def run() -> EnergyProxy:
        app = aiohttp.web.Application()
        app.router.add_post("/v1/completions", _merged_then_lone)
        up_runner, upstream = await start(app)

        async def test(client: Any, url: str, proxy: EnergyProxy) -> None:
            for name in ("merged", "alone", "backlog"):
                async with client.post(url + "/v1/completions", json={name: True}) as r:
                    assert (await r.read()).count(b"finish_reason") == (
                        20 if name == "alone" else 50
                    )
                    ids[name] = r.headers[REQUEST_ID_HEADER]

        try:
            return await with_proxy(test, upstream=upstream)
        finally:
            await up_runner.cleanup()

    rows = settled(asyncio.run(run()))
    merged, alone = rows[ids["merged"]], rows[ids["alone"]]
    assert merged.completion_tokens == 50 and alone.completion_tokens == 20
    # seen at ~0.4 s of ~0.43 s, the decode would get ~6% of the request: placed one step
    # of 51 after the start instead (nothing after the read can time 44 tokens)
    assert merged.decode_energy_j > 0.8 * merged.energy_j
    (note,) = merged.notes
    assert "first token not seen alone" in note and "45 of the 50" in note
    # the ± covers the split with the first token where it was seen
    seen_s = float(re.search(r"came ([0-9.]+) s after arrival", note).group(1))  # type: ignore[union-attr]
    at_seen = merged.energy_j * (merged.duration_s - seen_s) / merged.duration_s
    assert merged.decode_energy_j - merged.uncertainty_j <= at_seen * 1.5 + 0.5
    assert seen_s > 0.3 and merged.rule_uncertainty_j > 0.5 * merged.energy_j
    # token by token: the first token as seen, no note, no widened ±
    assert alone.notes == () and alone.rule_uncertainty_j < 0.01 * alone.energy_j
    assert alone.decode_energy_j > 0.8 * alone.energy_j
    # one token alone at 0.4 s, then the other 49 at once: they time nothing, and the first
    # read was as late as they were (a CI flake: decode 0.005 J of 1.1 J with real vLLM)
    backlog = rows[ids["backlog"]]
    assert backlog.decode_energy_j > 0.8 * backlog.energy_j
    (note,) = backlog.notes
    assert note.startswith("first token seen late: ") and "alone, and the other 49" in note
    assert backlog.rule_uncertainty_j > 0.5 * backlog.energy_j
