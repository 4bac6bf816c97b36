"""A measuring reverse proxy for any OpenAI-compatible server (vLLM, SGLang, TGI...).

Needs ``aiohttp`` (``pip install 'greenai[serve]'``). Every request is forwarded unchanged,
streamed responses (Server-Sent Events) chunk by chunk as they come; each POST under
``/v1/`` is a span on the job's timeline (:class:`~greenai.serving.meter.ServingMeter`) with
the tokens the response reports in ``usage`` (else counted from streamed chunks, or
estimated from characters, and said so: ``tokens``). A
background pass settles the job's curve every ``settle_s`` and charges each finished
request its energy.

Faults: an upstream that is down answers 502, one that is too slow 504 (with a JSON error
saying which), its own errors pass through as they are; a body over ``max_body_bytes`` gets
413 before it is read; a client that leaves mid-stream is charged for what was generated
until then (status ``disconnected``); a request still open after ``request_timeout_s`` is
cut (``timeout``): 504 where nothing was sent yet, an SSE error event ending a stream, a
whole body left incomplete (the connection closed before its terminating chunk). The
proxy's own pages live under ``/greenai/``: ``requests`` (recent
settled requests, JSON), ``requests/{id}``, ``totals`` and ``metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from greenai.errors import ConfigError
from greenai.serving.attribution import RequestEnergy
from greenai.serving.meter import ServingMeter
from greenai.serving.usage import (
    SseCounter,
    TokenCount,
    count_body,
    prompt_chars,
    prompt_token_ids,
)

__all__ = ["ENERGY_HEADER", "REQUEST_ID_HEADER", "EnergyProxy", "ProxyOptions", "aiohttp"]

REQUEST_ID_HEADER = "x-greenai-request-id"
ENERGY_HEADER = "x-greenai-energy"
"""Send ``x-greenai-energy: 1`` with a non-streamed request to get its figures in response
headers (``x-greenai-energy-j``, ``-uncertainty-j``, ``-method``); the response then waits
for its stretch of the curve to settle (at most ``energy_wait_s``, else ``pending``)."""

TIMEOUT_NOTE = "cut at timeout"
BROKE_OFF_NOTE = "upstream broke off"
"""The kinds (fixed prefixes, ``"{kind}: ..."``) of the notes a cut request carries."""

KEPT_BYTES = 4 * 2**20
"""Largest non-streamed response body kept to read its ``usage`` (per request)."""

_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}

_NOT_FORWARDED = _HOP | {ENERGY_HEADER}
"""Request headers kept from the upstream (compared lower-cased): hop-by-hop ones and ours."""


def aiohttp() -> Any:
    """The aiohttp module, or a ConfigError with the install hint."""
    try:
        importlib.import_module("aiohttp.web")
        return importlib.import_module("aiohttp")
    except ImportError as exc:
        raise ConfigError("the serving proxy needs aiohttp: pip install 'greenai[serve]'") from exc


@dataclass(frozen=True)
class ProxyOptions:
    """How the proxy listens and forwards.

    Args:
        upstream: Base URL of the server (``http://127.0.0.1:8000``).
        host: Address to listen on; 127.0.0.1 unless told otherwise.
        port: Port to listen on (0: any free one).
        max_body_bytes: Largest request body accepted; larger ones get 413.
        request_timeout_s: Longest a request may take end to end; then it is cut (504).
        connect_timeout_s: Longest to wait for the upstream to accept a connection.
        settle_s: Seconds between settling passes.
        max_connections: Upstream connections open at once (more requests wait).
        energy_wait_s: Longest a response that asked for its energy header waits.

    Raises:
        ConfigError: A URL that is not http(s), or a non-positive limit.
    """

    upstream: str
    host: str = "127.0.0.1"
    port: int = 8800
    max_body_bytes: int = 16 * 2**20
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    settle_s: float = 1.0
    max_connections: int = 1024
    energy_wait_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigError(
                f"--upstream must be an http(s) URL such as http://127.0.0.1:8000, got"
                f" {self.upstream!r}"
            )
        for name in (
            "max_body_bytes",
            "request_timeout_s",
            "connect_timeout_s",
            "settle_s",
            "max_connections",
            "energy_wait_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not (0 <= self.port < 65536):
            raise ConfigError(f"port must be 0-65535, got {self.port!r}")


class EnergyProxy:
    """The proxy's aiohttp application around one meter.

    Args:
        options: :class:`ProxyOptions`.
        meter: The meter of the job that measures the server.
        metrics: A :class:`~greenai.serving.metrics.RequestMetrics` to feed, or None.
        tracer: An OpenTelemetry tracer; each metered request becomes a span whose
            attributes carry its energy once settled.
    """

    def __init__(
        self, options: ProxyOptions, meter: ServingMeter, *, metrics: Any = None, tracer: Any = None
    ) -> None:
        self.options = options
        self.meter = meter
        self.metrics = metrics
        self.tracer = tracer
        self._http = aiohttp()
        self._web = self._http.web
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{int(time.time()):x}"
        self._settled: OrderedDict[str, RequestEnergy] = OrderedDict()
        self._waiters: dict[str, asyncio.Future[RequestEnergy]] = {}
        self._spans: dict[str, Any] = {}
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_totals: dict[str, float] = {}
        self._seen = 0
        self.settle_errors = 0

    # --- application ---------------------------------------------------------------------
    def app(self) -> Any:
        """The aiohttp ``web.Application``."""
        web = self._web
        app = web.Application(client_max_size=self.options.max_body_bytes)
        app.router.add_get("/greenai/requests", self._requests)
        app.router.add_get("/greenai/requests/{rid}", self._one)
        app.router.add_get("/greenai/totals", self._totals)
        app.router.add_get("/greenai/metrics", self._metrics)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app: Any) -> None:
        http = aiohttp()
        self._loop = asyncio.get_running_loop()
        self._session = http.ClientSession(
            connector=http.TCPConnector(limit=self.options.max_connections),
            auto_decompress=False,
            timeout=http.ClientTimeout(
                total=self.options.request_timeout_s,
                sock_connect=self.options.connect_timeout_s,
            ),
        )
        self._task = asyncio.create_task(self._settle_loop())

    async def _cleanup(self, app: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    def settled(self) -> dict[str, RequestEnergy]:
        """The settled requests kept (the newest ``keep``), by request id (a copy)."""
        return dict(self._settled)

    # --- settling --------------------------------------------------------------------------
    async def _settle_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.settle_s)
            await self.settle()

    async def settle(self, *, final: bool = False) -> list[RequestEnergy]:
        """One settling pass (off the event loop); never raises (a count of failures is kept)."""
        try:
            await asyncio.to_thread(self.meter.settle, final=final)
        except Exception:  # a sensor failing never stops the serving
            self.settle_errors += 1
        return self.take()

    def take(self) -> list[RequestEnergy]:
        """Record what the meter settled since the last call: rows, metrics, spans, waiters.

        Reads the meter's count of settled requests, so a pass whose caller was cancelled
        (the proxy shutting down) loses nothing.
        """
        done, self._seen = self.meter.settled_since(self._seen)
        for r in done:
            self._settled[r.request_id] = r
            while len(self._settled) > max(self.meter.recent.maxlen or 0, 1):
                self._settled.popitem(last=False)
            if self.metrics is not None:
                self.metrics.observe(r)
            span = self._spans.pop(r.request_id, None)
            if span is not None:
                _end_span(span[0], r, span[1])
            fut = self._waiters.pop(r.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(r)
        if self.metrics is not None:
            t = self.meter.totals()
            for part, value in (
                ("requests", t.requests_j),
                ("baseline", t.baseline_j),
                ("idle", t.idle_j),
            ):
                self.metrics.add_energy(part, value - self._last_totals.get(part, 0.0), t.method)
                self._last_totals[part] = value
        return done

    # --- forwarding ----------------------------------------------------------------------
    async def _forward(self, request: Any) -> Any:
        web, http = self._web, self._http
        opts = self.options
        if request.content_length is not None and request.content_length > opts.max_body_bytes:
            return _error(web, 413, f"request body over {opts.max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(web, 413, f"request body over {opts.max_body_bytes} bytes")
        metered = request.method == "POST" and request.path.startswith("/v1/")
        parsed: Any = None
        if metered:
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None  # forwarded as it is: the upstream says what is wrong
        rid = f"{self._prefix}-{next(self._ids)}"
        model = parsed.get("model") if isinstance(parsed, dict) else None
        model = model if isinstance(model, str) else None
        chars, ids = prompt_chars(parsed), prompt_token_ids(parsed)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        id_header = {REQUEST_ID_HEADER: rid} if metered else {}  # on every answer, errors too
        if metered:
            self.meter.begin(rid, model=model)
            if self.tracer is not None:
                self._spans[rid] = (_start_span(self.tracer, request, model, headers), None)
        url = opts.upstream.rstrip("/") + str(request.rel_url)
        count = TokenCount(0, 0, "none")
        first_tokens = 1  # generated tokens that had come by the first text (merged: more)
        paced = True  # the tokens after the first text came as decoded (not a late backlog)
        status = "ok"
        notes: list[str] = []  # what the response could not do (cut), for the request's row
        try:
            async with self._session.request(
                request.method, url, data=body, headers=headers, allow_redirects=False
            ) as up:
                out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
                out_headers.update(id_header)
                if up.status >= 400:
                    status = f"http_{up.status}"
                sse = up.headers.get("content-type", "").startswith("text/event-stream")
                wants = request.headers.get(ENERGY_HEADER, "") not in ("", "0")
                small = up.content_length is not None and up.content_length <= KEPT_BYTES
                if metered and wants and not sse and small:
                    data = await up.read()
                    count = count_body(data, chars, prompt_ids=ids, failed=up.status >= 400)
                    self._end(rid, count, status)
                    out_headers.update(await self._energy_headers(rid))
                    return web.Response(status=up.status, headers=out_headers, body=data)
                resp = web.StreamResponse(status=up.status, headers=out_headers)
                if sse:  # a stream opens at once; a whole body's headers wait for its first
                    await resp.prepare(request)  # byte, so a cut before it is a clear error
                counter = (
                    SseCounter(chars, prompt_ids=ids, choices=_choices(parsed)) if sse else None
                )
                kept = bytearray()
                write = resp.write
                try:
                    async for chunk in up.content.iter_any():
                        if counter is not None:
                            if counter.feed(chunk) and metered:
                                self.meter.first_token(rid)
                        elif metered and len(kept) <= KEPT_BYTES:
                            kept += chunk  # a longer body is not parsed: tokens estimated
                        try:  # inline, not a coroutine per chunk: this loop is the hot path
                            if not resp.prepared:
                                await resp.prepare(request)
                            await write(chunk)
                        except ConnectionError:  # the client has gone (aiohttp's reset too)
                            status = "disconnected"
                            return resp
                    if resp.prepared and not await _send(resp, None):
                        status = "disconnected"
                except asyncio.CancelledError:
                    status = "disconnected"
                    raise
                except asyncio.TimeoutError:
                    status = "timeout"
                    limit = f"--request-timeout ({opts.request_timeout_s:g} s)"
                    cut = Cut(TIMEOUT_NOTE, limit, f"cut at {limit}", 504)
                    return await _cut(request, resp, sse, cut, notes, id_header)
                except (http.ClientError, OSError) as exc:
                    status = "upstream_error"
                    at = f"upstream {opts.upstream}"
                    cut = Cut(BROKE_OFF_NOTE, f"{at}: {exc}", f"{at} broke off: {exc}", 502)
                    return await _cut(request, resp, sse, cut, notes, id_header)
                finally:
                    if counter is not None:
                        count = counter.count()
                        first_tokens = counter.tokens_by_first(count.completion_tokens)
                        paced = counter.paced_after_first()
                    elif metered:
                        failed = up.status >= 400  # an error answer: out of J/token
                        count = count_body(bytes(kept), chars, prompt_ids=ids, failed=failed)
                return resp
        except asyncio.TimeoutError:
            status = "timeout"
            return _error(
                web,
                504,
                f"upstream {opts.upstream} did not answer within {opts.request_timeout_s:g} s",
                id_header,
            )
        except http.ClientConnectionError as exc:
            status = "upstream_error"
            message = f"upstream {opts.upstream} unreachable or closed: {exc}"
            return _error(web, 502, message, id_header)
        except http.ClientPayloadError as exc:
            status = "upstream_error"
            message = f"upstream {opts.upstream} sent a broken response: {exc}"
            return _error(web, 502, message, id_header)
        finally:
            if metered and rid not in self._settled and self._is_open(rid):
                self._end(rid, count, status, (first_tokens, paced), tuple(notes))

    def _is_open(self, rid: str) -> bool:
        return self.meter.is_open(rid)

    def _end(
        self,
        rid: str,
        count: TokenCount,
        status: str,
        first: tuple[int, bool] = (1, True),
        notes: tuple[str, ...] = (),
    ) -> None:
        """``first``: the tokens by the first text read, and whether those after were paced."""
        if rid in self._spans:  # the span ends when the response did, once its energy is known
            self._spans[rid] = (self._spans[rid][0], time.time_ns())
        if self._is_open(rid):
            self.meter.end(
                rid,
                prompt_tokens=count.prompt_tokens,
                completion_tokens=count.completion_tokens,
                status=status,
                first_tokens=max(first[0], 1),
                paced=first[1],
                tokens=count.tokens,
                notes=notes,
            )

    async def _energy_headers(self, rid: str) -> dict[str, str]:
        assert self._loop is not None
        fut: asyncio.Future[RequestEnergy] = self._loop.create_future()
        self._waiters[rid] = fut
        try:
            r = await asyncio.wait_for(fut, self.options.energy_wait_s)
        except asyncio.TimeoutError:
            self._waiters.pop(rid, None)
            return {f"{ENERGY_HEADER}-j": "pending"}
        return {
            f"{ENERGY_HEADER}-j": f"{r.energy_j:.6g}",
            f"{ENERGY_HEADER}-uncertainty-j": f"{r.uncertainty_j:.3g}",
            f"{ENERGY_HEADER}-method": f"{r.method}; rule={r.rule}",
        }

    # --- own pages -----------------------------------------------------------------------
    async def _requests(self, request: Any) -> Any:
        rows = [r.to_dict() for r in self._settled.values()]
        return self._web.json_response({"requests": rows})

    async def _one(self, request: Any) -> Any:
        rid = request.match_info["rid"]
        if rid not in self._settled:
            self.take()  # a pass may have settled it since the last take()
        r = self._settled.get(rid)
        if r is None:
            if self.meter.is_known(rid):
                return self._web.json_response({"status": "pending"}, status=202)
            return _error(self._web, 404, "no such request (or no longer kept)")
        return self._web.json_response(r.to_dict())

    async def _totals(self, request: Any) -> Any:
        t = self.meter.totals().to_dict()
        t["settle_errors"] = self.settle_errors
        return self._web.json_response(t)

    async def _metrics(self, request: Any) -> Any:
        if self.metrics is None:
            return _error(self._web, 404, "metrics are off (install prometheus-client)")
        body, ctype = self.metrics.exposition()
        return self._web.Response(body=body, headers={"content-type": ctype})


async def _send(resp: Any, chunk: bytes | None) -> bool:
    """Write a chunk (None: the end) to the client; False when the client has gone."""
    try:
        if chunk is None:
            await resp.write_eof()
        else:
            await resp.write(chunk)
    except (ConnectionResetError, ConnectionError):  # aiohttp's ClientConnectionResetError too
        return False
    return True


@dataclass(frozen=True)
class Cut:
    """Why a response was cut.

    Its note's ``kind`` (a fixed prefix) and ``detail``, the ``message`` the client gets,
    and the HTTP ``code`` (504 timeout, 502 broke off).
    """

    kind: str
    detail: str
    message: str
    code: int


async def _cut(
    request: Any, resp: Any, sse: bool, cut: Cut, notes: list[str], headers: dict[str, str]
) -> Any:
    """End a response the upstream did not finish (``cut``) so that it cannot look whole.

    Nothing sent yet: a JSON error with ``cut.code`` and ``headers`` (the request's id
    header, as a whole answer has it). A stream: an SSE error event. A body
    already started: the connection is closed without the terminating chunk, so that the
    client reads an incomplete body. ``notes`` (the request's) gets a note saying which,
    ``"{kind}: {detail}; {how}"``.
    """
    note = f"{cut.kind}: {cut.detail}"
    if not resp.prepared:
        notes.append(f"{note}; before any byte was sent: answered {cut.code}")
        return _error(aiohttp().web, cut.code, cut.message, headers)
    if sse:
        notes.append(f"{note}; the stream ended with an error event")
        await _send(resp, _sse_error(cut.message, cut.code))
        return resp
    notes.append(f"{note}; the body had started: the connection was closed, incomplete")
    transport = request.transport
    if transport is not None:
        transport.close()  # what was written goes out; the terminating chunk never does
    return resp


def _sse_error(message: str, code: int) -> bytes:
    """An SSE event with an OpenAI-style error (its blank lines first end what a cut left open)."""
    error = {
        "message": f"greenai proxy: {message}; the response is incomplete",
        "type": "greenai_proxy",
        "code": code,
    }
    return b"\n\ndata: " + json.dumps({"error": error}).encode() + b"\n\n"


def _choices(parsed: Any) -> int:
    """The request's ``n`` (choices generated side by side); 1 where not given or not valid."""
    n = parsed.get("n") if isinstance(parsed, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def _error(web: Any, status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """The proxy's own JSON error answer (OpenAI's shape), with ``headers`` (a request's id)."""
    return web.json_response(
        {"error": {"message": message, "type": "greenai_proxy", "code": status}},
        status=status,
        headers=headers or None,
    )


def _start_span(tracer: Any, request: Any, model: str | None, headers: dict[str, str]) -> Any:
    """The request's span, in the client's trace where it sent one (``traceparent``).

    Read by OpenTelemetry's configured propagator (W3C trace context by default), which
    then writes the span into ``headers`` (those forwarded upstream, the client's trace
    headers replaced): the upstream's spans nest under the proxy's. A propagator that fails
    or writes nothing leaves the client's trace headers as they came.
    """
    propagate: Any = None
    trace: Any = None
    try:
        propagate = importlib.import_module("opentelemetry.propagate")
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError:  # a tracer of another kind: no context to join or pass on
        propagate = trace = None
    parent = None if propagate is None else propagate.extract(request.headers)
    span = tracer.start_span("greenai.request", context=parent)
    if propagate is not None and trace is not None:
        try:  # into a fresh carrier: a propagator that fails leaves the client's headers
            ours: dict[str, str] = {}
            fields: set[str] = set()
            propagate.inject(ours, context=trace.set_span_in_context(span, parent))
            fields = {f.lower() for f in propagate.get_global_textmap().fields} | {
                k.lower() for k in ours
            }
        except Exception:  # a propagator's failure never costs the request (nor its trace)
            ours = {}
        if ours:
            for key in [k for k in headers if k.lower() in fields]:
                del headers[key]  # the client's, in whatever case: ours replace them
            headers.update(ours)
    span.set_attribute("http.request.method", request.method)
    span.set_attribute("url.path", request.path)
    if model:
        span.set_attribute("gen_ai.request.model", model)
    return span


def _end_span(span: Any, r: RequestEnergy, end_ns: int | None) -> None:
    try:
        if r.prompt_counted:  # estimates are no usage: greenai.tokens says what there is
            span.set_attribute("gen_ai.usage.input_tokens", r.prompt_tokens)
        if r.completion_counted:
            span.set_attribute("gen_ai.usage.output_tokens", r.completion_tokens)
        span.set_attribute("greenai.tokens", r.tokens)
        span.set_attribute("greenai.energy_j", r.energy_j)
        span.set_attribute("greenai.prefill_energy_j", r.prefill_energy_j)
        span.set_attribute("greenai.decode_energy_j", r.decode_energy_j)
        span.set_attribute("greenai.uncertainty_j", r.uncertainty_j)
        span.set_attribute("greenai.method", r.method)
        span.set_attribute("greenai.rule", r.rule)
        span.set_attribute("greenai.status", r.status)
        if r.notes:
            span.set_attribute("greenai.notes", list(r.notes))
        span.end(end_time=end_ns)
    except Exception:  # a tracer's failure never costs the figures
        pass
