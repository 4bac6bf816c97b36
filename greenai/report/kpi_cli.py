"""``greenai kpi``: the fleet's KPIs from a store, as a table, CSV, JSON or an HTML page."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from greenai.errors import ConfigError

__all__ = ["add_arguments", "run_kpi"]


def add_arguments(p: argparse.ArgumentParser, store_help: str) -> None:
    """The options of ``greenai kpi``."""
    p.add_argument("--store", help=store_help)
    p.add_argument("--period", choices=["month", "quarter", "year"], default="quarter")
    p.add_argument("--by", default="", help="tags to group by, comma-separated (team,site)")
    p.add_argument("--since", help="runs started at or after: ISO date or time")
    p.add_argument("--until", help="runs started at or before: ISO date or time")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="only these runs")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="SPEC",
        help="METRIC:CHANGE%%@YEAR or METRIC:VALUE@YEAR, e.g. kwh_per_tflop_pue:-50%%@2027",
    )
    p.add_argument("--baseline", help="the targets' baseline period (default: the first)")
    p.add_argument("--format", choices=["table", "csv", "json", "html"], default="table")
    p.add_argument("--output", type=Path, help="file to write (html: reports/kpi.html)")
    p.add_argument("--sweep", type=Path, help="a compression sweep (--out .csv or .json)")
    p.add_argument("--sweep-row", help="the sweep row (label) deployed")
    p.add_argument("--deployment", type=float, help="inferences the deployed model serves")
    p.add_argument("--carbon-intensity", type=float, help="g CO2e/kWh for CO2e avoided")
    p.add_argument("--pue", type=float, default=1.0, help="PUE for energy avoided (default 1)")


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse a PUE below 1, a negative intensity or a reversed range, with or without --sweep.

    Raises:
        ConfigError: One of them, saying which flag.
    """
    from datetime import datetime

    if not (math.isfinite(args.pue) and args.pue >= 1.0):
        raise ConfigError(
            f"--pue must be a number >= 1 (facility energy / IT energy), got {args.pue}"
        )
    ci = args.carbon_intensity
    if ci is not None and not (math.isfinite(ci) and ci >= 0):
        raise ConfigError(f"--carbon-intensity must be >= 0 g CO2e/kWh, got {ci}")
    if args.since and args.until:
        try:
            since, until = datetime.fromisoformat(args.since), datetime.fromisoformat(args.until)
        except ValueError:
            return  # the store's query names the one it cannot read
        if since.tzinfo is None and until.tzinfo is None and since > until:
            raise ConfigError(f"--since {args.since} is after --until {args.until}: swap them")


def run_kpi(args: argparse.Namespace, open_store: Any) -> int:
    """Run ``greenai kpi``; ``open_store(spec)`` opens a store read-only.

    Raises:
        ConfigError: A bad target, tag, period, time or sweep option (checked before the
            store is read).
    """
    from greenai.report.kpi import (
        avoided_by_compression,
        fleet_kpis,
        kpi_notes,
        parse_target,
        progress,
    )
    from greenai.tags import parse_tags

    targets = [parse_target(t) for t in args.target]
    _check_baseline(args.baseline, args.period, bool(targets))
    by = [b.strip() for b in args.by.split(",")] if args.by else []
    if "" in by:
        raise ConfigError(
            f"--by {args.by!r} holds an empty tag name (a comma at an end or two in a row);"
            " give tag names separated by commas, e.g. team,site"
        )
    tags = parse_tags(args.tag)
    sweep_options = (args.sweep, args.sweep_row, args.deployment)
    if any(v is not None for v in sweep_options) and not all(v is not None for v in sweep_options):
        raise ConfigError("--sweep, --sweep-row and --deployment go together")
    _check_numbers(args)
    avoided = []
    if args.sweep is not None:
        avoided.append(
            avoided_by_compression(
                _read_sweep(args.sweep),
                args.sweep_row,
                args.deployment,
                carbon_intensity_g_per_kwh=args.carbon_intensity,
                pue=args.pue,
            )
        )
    store = open_store(args.store)
    try:
        kw = {"period": args.period, "since": args.since, "until": args.until, "tags": tags}
        frame = fleet_kpis(store, by=by, **kw)
        fleet = fleet_kpis(store, **kw) if by else frame
        location, home = store.location, Path(store.home)
    finally:
        store.close()
    notes = kpi_notes(frame)
    tracks = [progress(fleet, t, baseline=args.baseline) for t in targets] if len(fleet) else []
    if args.format == "html":
        from greenai.report.kpi_html import render_kpi_html

        out = args.output or home / "reports" / "kpi.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        title = f"Fleet KPIs per {args.period}" + (f" and {', '.join(by)}" if by else "")
        out.write_text(
            render_kpi_html(
                frame, by=by, notes=notes, progress=tracks, avoided=avoided, title=title
            ),
            encoding="utf-8",
        )
        print(f"KPIs of {location}: {out}")
        return 0
    if args.format == "json":
        text = json.dumps(
            {
                "kpis": _records(frame),
                "notes": notes,
                "progress": [_records(t) for t in tracks],
                "avoided_by_compression": [_finite(a) for a in avoided],
            },
            indent=2,
            allow_nan=False,  # standard JSON: jq and other readers refuse NaN and Infinity
        )
    elif args.format == "csv":
        from greenai.safe_output import csv_safe

        text = csv_safe(frame).to_csv(index=False)
        for note in notes:
            print(f"greenai: {note}", file=sys.stderr)
    else:
        from greenai.safe_output import terminal_text

        parts = [frame.to_string(index=False) if len(frame) else "no finished runs"]
        if len(frame) and notes:
            parts.append("\n".join(f"note: {n}" for n in notes))
        parts += [t.to_string(index=False) for t in tracks]
        parts += [json.dumps(a) for a in avoided]
        text = terminal_text("\n\n".join(parts)) + "\n"
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


_PERIOD_FORMS = {
    "year": (r"\d{4}", "a year such as 2025"),
    "quarter": (r"\d{4}-Q[1-4]", "a quarter such as 2025-Q4"),
    "month": (r"\d{4}-(0[1-9]|1[0-2])", "a month such as 2025-10"),
}


def _check_baseline(baseline: str | None, period: str, has_targets: bool) -> None:
    """Refuse a baseline without a target, or not written as a period of ``--period``.

    A well-formed period without runs (``--baseline 1999``) is refused once the store is read
    (:func:`greenai.report.kpi.progress` names the periods that have a figure).
    """
    if baseline is None:
        return
    if not has_targets:
        raise ConfigError("--baseline is the targets' starting period: add a --target")
    pattern, example = _PERIOD_FORMS[period]
    if re.fullmatch(pattern, baseline) is None:
        raise ConfigError(f"--baseline must be {example} (--period {period}); got {baseline!r}")


def _records(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN (no figure) becomes null, never 0."""
    rows: list[dict[str, Any]] = frame.to_dict(orient="records")
    return [_finite(row) for row in rows]


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """A row for standard JSON: NaN (no figure) and infinity (never breaks even) are null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _read_sweep(path: Path) -> Any:
    import pandas as pd

    try:
        if path.suffix.lower() == ".json":
            return pd.read_json(path)
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the sweep {path}: {exc}") from exc
