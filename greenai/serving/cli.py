"""``greenai serve-proxy``: measure an OpenAI-compatible server, request by request.

With a command after ``--`` the proxy starts the server, waits until it answers, and
measures the server's process tree (process scope: each device's draw charged to that tree
by its share of CPU time, GPU utilisation or memory; the proxy itself is not in it).
Without one it attaches to a running server and measures the machine (or ``--pid``'s tree).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from greenai.checks import megabytes, seconds
from greenai.errors import ConfigError, GreenAIError
from greenai.interrupts import exit_now

T = TypeVar("T")

__all__ = [
    "Hosted",
    "add_serve_proxy",
    "hosted_proxy",
    "run_async",
    "run_serve_proxy",
    "stop_server",
    "wait_until_serving",
]


def add_serve_proxy(sub: Any) -> None:
    """Register ``serve-proxy`` on the ``greenai`` subparsers."""
    p = sub.add_parser(
        "serve-proxy",
        help="measuring reverse proxy for an OpenAI-compatible server: J per request/token",
    )
    p.add_argument("--upstream", required=True, help="the server's base URL (http://HOST:PORT)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8800, help="port to listen on (default 8800)")
    p.add_argument(
        "--max-body-mb", type=megabytes, default=16.0, help="largest request body (default 16 MB)"
    )
    p.add_argument(
        "--request-timeout", type=seconds, default=600.0, help="seconds before a request is cut"
    )
    p.add_argument(
        "--startup-timeout",
        type=seconds,
        default=300.0,
        help="with a command: seconds to wait for the server to answer (default 300)",
    )
    p.add_argument(
        "--baseline",
        type=float,
        default=0.0,
        help="seconds of idle measurement before serving: idle power kept out of requests",
    )
    p.add_argument(
        "--period", type=float, help="sampling period in seconds (default: the devices' own)"
    )
    p.add_argument("--pid", type=int, help="attach: measure this process tree (process scope)")
    p.add_argument(
        "--keep",
        type=int,
        default=10_000,
        help="settled requests kept in memory (and rows in the store with --store)",
    )
    p.add_argument("--log", type=Path, help="append each settled request to this JSON-lines file")
    p.add_argument("--store", help="record the job in this run store (default: not stored)")
    p.add_argument(
        "--otlp",
        metavar="ENDPOINT",
        help="send a span per request, with its energy, to this OTLP/HTTP collector "
        "(http://HOST:4318)",
    )
    p.add_argument(
        "cmd", nargs=argparse.REMAINDER, help="-- then the command that starts the server"
    )
    p.set_defaults(func=run_serve_proxy)


def wait_until_serving(url: str, timeout_s: float, proc: subprocess.Popen[Any] | None) -> None:
    """Poll ``url/v1/models`` until it answers.

    Raises:
        GreenAIError: The server's process exited, or it did not answer in time.
    """
    deadline = time.monotonic() + timeout_s
    probe = url.rstrip("/") + "/v1/models"
    while True:
        if proc is not None and proc.poll() is not None:
            raise GreenAIError(
                f"the server command exited with code {proc.returncode} before answering {probe}"
            )
        try:
            with urllib.request.urlopen(probe, timeout=2.0) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise GreenAIError(f"the server did not answer {probe} within {timeout_s:g} s")
        time.sleep(0.25)


def run_serve_proxy(args: argparse.Namespace) -> int:
    """The ``serve-proxy`` command. Raises GreenAIError subclasses for bad input."""
    from greenai.serving.proxy import ProxyOptions, aiohttp

    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    opts = ProxyOptions(
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        max_body_bytes=int(args.max_body_mb * 2**20),
        request_timeout_s=args.request_timeout,
    )
    aiohttp()  # fail now, with the install hint
    if args.keep < 0:
        raise ConfigError(f"--keep must be >= 0, got {args.keep}")
    if args.period is not None and not (0 < args.period < 3600):
        raise ConfigError(f"--period must be a positive number of seconds, got {args.period}")
    if args.baseline < 0:
        raise ConfigError(f"--baseline must be >= 0 seconds, got {args.baseline}")
    if args.otlp is not None:
        traces_url(args.otlp)  # a malformed endpoint fails before the server starts
        _otel_trace()
    proc: subprocess.Popen[Any] | None = None
    if cmd:
        try:
            proc = subprocess.Popen(cmd, start_new_session=True)
        except OSError as exc:
            raise ConfigError(f"cannot start {cmd[0]!r}: {exc.strerror or exc}") from None
    try:
        wait_until_serving(opts.upstream, args.startup_timeout if proc else 10.0, proc)
        return run_async(_serve(opts, args, proc))
    finally:
        if proc is not None:
            stop_server(proc)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop where it is installed (a faster event loop), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def stop_server(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the server we started; kill it after 15 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _devices(proc: subprocess.Popen[Any] | None, pid: int | None) -> tuple[list[Any], str]:
    from greenai.devices import discover
    from greenai.devices.attribution import apply_scope

    found = list(discover())
    root = proc.pid if proc is not None else pid
    if root is None:
        return found, "machine scope"
    return apply_scope(found, "process", pid=root), f"process scope, tree of pid {root}"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for ``endpoint`` (``/v1/traces`` added when it has no path).

    Raises:
        ConfigError: Not an ``http``/``https`` URL with a host, or a bad port.
    """
    from urllib.parse import urlsplit

    from greenai.exporters.otel import metrics_url

    metrics_url(endpoint)  # the same checks as `greenai run --otlp`
    text = endpoint.strip()
    return text.rstrip("/") + "/v1/traces" if urlsplit(text).path in ("", "/") else text


def _otel_trace() -> tuple[Any, Any, Any, Any]:
    """The SDK's trace, trace.export and resources modules and the OTLP/HTTP span exporter.

    Raises:
        ConfigError: They are not installed.
    """
    import importlib

    from greenai.exporters.otel import INSTALL_HINT

    try:
        return (
            importlib.import_module("opentelemetry.sdk.trace"),
            importlib.import_module("opentelemetry.sdk.trace.export"),
            importlib.import_module("opentelemetry.sdk.resources"),
            importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter"),
        )
    except ImportError as exc:
        raise ConfigError(f"--otlp needs the OTLP exporter: {INSTALL_HINT}") from exc


def _tracer(otlp: str | None = None) -> tuple[Any, Any]:
    """A tracer for the requests' spans and the provider to shut down (None: not ours).

    With ``otlp``, spans go to that collector through a batching processor (a bounded
    queue: a slow or absent collector drops spans, never holds requests); else the tracer
    of a provider configured elsewhere (``opentelemetry-instrument``), if any.
    """
    if otlp is not None:
        sdk, export, resources, exporter = _otel_trace()
        resource = resources.Resource.create({"service.name": "greenai-serve-proxy"})
        provider = sdk.TracerProvider(resource=resource)
        spans = exporter.OTLPSpanExporter(endpoint=traces_url(otlp), timeout=5)
        provider.add_span_processor(export.BatchSpanProcessor(spans))
        return provider.get_tracer("greenai.serving"), provider
    try:
        from opentelemetry import trace
    except ImportError:
        return None, None
    configured = trace.get_tracer_provider()
    if type(configured).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None, None  # no tracer configured
    return trace.get_tracer("greenai.serving"), None


@dataclass
class Hosted:
    """A proxy running in this event loop: its URL, the proxy, its meter and job."""

    url: str
    proxy: Any
    meter: Any
    job: Any
    scope: str


@contextlib.asynccontextmanager
async def hosted_proxy(
    opts: Any,
    *,
    proc: subprocess.Popen[Any] | None = None,
    pid: int | None = None,
    baseline_s: float = 0.0,
    period_s: float | None = None,
    store: str | None = None,
    keep: int = 10_000,
    log: Path | None = None,
    on_request: Callable[[Any], None] | None = None,
    otlp: str | None = None,
) -> AsyncIterator[Hosted]:
    """Start the job, meter and proxy; on exit stop them, settle everything, close the log.

    With ``store``, each request is written to the run's ``requests`` rows as it settles
    (the newest ``keep`` are kept; :meth:`greenai.store.RunStore.requests` reads them).
    ``on_request`` receives each settled request
    (:class:`~greenai.serving.attribution.RequestEnergy`), however many the meter keeps.
    With ``otlp``, each request is a span sent to that OTLP/HTTP collector.

    Raises:
        ConfigError: The port cannot be bound, or bad options.
    """
    import greenai
    from greenai.serving.meter import ServingMeter
    from greenai.serving.proxy import EnergyProxy, aiohttp

    web = aiohttp().web
    devices, scope = _devices(proc, pid)
    job = greenai.Tracker(
        "serve-proxy", devices=devices, baseline_s=baseline_s, store=store, period_s=period_s
    )
    await asyncio.to_thread(job.start)
    out: TextIO | None = log.open("a", encoding="utf-8") if log else None

    def write(r: Any) -> None:
        if on_request is not None:
            on_request(r)
        if out is not None:
            out.write(json.dumps(r.to_dict()) + "\n")
            out.flush()

    metrics = None
    with contextlib.suppress(ConfigError):
        from greenai.serving.metrics import RequestMetrics

        metrics = RequestMetrics()
    try:
        rows = await asyncio.to_thread(_request_rows, store, job.run_id, keep)
    except BaseException:
        await asyncio.to_thread(job.stop, status="failed")
        if out is not None:
            out.close()
        raise
    meter = ServingMeter(job, keep=keep, on_request=write, on_settled=rows)
    tracer, provider = _tracer(otlp)
    proxy = EnergyProxy(opts, meter, metrics=metrics, tracer=tracer)
    runner = web.AppRunner(proxy.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, opts.host, opts.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await asyncio.to_thread(job.stop, status="failed")
        if out is not None:
            out.close()
        if rows is not None:
            rows.close()
        if provider is not None:
            provider.shutdown()
        raise ConfigError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror}") from None
    port = runner.addresses[0][1] if runner.addresses else opts.port
    try:
        yield Hosted(f"http://{opts.host}:{port}", proxy, meter, job, scope)
    finally:
        await runner.cleanup()
        await asyncio.to_thread(job.stop)
        await asyncio.to_thread(meter.settle, final=True)
        proxy.take()
        if provider is not None:  # the last spans, bounded by the exporter's timeout
            await asyncio.to_thread(provider.shutdown)
        if out is not None:
            out.close()
        if rows is not None:
            await asyncio.to_thread(rows.close)


def _request_rows(store: str | None, run_id: str | None, keep: int) -> Any:
    """A :class:`~greenai.serving.rows.RequestRows` on its own connection, or None unstored.

    Raises:
        StoreError: The store cannot be opened (the job itself just opened it).
    """
    if store is None or run_id is None:
        return None
    from greenai.serving.rows import RequestRows
    from greenai.store import RunStore
    from greenai.store.postgres import is_url
    from greenai.store.spool import SpooledStore

    if is_url(store):  # PostgreSQL: spooled locally while the database is down, sent later
        spooled = SpooledStore(store).open()
        spooled.follow(run_id)
        return RequestRows(spooled, run_id, keep=max(keep, 1), own_store=True)
    return RequestRows(RunStore(store).open(), run_id, keep=max(keep, 1), own_store=True)


async def _serve(opts: Any, args: argparse.Namespace, proc: subprocess.Popen[Any] | None) -> int:
    code = 0
    received: list[int] = []  # Ctrl-C/SIGTERM taken while serving
    async with hosted_proxy(
        opts,
        proc=proc,
        pid=args.pid,
        baseline_s=args.baseline,
        period_s=args.period,
        store=args.store or None,
        keep=args.keep,
        log=args.log,
        otlp=args.otlp,
    ) as host:
        print(
            f"greenai serve-proxy: {host.url} -> {opts.upstream} ({host.scope})",
            file=sys.stderr,
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:  # greenai.interrupts' policy, on the event loop
            received.append(signum)
            if len(received) > 1:
                exit_now(signum)  # a second Ctrl-C/SIGTERM: at once, one line
            stop.set()  # the first: stop serving, settle and store what was measured

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        while not stop.is_set():
            if proc is not None and proc.poll() is not None:
                print(
                    f"greenai serve-proxy: the server exited ({proc.returncode})", file=sys.stderr
                )
                code = 1
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    print(_summary(host.meter.totals()), file=sys.stderr)
    return 128 + received[0] if received else code


def _summary(t: Any) -> str:
    per = f"{t.requests_j / t.requests:.4g} J/request" if t.requests else "no requests"
    tok = []
    if t.prefill_j_per_token is not None:
        tok.append(f"prefill {t.prefill_j_per_token:.3g} J/token")
    if t.decode_j_per_token is not None:
        tok.append(f"decode {t.decode_j_per_token:.3g} J/token")
    if t.tokens_not_counted:
        n = t.tokens_not_counted
        tok.append(f"{n} with token counts estimated or unknown: out of J/token where so")
    return (
        f"greenai serve-proxy: {t.requests} requests, {per}"
        f"{'; ' + ', '.join(tok) if tok else ''}; total {t.total_j:.4g} ± {t.uncertainty_j:.2g} J"
        f" = requests {t.requests_j:.4g} + baseline {t.baseline_j:.4g} + idle {t.idle_j:.4g}"
        f" (method {t.method})"
    )
