"""The ``greenai`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from greenai.checks import seconds
from greenai.errors import ConfigError, GreenAIError, GreenAIWarning
from greenai.flags import STORE_HELP, add_flags, flag_options
from greenai.tags import parse_tags

if TYPE_CHECKING:
    from greenai.sink_registry import SinkSpec

RUN_OPTIONS = (
    "store",
    "period_s",
    "checkpoint_s",
    "pue",
    "country",
    "region",
    "cloud",
    "carbon_intensity_g_per_kwh",
    "renewable_share",
    "carbon_intensity_series",
    "scope",
)
"""The tracker options ``greenai run`` takes as flags (:func:`greenai.options.add_flags`)."""

DEMO_OPTIONS = ("country", "pue", "store")
COMPRESS_OPTIONS = ("country", "period_s")
_PYTHON_FORMATWARNING = warnings.formatwarning


def _devices(args: argparse.Namespace) -> int:
    from greenai.devices.discovery import discover
    from greenai.sampling.native import sampler_kind

    devices = discover(models=not args.no_models)
    lines, readable = [], []
    width = max((len(d.name) for d in devices), default=0)
    for device in devices:
        try:  # opening settles what the device can report (counter or power)
            device.open()
        except GreenAIError as exc:
            lines.append(f"{device.name:<{width}}  {device.kind:<5} {'-':<8} unusable: {exc}")
            continue
        try:
            lines.append(
                f"{device.name:<{width}}  {device.kind:<5} {device.method:<8} {device.detail()}"
            )
            if device.capabilities().native_loop:
                readable.append(device.name)
        finally:
            device.close()
    print(f"sampler: {sampler_kind(readable)}")  # what runs for these devices, first
    if not devices:
        print("no energy source found: greenai will measure time only")
    for line in lines:
        print(line)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from greenai.demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.compress:
        from greenai.compress.cli import print_sweep, sweep_progress
        from greenai.compress.demo import DEMO_METHODS, compress_demo
        from greenai.report.compression import check_export_path

        out = check_export_path(args.output or Path("greenai-compress.html"), "--output")

        with sweep_progress(1 + len(DEMO_METHODS.split(","))) as report:
            frame = compress_demo(progress=report)
        return print_sweep(frame, out)

    from greenai.demo import DEMO_EPOCHS, QUICK_EPOCHS, epoch_line, epoch_table, scope_line

    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEMO_EPOCHS)
    from greenai.notices import said_once

    with said_once() as said:  # a warning said while it ran is not repeated in the notes
        demo = run_demo(
            epochs=epochs,
            seed=args.seed,
            **flag_options(args, DEMO_OPTIONS),
            on_epoch=lambda e: print(epoch_line(e, epochs), flush=True),
            command=f"greenai demo --epochs {epochs} --seed {args.seed}",
        )
    print()
    print(epoch_table(demo.epochs))
    print(scope_line(demo.measurement))
    print()
    print(summary(demo.measurement, said=said))
    if demo.run_id is not None:
        learning = [
            {"epoch": e.epoch, "loss": e.train_loss, "accuracy": e.test_accuracy,
             "energy_j": e.energy_j, "uncertainty_j": e.uncertainty_j}
            for e in demo.epochs
        ]  # fmt: skip
        path = _write_html(args.store, demo.run_id, learning)
        print(f"  stored as run {demo.run_id}; report: {path}")
    return 0


def _compress(args: argparse.Namespace) -> int:
    from greenai.compress.cli import run_compress

    return run_compress(args)


def _store(spec: str | None) -> Any:
    """The store, opened read-only: listings and reports never create or change a file."""
    from greenai.store import RunStore

    return RunStore(spec, read_only=True).open()


def _write_html(
    store_spec: str | None, run_id: str, learning: list[dict[str, Any]] | None = None
) -> Path:
    from greenai.report import export
    from greenai.report.html_page import render_html

    store = _store(store_spec)
    try:
        run = store.get(run_id)
        path = Path(store.home) / "reports" / f"{run.id}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        served = run.requests if len(run.requests) else None
        if (learning or served is not None) and run.measurement is not None:
            page = render_html(
                run.measurement,
                run.timeline,
                run.phase_spans,
                learning=learning or None,
                requests=served,
            )
            path.write_text(page, encoding="utf-8")
        else:
            export(
                run.measurement, "html", path, timeline=run.timeline, phase_spans=run.phase_spans
            )
        return path
    finally:
        store.close()


def _run(args: argparse.Namespace) -> int:
    from greenai.runner import run_command

    options = flag_options(args, RUN_OPTIONS)
    series = options["carbon_intensity_series"]
    if series is not None:  # a bad file fails before the command runs
        from greenai.carbon.series import load_intensity_series

        series = options["carbon_intensity_series"] = load_intensity_series(series)
    options["store"] = options["store"] or True
    from greenai.sink_registry import SinkSpec, make_sink, parse_sink_spec

    # Made now: an unknown name, a missing extra, a malformed endpoint fail before the command.
    specs = [parse_sink_spec(text) for text in args.sink or []]
    if args.otlp is not None:  # --otlp ENDPOINT: --sink otlp:ENDPOINT (a comma kept whole)
        specs.insert(0, SinkSpec("otlp", (args.otlp,), {}))
    specs = _prometheus_alias(specs, args.prometheus_port, args.prometheus_addr)
    seen: set[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]] = set()
    for spec in specs:  # the same sink twice would send every figure twice to one place
        key = (spec.name, spec.args, tuple(sorted(spec.options.items())))
        if key in seen:
            also = " (--otlp ENDPOINT is --sink otlp:ENDPOINT)" if args.otlp is not None else ""
            raise ConfigError(
                f"--sink {spec.name}{':' + ','.join(spec.args) if spec.args else ''} is given"
                f" twice{also}: give each sink once"
            )
        seen.add(key)
    sinks = [make_sink(spec) for spec in specs]
    from greenai.notices import said_once

    with said_once() as said:  # a sink's failure: one line, when it happens
        code, result = run_command(
            args.cmd,
            name=args.name,
            on_stored=lambda run_id, path: print(
                f"greenai: run {run_id} in {path}", file=sys.stderr
            ),
            tags=parse_tags(args.tag),
            sinks=sinks,
            **options,
        )
    print(summary(result, said=said), file=sys.stderr)
    if series is not None:
        _print_hourly_co2e(series, result, args.store)
    return code


def _prometheus_alias(specs: list[SinkSpec], port: int | None, addr: str | None) -> list[SinkSpec]:
    """``--prometheus-port P [--prometheus-addr A]`` as ``--sink prometheus:P,addr=A``.

    Given with a ``--sink prometheus`` of the same port and address, the two are one
    exporter; of another, a conflict.

    Raises:
        ConfigError: ``--prometheus-addr`` without ``--prometheus-port``, or both flags and
            a ``--sink prometheus`` that serves elsewhere.
    """
    from greenai.sink_registry import SinkSpec

    if port is None:
        if addr is not None:
            raise ConfigError(
                "--prometheus-addr needs --prometheus-port"
                " (or give --sink prometheus:PORT,addr=ADDR)"
            )
        return specs
    given = SinkSpec("prometheus", (str(port),), {"addr": addr or "127.0.0.1"})
    others = [s for s in specs if s.name == "prometheus"]
    for other in others:
        there = (
            other.args[0] if other.args else "9400",
            other.options.get("addr", "127.0.0.1"),
        )
        if there != (str(port), given.options["addr"]):
            raise ConfigError(
                f"--prometheus-port {port} (on {given.options['addr']}) and --sink prometheus"
                f" (port {there[0]} on {there[1]}) would start two exporters; --prometheus-port"
                " is --sink prometheus:PORT: give one of them"
            )
    return specs if others else [*specs, given]


def _reconcile(args: argparse.Namespace) -> int:
    from greenai.distributed.reconcile import reconcile_run

    store = _store(args.store)
    try:
        run = store.get(args.run)
    finally:
        store.close()
    result = reconcile_run(
        run,
        source=args.source,
        prometheus=args.prometheus,
        query=args.query,
        interval_s=args.interval,
    )
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("\n".join(result.lines()))
    return 0


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
    # The tracker's figure (stored with the run) is the headline; the table shifts the
    # stored timeline.
    kg = result.co2e_series_kg if result.co2e_series_kg is not None else hourly.co2e_kg
    source = result.co2e_series_source or hourly.source
    mean = "" if hourly.mean_g_per_kwh is None else f" at a mean {hourly.mean_g_per_kwh:.4g} g/kWh"
    print(f"  CO2e hour by hour: {kg * 1000:.4g} g{mean} ({source})", file=sys.stderr)
    print("  had it started at another hour of that day:", file=sys.stderr)
    print(format_start_hour_table(rows), file=sys.stderr)


def _runs(args: argparse.Namespace) -> int:
    from greenai.safe_output import csv_safe, cut, terminal_text

    store = _store(args.store)
    try:
        tags = parse_tags(args.tag)
        frame = store.runs(
            name=args.name,
            status=args.status,
            since=args.since,
            until=args.until,
            limit=args.limit,
            tags=tags,
        )
        filtered = tags or any(
            v is not None for v in (args.name, args.status, args.since, args.until)
        )
        stored = len(store.runs(limit=1)) if filtered and not len(frame) else 0
    finally:
        store.close()
    if args.format == "json":
        print(frame.to_json(orient="records", indent=2))
    elif args.format == "csv":
        print(terminal_text(csv_safe(frame).to_csv(index=False)), end="")
    elif len(frame):
        shown = frame.assign(
            name=frame["name"].map(lambda s: cut(str(s), 40)),
            host=frame["host"].map(lambda s: cut(str(s), 40)),
            tags=frame["tags"].map(lambda s: cut(str(s), 40)),
        )
        print(terminal_text(shown.to_string(index=False)))
    elif stored:
        print("no runs match these filters")
    else:
        print(f"no runs stored yet in {store.location}")
    return 0


def _kpi(args: argparse.Namespace) -> int:
    from greenai.report.kpi_cli import run_kpi

    return run_kpi(args, _store)


def _store_copy(args: argparse.Namespace) -> int:
    from greenai.store import RunStore
    from greenai.store.copy import copy_runs

    source = RunStore(args.source, read_only=True)
    if source.path is not None and not source.path.is_file():
        raise ConfigError(f"no run store at {source.path}: give an existing SQLite file")
    with source, RunStore(args.destination) as destination:
        if source.location == destination.location:
            raise ConfigError(f"source and destination are the same store: {source.location}")
        copied, skipped = copy_runs(source, destination)
    print(
        f"copied {copied} runs from {source.location} to {destination.location}"
        + (f"; {skipped} were there already" if skipped else "")
    )
    return 0


def _stored_run(args: argparse.Namespace) -> tuple[Any, Path]:
    """The run ``args.run`` names in ``args.store``, and the folder the store lives in."""
    store = _store(args.store)
    try:
        return store.get(args.run), Path(store.home)
    finally:
        store.close()


def _report(args: argparse.Namespace) -> int:
    from greenai.report import export

    if args.phase_depth < 0 or args.top_phases < 0:
        raise ConfigError("--phase-depth and --top-phases must be >= 0")
    run, home = _stored_run(args)
    if run.measurement is None:
        message = f"run {run.id} ({run.status}) has no measurement yet"
        if args.output is not None:  # asked for a file that cannot be written
            raise ConfigError(f"{message}; nothing to write to {args.output}")
        print(_terminal(message))
        return 0
    output = None if args.output is None else _checked(args.output)
    if args.format in ("json", "csv"):
        return _print_or_write(run_record(run, args.format), output)
    if args.format in ("model-card", "codecarbon-csv"):
        from greenai.report.model_card import codecarbon_csv, model_card

        if args.format == "model-card":
            text = model_card(_printable(run.measurement), run.meta)
        else:  # data: names whole, made safe for the terminal only when printed there
            text = codecarbon_csv(
                run.measurement, run_id=run.id, ended_at=run.ended_at, meta=run.meta
            )
            text = text if output is not None else _terminal(text)
        return _print_or_write(text.rstrip("\n"), output)
    if args.format in ("text", "md", "html"):  # control characters; names of any length
        run = dataclasses.replace(run, measurement=_printable(run.measurement))
    if output is None and args.format == "html":
        output = home / "reports" / f"{run.id}.html"
        output.parent.mkdir(parents=True, exist_ok=True)
    phases = {"phase_depth": args.phase_depth, "top_phases": args.top_phases or None}
    if args.format == "text" and output is None and color_enabled(sys.stdout):
        from greenai.report import render_text

        served = run.requests if len(run.requests) else None
        print(render_text(run.measurement, color=True, **phases, requests=served))
        return 0
    from greenai.report.learning import learning_rows

    text = export(
        run.measurement,
        args.format,
        output,
        timeline=run.timeline,
        phase_spans=run.phase_spans,
        requests=run.requests if len(run.requests) else None,
        **phases,
        learning=learning_rows(run.meta, run.measurement),
    )
    print(f"wrote {output}" if output is not None else text)
    return 0


def _checked(path: Path) -> Path:
    from greenai.safe_output import check_output

    return check_output(path, "--output")


def _print_or_write(text: str, output: Path | None) -> int:
    from greenai.safe_output import write_output

    print(f"wrote {write_output(output, text, '--output')}" if output is not None else text)
    return 0


def _terminal(text: str) -> str:
    from greenai.safe_output import terminal_text

    return terminal_text(text)


def run_record(run: Any, fmt: str) -> str:
    """A stored run's report as JSON or CSV: its Measurement and which run it is.

    JSON is the Measurement's record (:meth:`~greenai.Measurement.from_dict` reads it back)
    with a ``run`` object: ``id``, ``status``, ``host``, ``started_at``, ``ended_at``,
    ``command``, ``exit_code`` and ``meta``. CSV is the one-row summary with ``run_id``,
    ``host``, ``command``, ``exit_code`` and ``meta`` (JSON text) in front, its text cells
    made safe for spreadsheets and terminals.
    """
    from greenai.report.frames import summary_frame
    from greenai.safe_output import csv_safe

    command = run.command if run.command is not None else run.meta.get("command")
    if fmt == "json":
        record = {
            "run": {
                "id": run.id,
                "status": run.status,
                "host": run.host,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "command": command,
                "exit_code": run.exit_code,
                "meta": run.meta,
            },
            **run.measurement.to_dict(),
        }
        return json.dumps(record, indent=2)
    frame = summary_frame(run.measurement)
    front = {
        "run_id": run.id,
        "host": run.host,
        "command": command,
        "exit_code": run.exit_code,
        "meta": json.dumps(run.meta, sort_keys=True),
    }
    for i, (column, value) in enumerate(front.items()):
        frame.insert(i, column, [value] * len(frame), allow_duplicates=True)
    return _terminal(csv_safe(frame).to_csv(index=False))


def _printable(m: Any) -> Any:
    """``m`` as a person reads it (:func:`greenai.safe_output.display_measurement`)."""
    from greenai.safe_output import display_measurement

    return display_measurement(m)


def _cannot_write(path: Path, exc: OSError, hint: str) -> GreenAIError:
    from greenai.errors import ConfigError

    return ConfigError(f"cannot write {path}: {exc.strerror or exc}; {hint}")


def _export(args: argparse.Namespace) -> int:
    from greenai.report import export_tables
    from greenai.safe_output import terminal_text

    run, home = _stored_run(args)
    if run.measurement is None:
        print(terminal_text(f"run {run.id} ({run.status}) has no measurement yet"))
        return 0
    out = args.dir if args.dir is not None else home / "exports" / run.id
    if out.exists() and not out.is_dir():
        raise _not_a_folder(out)
    try:
        paths = export_tables(
            run.measurement,
            out,
            args.format,
            timeline=run.timeline,
            phase_spans=run.phase_spans,
            requests=run.requests,
        )
    except OSError as exc:
        raise _cannot_write(out, exc, "give --dir FOLDER") from exc
    print(terminal_text("\n".join(str(p) for p in paths)))
    return 0


def _not_a_folder(path: Path) -> GreenAIError:
    from greenai.errors import ConfigError

    return ConfigError(f"--dir {path} is a file; give a folder")


def _compare(args: argparse.Namespace) -> int:
    from greenai.bench.compare import compare_files, run_side, stored_run_notes
    from greenai.report.compare import (
        compare_measurements,
        comparisons_csv,
        comparisons_json,
        render_comparisons,
    )
    from greenai.safe_output import DISPLAY_NAME_MAX

    if len(args.runs) < 2:
        raise ConfigError("compare needs two runs (or two bench files): greenai compare A B")
    if all(r.endswith(".json") for r in args.runs):  # greenai bench --json results
        text = compare_files(args.runs, args.format)
        print(text if args.format in ("json", "html") else _terminal(text))
        return 0
    files = [r for r in args.runs if r.endswith(".json")]
    if files:
        raise ConfigError(
            f"{files[0]} is a bench result (a .json file) and the others are stored runs:"
            " compare two bench files (greenai compare a.json b.json) or two runs"
            " (greenai compare RUN_A RUN_B)"
        )
    store = _store(args.store)
    try:
        runs = [store.get(r) for r in args.runs]
    finally:
        store.close()
    if args.format == "text":  # what a person reads: no control characters, names cut
        runs = [
            dataclasses.replace(
                run,
                name=_terminal(run.name)[:DISPLAY_NAME_MAX],
                measurement=None if run.measurement is None else _printable(run.measurement),
            )
            for run in runs
        ]
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
        print(_terminal(comparisons_csv(comparisons)), end="")
    elif args.format == "html":
        from greenai.report.compare_html import render_comparisons_html

        print(render_comparisons_html(comparisons, notes, title="greenai compare"), end="")
    else:
        print(_terminal(render_comparisons(comparisons, notes)))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from greenai.bench.cli import bench

    return bench(args)


def color_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def summary(result: object, said: set[str] | None = None) -> str:
    """A short plain-text summary of a Measurement, without control characters.

    Notes already said on stderr while the job ran (``said``, from
    :func:`greenai.notices.said_once`) are not repeated.
    """
    from greenai.measurement import Measurement
    from greenai.notices import unsaid
    from greenai.safe_output import terminal_text

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
    lines.extend(f"  note: {n}" for n in unsaid(result.notes, said or set()))
    return terminal_text("\n".join(lines))  # names and notes may hold control characters


def _tag_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--tag", action="append", default=[], metavar="K=V", help=help)


class _Parser(argparse.ArgumentParser):
    """argparse, with one line for a bad command line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"greenai: error: {message} (see: {self.prog} --help)\n")


class _Once(argparse.Action):
    """A flag given at most once: argparse would keep the last value and drop the first."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        before = getattr(namespace, self.dest, None)
        if before is not None:
            also = (
                " (for two collectors: --sink otlp:A --sink otlp:B)" if self.dest == "otlp" else ""
            )
            parser.error(
                f"{option_string} is given twice ({before} and {values}): give it once{also}"
            )
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``greenai``."""
    from greenai import __version__

    parser = _Parser(
        prog="greenai",
        description="Measure the energy AI workloads draw (GPU, CPU, memory) and relate it to"
        " the work done. `greenai COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"greenai {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("devices", help="list the energy sources found and how each is measured")
    p.add_argument("--no-models", action="store_true", help="hide the CPU/memory models")
    p.set_defaults(func=_devices)
    p = sub.add_parser("run", help="measure a command: greenai run [options] -- CMD ARGS...")
    p.add_argument("--name", help="run name (default: the command's name)")
    add_flags(p, RUN_OPTIONS)
    p.add_argument(
        "--prometheus-port",
        type=int,
        action=_Once,
        help="serve live power/energy for Prometheus (0: any port); the same as --sink"
        " prometheus:PORT",
    )
    p.add_argument(
        "--prometheus-addr",
        action=_Once,
        help="address --prometheus-port serves on (default 127.0.0.1)",
    )
    _tag_option(p, "tag the run (team=, project=, model=, site=, any other); repeatable")
    p.add_argument(
        "--otlp",
        action=_Once,
        metavar="ENDPOINT",
        help="send hw.energy/hw.power to an OpenTelemetry collector (http://host:4318)",
    )
    p.add_argument(
        "--sink",
        action="append",
        metavar="NAME[:ARG][,key=value...]",
        help="send the figures to a registered sink (otlp, prometheus, mlflow, wandb,"
        " tensorboard, or one a package registers); repeatable",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command to measure")
    p.set_defaults(func=_run)
    p = sub.add_parser(
        "reconcile", help="compare a run's energy with the cluster's (sacct, DCGM, Kepler)"
    )
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--store")
    p.add_argument(
        "--source",
        choices=["auto", "slurm", "dcgm", "kepler"],
        default="auto",
        help="auto: slurm for a SLURM run, else dcgm with --prometheus",
    )
    p.add_argument("--prometheus", metavar="URL", help="the Prometheus scraping DCGM or Kepler")
    p.add_argument("--query", help="PromQL for the job's energy instead of the source's")
    p.add_argument(
        "--interval", type=seconds, help="the cluster's sampling/scrape interval (for its ±)"
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_reconcile)
    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--name")
    p.add_argument("--status", choices=["running", "completed", "failed", "interrupted"])
    p.add_argument("--since", help="runs started at or after: ISO date or time, e.g. 2026-11-01")
    p.add_argument("--until", help="runs started at or before: ISO date or time")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    _tag_option(p, "only runs with this tag; repeatable (all must match)")
    p.set_defaults(func=_runs)
    p = sub.add_parser("report", help="report one stored run (an id, a prefix, or latest)")
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument(
        "--format",
        choices=["text", "md", "html", "json", "csv", "model-card", "codecarbon-csv"],
        default="text",
    )
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
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    p.add_argument("--dir", type=Path, help="directory (default: exports/RUN beside the store)")
    p.set_defaults(func=_export)
    p = sub.add_parser(
        "compare",
        help="B (and C...) relative to A: stored runs, or two `greenai bench --json` files",
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="compare stored runs of different benchmark suites anyway (with a warning)",
    )
    p.add_argument(
        "--format",
        choices=["text", "json", "csv", "html"],
        default="text",
        help="output (default text; html: a page with a plot of every ratio, to redirect)",
    )
    p.set_defaults(func=_compare)
    p = sub.add_parser("bench", help="run the standard workload suite (TFLOP/s, J/TFLOP)")
    from greenai.bench.cli import add_arguments

    add_arguments(p)
    p.set_defaults(func=_bench)
    from greenai.serving.bench_cli import add_bench_serve

    add_bench_serve(p)
    p = sub.add_parser("demo", help="train a small CNN on scikit-learn's digits, tracked")
    p.add_argument("--epochs", type=int, help="epochs to train (default 24: about 15 s on CPU)")
    p.add_argument("--quick", action="store_true", help="3 epochs: a few seconds")
    p.add_argument("--seed", type=int, default=0)
    add_flags(p, DEMO_OPTIONS, country="WORLD")
    p.add_argument(
        "--compress", action="store_true", help="instead, run a compression sweep of the model"
    )
    p.add_argument("--output", type=Path, help="with --compress: report file (.html/.md/.csv)")
    p.set_defaults(func=_demo)
    p = sub.add_parser("kpi", help="fleet KPIs per month/quarter and tag, against targets")
    from greenai.report.kpi_cli import add_arguments as add_kpi_arguments

    add_kpi_arguments(p, STORE_HELP)
    p.set_defaults(func=_kpi)
    p = sub.add_parser("store", help="manage run stores: store copy SRC DST")
    store_sub = p.add_subparsers(dest="store_command", required=True, parser_class=_Parser)
    q = store_sub.add_parser("copy", help="copy the runs of one store into another")
    q.add_argument("source", help="the store to read: an SQLite file or a postgresql:// URL")
    q.add_argument("destination", help="the store to write (runs it has are skipped)")
    q.set_defaults(func=_store_copy)
    p = sub.add_parser("compress", help="compression sweep: accuracy, size, latency, energy")
    p.add_argument("model", help="module:callable returning an nn.Module (or the module itself)")
    p.add_argument("--input-shape", required=True, help="example input shape, e.g. 64,64")
    p.add_argument("--methods", help="comma-separated specs, e.g. l1:0.5,structured:0.5")
    p.add_argument("--eval", dest="eval_fn", help="module:callable, eval_fn(model) -> accuracy")
    p.add_argument("--repeats", type=int, default=5, help="measured windows per row (>= 2)")
    p.add_argument("--device", help="cpu or cuda (default: where the model is)")
    p.add_argument("--dtype", help="cast model and input, e.g. bfloat16 (default: as built)")
    add_flags(p, COMPRESS_OPTIONS, country="WORLD")
    p.add_argument("--out", type=Path, help="write the table: .csv, .json, .md or .html")
    p.set_defaults(func=_compress)
    from greenai.serving.cli import add_serve_proxy

    add_serve_proxy(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input and I/O problems).

    Bad input and I/O problems (an unwritable file, a full disk, input nested too deeply)
    end in one line on stderr, never a traceback. A reader that closes the pipe early
    (``greenai runs | head -1``) ends the output silently. Ctrl-C and SIGTERM follow
    :mod:`greenai.interrupts`: the first stops cleanly and stores what was measured (exit
    128 + the signal's number), a second exits at once.
    """
    from greenai.interrupts import signal_policy

    given = list(sys.argv[1:] if argv is None else argv)
    if given and given[0].startswith("-") and given[0] not in ("-h", "--help", "--version"):
        # argparse would say only that a command is missing, not what was wrong
        return _fail(
            f"{given[0]} comes before the command: options follow it (greenai runs --store"
            " FILE); greenai --help lists the commands"
        )
    args = build_parser().parse_args(given)
    try:
        with signal_policy():  # Ctrl-C/SIGTERM: stop cleanly, store, one line; twice: exit
            code = int(args.func(args))
            sys.stdout.flush()  # a full disk shows here, while it can still be reported
        return code
    except KeyboardInterrupt as exc:
        _drop_stdout()
        name = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
        print(
            f"greenai: interrupted by {name}; tracked runs are kept as interrupted", file=sys.stderr
        )
        return int(getattr(exc, "exit_code", 130))
    except GreenAIError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        _drop_stdout()
        return 2
    except OSError as exc:
        _drop_stdout()
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
        where = exc.filename or ("the output" if full else None)
        what = "cannot write" if full else "cannot read or write"
        return _fail(f"{what}{f' {where}' if where else ''}: {exc.strerror or exc}")
    except RecursionError:
        return _fail(
            "the input is nested too deeply to read (a JSON file thousands of levels deep?)"
        )


def entry() -> int:
    """The ``greenai`` script and ``python -m greenai``: :func:`main` as the whole process.

    Unlike :func:`main` called in-process, a signal that lands after the command is done
    (while the process exits) ends it at once with 128 + the signal's number.
    """
    from greenai.interrupts import SIGNALS, for_the_process

    for_the_process()
    warnings.formatwarning = _warning_line  # greenai's warnings: one line, no source line
    code = main()
    # Python resets its signal handlers to the default action while it finalizes, so a
    # signal then would kill the process (exit -N, the second of two SIGTERMs 10 ms apart
    # to `greenai run`); the work is done and stored: ignore them while the process ends.
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    return code


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A warning as the command line shows it (others' as Python shows them).

    greenai's own take one line, without the library's file and source line, which read
    like a traceback to someone who ran a command.
    """
    if issubclass(category, GreenAIWarning):
        return f"greenai: warning: {' '.join(str(message).split())}\n"
    return _PYTHON_FORMATWARNING(message, category, filename, lineno, line)


def _fail(message: str) -> int:
    from greenai.safe_output import terminal_text

    # One line, whatever the message holds (a parser's error text can end with a newline).
    print(terminal_text(f"greenai: error: {' '.join(message.split())}"), file=sys.stderr)
    return 2


def _drop_stdout() -> None:
    """Discard what stdout still holds when it cannot be written (a closed pipe, a full disk).

    Otherwise Python's own flush at exit fails again and prints a traceback.
    """
    try:
        sys.stdout.flush()
        return
    except OSError:
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
