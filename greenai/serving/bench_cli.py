"""``greenai bench serve``: a load sweep through the measuring proxy, one row per level."""

from __future__ import annotations

import argparse
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from greenai.checks import seconds
from greenai.errors import ConfigError

__all__ = ["add_bench_serve", "run_bench_serve"]


def add_bench_serve(bench_parser: argparse.ArgumentParser) -> None:
    """Register ``serve`` under ``greenai bench``."""
    sub = bench_parser.add_subparsers(dest="bench_target", required=False, metavar="serve")
    p = sub.add_parser(
        "serve", help="energy per request and per token of a server across a load sweep"
    )
    p.add_argument("--upstream", required=True, help="the server's base URL (http://HOST:PORT)")
    p.add_argument("--model", help="model name to request (default: the server's first)")
    p.add_argument(
        "--concurrency", default="1,2,4,8", help="closed-loop levels, comma-separated (1,2,4,8)"
    )
    p.add_argument("--rate", help="open-loop levels in requests/s instead, comma-separated")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds excluded at each level")
    p.add_argument("--duration", type=float, default=20.0, help="steady seconds per level")
    p.add_argument("--prompts", type=int, default=64, help="generated prompts (default 64)")
    p.add_argument("--prompt-file", type=Path, help="prompts: JSON lines or text lines")
    p.add_argument("--stream", action="store_true", help="stream the responses (SSE)")
    p.add_argument("--baseline", type=float, default=5.0, help="seconds of idle measurement")
    p.add_argument("--period", type=float, help="sampling period in seconds")
    p.add_argument("--pid", type=int, help="attach: measure this process tree")
    p.add_argument("--startup-timeout", type=seconds, default=300.0, help="seconds for a command")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts and arrivals")
    p.add_argument("--json", dest="json_out", type=Path, help="write the results document")
    p.add_argument("--html", type=Path, help="write the HTML report (table, Pareto plot)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command that starts it")
    p.set_defaults(func=run_bench_serve)


def _levels(text: str, kind: type) -> list[Any]:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(not v > 0 for v in values):
        raise ConfigError(f"levels must be positive numbers, comma-separated; got {text!r}")
    return values


def run_bench_serve(args: argparse.Namespace) -> int:
    """The ``bench serve`` command. Raises GreenAIError subclasses for bad input."""
    from greenai.serving.cli import run_async, stop_server, wait_until_serving
    from greenai.serving.loadgen import generated_prompts, load_prompts
    from greenai.serving.proxy import ProxyOptions, aiohttp

    aiohttp()
    levels: list[tuple[str, dict[str, Any]]]
    if args.rate:
        levels = [(f"serve/rate={r:g}", {"rate_per_s": r}) for r in _levels(args.rate, float)]
    else:
        levels = [
            (f"serve/concurrency={c}", {"concurrency": c}) for c in _levels(args.concurrency, int)
        ]
    for name in ("warmup", "duration"):
        if not getattr(args, name) >= 0 or (name == "duration" and not args.duration > 0):
            raise ConfigError(f"--{name} must be a positive number of seconds")
    if args.prompts < 1:
        raise ConfigError(f"--prompts must be at least 1 (generated prompts); got {args.prompts}")
    from greenai.safe_output import check_output, write_output

    json_out = check_output(args.json_out, "--json") if args.json_out else None
    html_out = check_output(args.html, "--html") if args.html else None
    prompts = (
        load_prompts(args.prompt_file)
        if args.prompt_file
        else generated_prompts(args.prompts, seed=args.seed)
    )
    opts = ProxyOptions(upstream=args.upstream, port=0)
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    proc = None
    if cmd:
        try:
            proc = subprocess.Popen(cmd, start_new_session=True)
        except OSError as exc:
            raise ConfigError(f"cannot start {cmd[0]!r}: {exc.strerror or exc}") from None
    try:
        wait_until_serving(opts.upstream, args.startup_timeout if proc else 10.0, proc)
        model = args.model or _first_model(opts.upstream)
        doc = run_async(_sweep(opts, args, proc, model, prompts, levels))
    finally:
        if proc is not None:
            stop_server(proc)
    from greenai.serving.bench import render_html, render_table

    print(render_table(doc))
    if json_out:
        write_output(json_out, json.dumps(doc, indent=1), "--json")
    if html_out:
        write_output(html_out, render_html(doc), "--html")
    return 0 if all(r["status"] == "ok" for r in doc["results"]) else 1


def _first_model(upstream: str) -> str:
    with urllib.request.urlopen(upstream.rstrip("/") + "/v1/models", timeout=10) as r:
        data = json.loads(r.read())
    try:
        return str(data["data"][0]["id"])
    except (KeyError, IndexError, TypeError):
        raise ConfigError("the server lists no model at /v1/models; pass --model") from None


async def _sweep(
    opts: Any,
    args: argparse.Namespace,
    proc: Any,
    model: str,
    prompts: list[Any],
    levels: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    from greenai.bench.machine import machine_info
    from greenai.progress import steps
    from greenai.serving.bench import level_row, serve_document
    from greenai.serving.cli import hosted_proxy
    from greenai.serving.loadgen import run_level
    from greenai.serving.proxy import aiohttp

    http = aiohttp()
    rows: list[dict[str, Any]] = []
    pending: list[tuple[str, dict[str, Any], list[Any], float]] = []
    # every settled request, not the meter's newest `keep`: a long sweep has more
    settled: dict[str, Any] = {}

    def collect(r: Any) -> None:
        settled[r.request_id] = r

    async with hosted_proxy(
        opts,
        proc=proc,
        pid=args.pid,
        baseline_s=args.baseline,
        period_s=args.period,
        on_request=collect,
    ) as host:
        conn = http.TCPConnector(limit=0)
        timeout = http.ClientTimeout(total=opts.request_timeout_s)
        async with http.ClientSession(connector=conn, timeout=timeout) as session:
            with steps(len(levels), "bench serve") as bar:
                for i, (name, level) in enumerate(levels):
                    bar.begin(f"{name}: {args.warmup:g} s warm-up + {args.duration:g} s")
                    samples, lo, hi = await run_level(
                        session,
                        host.url,
                        model,
                        prompts,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                        stream=args.stream,
                        seed=args.seed + i,
                        **level,
                    )
                    pending.append((name, level, samples, hi - lo))
                    steady = sum(s.steady for s in samples)
                    bar.note(f"{name}: {len(samples)} requests, {steady} in the steady window")
                bar.finish()
        scope, meter, job = host.scope, host.meter, host.job
    for name, level, samples, window in pending:
        rows.append(level_row(name, level, samples, settled, window))
    t = meter.totals()
    notes = [
        f"measured: {scope}; method {t.method}"
        + (" (CPU energy is a model estimate: no RAPL here)" if "model" in t.method else ""),
        f"baseline {args.baseline:g} s: idle power kept apart; requests carry the rest",
        *t.notes,
    ]
    result = job.result
    if result is not None and result.partial:  # a device failed mid-run...
        gaps = ", ".join(d.name for d in result.devices if d.partial) or "a device"
        notes.append(f"partial: {gaps} failed mid-run; the gaps were interpolated")
    devices, share = None, None
    if result is not None:  # ... and why; a busy machine; what the sensors assume
        from greenai.bench.suite import shared_rel

        notes.extend(n for n in result.notes if n not in notes)
        devices = [{"name": d.name, "kind": d.kind, "method": d.method} for d in result.devices]
        share = shared_rel(result)
    return serve_document(
        rows,
        machine=machine_info(),
        server=opts.upstream,
        model=model,
        notes=notes,
        devices=devices,
        shared_rel=share,
    )
