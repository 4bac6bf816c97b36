"""The ``greenai`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from greenai.errors import GreenAIError


def _devices(args: argparse.Namespace) -> int:
    from greenai.devices.discovery import discover

    devices = discover(models=not args.no_models)
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

    result = run_demo(epochs=args.epochs, seed=args.seed, country=args.country, pue=args.pue)
    print(summary(result))
    return 0


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
    lines.extend(f"  note: {n}" for n in result.notes)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``greenai``."""
    parser = argparse.ArgumentParser(prog="greenai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("devices", help="list the energy sources found and how each is measured")
    p.add_argument("--no-models", action="store_true", help="hide the CPU/memory models")
    p.set_defaults(func=_devices)
    p = sub.add_parser("demo", help="train a small model on scikit-learn's digits, tracked")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--country", default="WORLD", help="ISO alpha-3 grid for CO2e (default: world average)"
    )
    p.add_argument("--pue", type=float, default=1.0, help="facility PUE (default 1.0)")
    p.set_defaults(func=_demo)
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
