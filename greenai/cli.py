"""The ``greenai`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from greenai.errors import ConfigError, GreenAIError


def _devices(args: argparse.Namespace) -> int:
    from greenai.devices.discovery import discover
    from greenai.sampling.native import sampler_kind

    devices = discover(models=not args.no_models)
    print(f"sampler: {sampler_kind()}")
    if not devices:
        print("no energy source found: greenai will measure time only")
        return 0
    width = max(len(d.name) for d in devices)
    for device in devices:
        try:  # opening settles what the device can report (counter or power)
            device.open()
        except GreenAIError as exc:
            print(f"{device.name:<{width}}  {device.kind:<5} {'-':<8} unusable: {exc}")
            continue
        try:
            print(f"{device.name:<{width}}  {device.kind:<5} {device.method:<8} {device.detail()}")
        finally:
            device.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from greenai.demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.compress:
        from greenai.compress.cli import print_sweep
        from greenai.demo import compress_demo
        from greenai.report.compression import check_export_path

        out = check_export_path(args.output or Path("greenai-compress.html"), "--output")
        return print_sweep(compress_demo(), out)

    from greenai.demo import DEMO_EPOCHS, QUICK_EPOCHS, epoch_line, epoch_table

    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEMO_EPOCHS)
    demo = run_demo(
        epochs=epochs,
        seed=args.seed,
        country=args.country,
        pue=args.pue,
        store=args.store,
        on_epoch=lambda e: print(epoch_line(e, epochs), flush=True),
        command=f"greenai demo --epochs {epochs} --seed {args.seed}",
    )
    print()
    print(epoch_table(demo.epochs))
    print()
    print(summary(demo.measurement))
    if demo.run_id is not None:
        path = _write_html(args.store, demo.run_id)
        print(f"  stored as run {demo.run_id}; report: {path}")
    return 0


def _compress(args: argparse.Namespace) -> int:
    from greenai.compress.cli import run_compress

    return run_compress(args)


def _store(spec: str | None) -> Any:
    from greenai.store import RunStore

    return RunStore(spec).open()


def _write_html(store_spec: str | None, run_id: str) -> Path:
    from greenai.report import export

    store = _store(store_spec)
    try:
        run = store.get(run_id)
        path = Path(store.path).parent / "reports" / f"{run.id}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        export(run.measurement, "html", path, timeline=run.timeline, phase_spans=run.phase_spans)
        return path
    finally:
        store.close()


def _run(args: argparse.Namespace) -> int:
    from greenai.runner import run_command

    series = None
    if args.carbon_intensity_series is not None:  # a bad file fails before the command runs
        from greenai.carbon.series import load_intensity_series

        series = load_intensity_series(args.carbon_intensity_series)
    code, result = run_command(
        args.cmd,
        name=args.name,
        store=args.store or True,
        period_s=args.period,
        checkpoint_s=args.checkpoint,
        pue=args.pue,
        country=args.country,
        region=args.region,
        carbon_intensity_g_per_kwh=args.carbon_intensity,
        renewable_share=args.renewable_share,
        prometheus_port=args.prometheus_port,
        prometheus_addr=args.prometheus_addr,
        scope=args.scope,
    )
    print(summary(result), file=sys.stderr)
    if series is not None:
        _print_hourly_co2e(series, result, args.store)
    return code


def _print_hourly_co2e(series: Any, result: Any, store_spec: str | None) -> None:
    """CO2e hour by hour from the stored run's timeline; a failure is a note, not an error."""
    from greenai.carbon.series import (
        co2e_series,
        format_start_hour_table,
        start_hour_table,
        total_energy_curve,
    )

    store = _store(store_spec)
    try:
        run = store.get("latest")
    finally:
        store.close()
    if run.measurement is None or run.measurement.started_at != result.started_at:
        print(
            "  CO2e hour by hour: not computed (the run's timeline was not found)", file=sys.stderr
        )
        return
    pue = result.carbon.pue if result.carbon is not None else 1.0
    try:
        t, e = total_energy_curve(run.timeline)
        hourly = co2e_series(t, e, result.started_at, series, pue=pue)
        rows = start_hour_table(t, e, result.started_at, series, pue=pue)
    except GreenAIError as exc:
        print(f"  CO2e hour by hour: not computed ({exc})", file=sys.stderr)
        return
    mean = "" if hourly.mean_g_per_kwh is None else f" at a mean {hourly.mean_g_per_kwh:.4g} g/kWh"
    print(
        f"  CO2e hour by hour: {hourly.co2e_kg * 1000:.4g} g{mean} ({hourly.source})",
        file=sys.stderr,
    )
    print("  had it started at another hour of that day:", file=sys.stderr)
    print(format_start_hour_table(rows), file=sys.stderr)


def _runs(args: argparse.Namespace) -> int:
    store = _store(args.store)
    try:
        frame = store.runs(
            name=args.name, status=args.status, since=args.since, until=args.until, limit=args.limit
        )
    finally:
        store.close()
    print(frame.to_string(index=False) if len(frame) else "no runs stored yet")
    return 0


def _stored_run(args: argparse.Namespace) -> tuple[Any, Path]:
    """The run ``args.run`` names in ``args.store``, and the folder the store lives in."""
    store = _store(args.store)
    try:
        return store.get(args.run), Path(store.path).parent
    finally:
        store.close()


def _report(args: argparse.Namespace) -> int:
    from greenai.report import export

    if args.phase_depth < 0 or args.top_phases < 0:
        raise ConfigError("--phase-depth and --top-phases must be >= 0")
    run, home = _stored_run(args)
    if run.measurement is None:
        print(f"run {run.id} ({run.status}) has no measurement yet")
        return 0
    output = args.output
    if output is None and args.format == "html":
        output = home / "reports" / f"{run.id}.html"
        output.parent.mkdir(parents=True, exist_ok=True)
    phases = {"phase_depth": args.phase_depth, "top_phases": args.top_phases or None}
    if args.format == "text" and output is None and color_enabled(sys.stdout):
        from greenai.report import render_text

        print(render_text(run.measurement, color=True, **phases))
        return 0
    text = export(
        run.measurement,
        args.format,
        output,
        timeline=run.timeline,
        phase_spans=run.phase_spans,
        **phases,
    )
    print(f"wrote {output}" if output is not None else text)
    return 0


def _export(args: argparse.Namespace) -> int:
    from greenai.report import export_tables

    run, home = _stored_run(args)
    if run.measurement is None:
        print(f"run {run.id} ({run.status}) has no measurement yet")
        return 0
    out = args.dir if args.dir is not None else home / "exports" / run.id
    paths = export_tables(
        run.measurement, out, args.format, timeline=run.timeline, phase_spans=run.phase_spans
    )
    print("\n".join(str(p) for p in paths))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from greenai.bench.compare import compare_files, run_side, stored_run_notes
    from greenai.report.compare import (
        compare_measurements,
        comparisons_csv,
        comparisons_json,
        render_comparisons,
    )

    if len(args.runs) < 2:
        raise ConfigError("compare needs two runs (or two bench files): greenai compare A B")
    if all(r.endswith(".json") for r in args.runs):  # greenai bench --json results
        print(compare_files(args.runs, args.format))
        return 0
    store = _store(args.store)
    try:
        runs = [store.get(r) for r in args.runs]
    finally:
        store.close()
    metas, ids = [run.meta for run in runs], [run.id for run in runs]
    notes = stored_run_notes(metas, ids, allow_mixed=args.allow_mixed)
    sides = [run_side(chr(ord("A") + i), run) for i, run in enumerate(runs)]
    comparisons = [
        compare_measurements(sides[0], runs[0].measurement, side, run.measurement)
        for side, run in zip(sides[1:], runs[1:], strict=True)
    ]
    if args.format == "json":
        print(comparisons_json(comparisons, notes))
    elif args.format == "csv":
        print(comparisons_csv(comparisons), end="")
    else:
        print(render_comparisons(comparisons, notes))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from greenai.bench.cli import bench

    return bench(args)


def color_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def summary(result: object) -> str:
    """A short plain-text summary of a Measurement."""
    from greenai.measurement import Measurement

    assert isinstance(result, Measurement)
    lines = [f"{result.name}: {result.status} in {result.duration_s:.2f} s"]
    if result.energy_j is None:
        lines.append("  energy: not measured (no energy source)")
    else:
        lines.append(
            f"  energy: {result.energy_j:.1f} J ± {result.uncertainty_j or 0:.1f} J "
            f"= {result.energy_kwh:.3g} kWh, avg {result.avg_power_w or 0:.1f} W "
            f"[{', '.join(result.methods)}]"
        )
    if result.flops:
        lines.append(
            f"  work: {result.tflop:.4g} TFLOP, {result.j_per_tflop:.4g} J/TFLOP, "
            f"{result.kwh_per_tflop:.3g} kWh/TFLOP ({result.kwh_per_tflop_pue:.3g} with PUE)"
            + (f", MFU {result.mfu:.1%}" if result.mfu is not None else "")
        )
    if result.carbon is not None:
        c = result.carbon
        if c.co2e_kg is None:
            lines.append("  CO2e: no grid given (pass country= or carbon_intensity_g_per_kwh=)")
        else:
            lines.append(
                f"  CO2e: {c.co2e_kg * 1000:.4g} g location-based at "
                f"{c.carbon_intensity_g_per_kwh:.0f} g/kWh ({c.country or 'given'})"
                + (
                    f", {c.co2e_market_kg * 1000:.4g} g market-based"
                    if c.co2e_market_kg is not None
                    else ""
                )
            )
    for d in result.devices:
        lines.append(
            f"  {d.name:<14} {d.energy_j:10.1f} J ± {d.uncertainty_j:.1f}  {d.method}"
            + ("  (partial)" if d.partial else "")
        )
    for p in result.phases:
        if p.energy_j is not None:
            lines.append(f"  phase {p.name:<20} {p.energy_j:10.1f} J  x{p.count}")
    if result.steps.count:
        per = result.steps.mean_energy_j
        lines.append(
            f"  steps: {result.steps.count}"
            + (f", {per:.3f} J/step" if per is not None else "")
            + (
                f", {result.steps.energy_per_sample_j:.4f} J/sample"
                if result.steps.energy_per_sample_j
                else ""
            )
        )
    if "model" in result.methods:
        lines.append(
            "  note: 'model' figures are estimated from utilisation and a TDP table, "
            "not measured (no readable energy counter here)"
        )
    job = result.job
    if job is not None and job.scope == "job":  # a distributed job, on rank 0
        lines.append(f"  job: {len(job.ranks)}/{job.world_size} ranks on {len(job.nodes)} node(s)")
        lines.extend(
            f"  node {n.host:<14} {n.energy_j:10.1f} J  ranks {list(n.ranks)}" for n in job.nodes
        )
    lines.extend(f"  note: {n}" for n in result.notes)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``greenai``."""
    parser = argparse.ArgumentParser(prog="greenai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("devices", help="list the energy sources found and how each is measured")
    p.add_argument("--no-models", action="store_true", help="hide the CPU/memory models")
    p.set_defaults(func=_devices)
    p = sub.add_parser("run", help="measure a command: greenai run [options] -- CMD ARGS...")
    p.add_argument("--name", help="run name (default: the command's name)")
    p.add_argument("--store", help="run store file (default: $GREENAI_HOME or ./.greenai)")
    p.add_argument("--period", type=float, default=None, help="sampling period in seconds")
    p.add_argument(
        "--checkpoint", type=float, default=5.0, help="seconds between checkpoints (default 5)"
    )
    p.add_argument("--pue", type=float, default=1.0)
    p.add_argument("--country", help="ISO alpha-3 grid for CO2e (e.g. FRA, or WORLD)")
    p.add_argument("--region", help="sub-national grid (US state, Canadian province, ...)")
    p.add_argument("--carbon-intensity", type=float, help="grid g CO2e/kWh (overrides --country)")
    p.add_argument(
        "--renewable-share", type=float, help="share in [0, 1] under renewable contracts"
    )
    p.add_argument(
        "--carbon-intensity-series",
        metavar="FILE",
        help="CSV of UTC times and g CO2e/kWh: also charge CO2e hour by hour",
    )
    p.add_argument(
        "--prometheus-port", type=int, help="serve live power/energy for Prometheus (0: any port)"
    )
    p.add_argument(
        "--prometheus-addr", default="127.0.0.1", help="address to serve on (default 127.0.0.1)"
    )
    p.add_argument(
        "--scope",
        choices=["machine", "process"],
        default="machine",
        help="machine: all the hardware drew (default); process: the command's share",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command to measure")
    p.set_defaults(func=_run)
    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--store")
    p.add_argument("--name")
    p.add_argument("--status", choices=["running", "completed", "failed", "interrupted"])
    p.add_argument("--since", help="runs started at or after: ISO date or time, e.g. 2026-11-01")
    p.add_argument("--until", help="runs started at or before: ISO date or time")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_runs)
    p = sub.add_parser("report", help="report one stored run (an id, a prefix, or latest)")
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--store")
    p.add_argument("--format", choices=["text", "md", "html", "json", "csv"], default="text")
    p.add_argument(
        "--output", type=Path, help="file to write (html defaults to the store's reports/)"
    )
    p.add_argument(
        "--phase-depth",
        type=int,
        default=1,
        help="deepest phase level shown (0: top level only; default 1)",
    )
    p.add_argument(
        "--top-phases",
        type=int,
        default=12,
        help="phases shown, the most energy first (default 12; 0: all)",
    )
    p.set_defaults(func=_report)
    p = sub.add_parser("export", help="write a run's tables (summary ... timeline) as files")
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--store")
    p.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    p.add_argument("--dir", type=Path, help="directory (default: exports/RUN beside the store)")
    p.set_defaults(func=_export)
    p = sub.add_parser(
        "compare",
        help="B (and C...) relative to A: stored runs, or two `greenai bench --json` files",
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--store")
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="compare stored runs of different benchmark suites anyway (with a warning)",
    )
    p.add_argument(
        "--format", choices=["text", "json", "csv"], default="text", help="output (default text)"
    )
    p.set_defaults(func=_compare)
    p = sub.add_parser("bench", help="run the standard workload suite (TFLOP/s, J/TFLOP)")
    from greenai.bench.cli import add_arguments

    add_arguments(p)
    p.set_defaults(func=_bench)
    p = sub.add_parser("demo", help="train a small CNN on scikit-learn's digits, tracked")
    p.add_argument("--epochs", type=int, help="epochs to train (default 24: about 15 s on CPU)")
    p.add_argument("--quick", action="store_true", help="3 epochs: a few seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--country", default="WORLD", help="ISO alpha-3 grid for CO2e (default: world average)"
    )
    p.add_argument("--pue", type=float, default=1.0, help="facility PUE (default 1.0)")
    p.add_argument("--store", help="run store file (default: $GREENAI_HOME or ./.greenai)")
    p.add_argument(
        "--compress", action="store_true", help="instead, run a compression sweep of the model"
    )
    p.add_argument("--output", type=Path, help="with --compress: report file (.html/.md/.csv)")
    p.set_defaults(func=_demo)
    p = sub.add_parser("compress", help="compression sweep: accuracy, size, latency, energy")
    p.add_argument("model", help="module:callable returning an nn.Module (or the module itself)")
    p.add_argument("--input-shape", required=True, help="example input shape, e.g. 64,64")
    p.add_argument("--methods", help="comma-separated specs, e.g. l1:0.5,structured:0.5")
    p.add_argument("--eval", dest="eval_fn", help="module:callable, eval_fn(model) -> accuracy")
    p.add_argument("--repeats", type=int, default=5, help="measured windows per row (>= 2)")
    p.add_argument("--device", help="cpu or cuda (default: where the model is)")
    p.add_argument("--dtype", help="cast model and input, e.g. bfloat16 (default: as built)")
    p.add_argument("--country", default="WORLD", help="ISO alpha-3 grid for CO2e")
    p.add_argument("--period", type=float, help="sampling period in seconds (windows >= 10)")
    p.add_argument("--out", type=Path, help="write the table: .csv, .json, .md or .html")
    p.set_defaults(func=_compress)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GreenAIError as exc:
        print(f"greenai: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
