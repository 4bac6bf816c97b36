"""Do the GPUs of one machine update their energy counters in phase? (issue 23)

greenai adds devices' uncertainties linearly (:func:`greenai.windows.sum_devices`). On
FakeGPUs with their own update phases that is 2-3x wider than needed for 8 GPUs, and the
independent parts in quadrature are calibrated; but 8 GPUs updating *in phase* under the
same kernels err as one (quadrature then covered 58% of jobs read once per update). Which
holds on real hardware is unknown: this script reads every visible GPU's total-energy
counter round-robin, about every millisecond, and reports when each one's counter changes:
its update period and its phase on a shared clock, and how far apart the phases are.

    python benchmarks/gpu_phases.py --seconds 3 --out gpu-results/phases.md
    python benchmarks/gpu_phases.py --selftest   # FakeGPUs with known phases, no GPU needed

A counter change is placed at the middle of the span between the read that still showed the
old value and the one that showed the new one (its bracket): with N GPUs read in turn every
``period_s``, a bracket is about N x period_s. Phases closer than the brackets cannot be
told apart, and are reported as in phase.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.devices.base import Device


@dataclass(frozen=True)
class Phase:
    """One device's counter updates: how often and when (s), from ``changes`` changes."""

    name: str
    changes: int
    period_s: float
    phase_s: float
    bracket_s: float


def poll(devices: Sequence[Device], clock: Clock, seconds: float, period_s: float,
         advance: Callable[[float], None] | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Read each device's counter in turn for ``seconds``: per device, rows of (before,
    after, energy J). ``advance`` moves a fake clock between reads (the real one runs)."""
    rows: dict[str, list[tuple[float, float, float]]] = {d.name: [] for d in devices}
    end = clock.now() + seconds
    while clock.now() < end:
        for d in devices:
            t0 = clock.now()
            energy = d.read().energy_j
            if energy is not None:
                rows[d.name].append((t0, clock.now(), float(energy)))
            if advance is not None:
                advance(period_s)
        if advance is None:
            time.sleep(period_s)
    return {name: np.array(r, dtype=np.float64).reshape(-1, 3) for name, r in rows.items()}


def phase_of(name: str, rows: np.ndarray, origin_s: float) -> Phase | None:
    """The device's update period and phase from its reads; None with too few changes."""
    new = np.flatnonzero(np.diff(rows[:, 2]) > 0) + 1
    if len(new) < 4:
        return None
    lo, hi = rows[new - 1, 0], rows[new, 1]
    at = (lo + hi) / 2.0
    typical = float(np.median(np.diff(at)))
    span = float(at[-1] - at[0])
    period = span / max(round(span / typical), 1)  # over the whole span: finer than one gap
    angle = 2.0 * math.pi * ((at - origin_s) % period) / period
    mean = math.atan2(float(np.mean(np.sin(angle))), float(np.mean(np.cos(angle))))
    phase = (mean % (2.0 * math.pi)) / (2.0 * math.pi) * period
    return Phase(name, len(new), period, phase, float(np.median(hi - lo)) / 2.0)


def apart_s(a: Phase, b: Phase) -> float:
    """How far apart two devices' phases are (s, on the shorter way round the period)."""
    period = (a.period_s + b.period_s) / 2.0
    d = abs(a.phase_s - b.phase_s) % period
    return min(d, period - d)


def report(phases: Sequence[Phase], device_line: str) -> str:
    """The markdown table and the pairs' verdicts."""
    lines = [
        f"Counter update phases, {device_line}, {datetime.date.today().isoformat()}",
        "",
        "| device | changes | period (ms) | phase (ms) | bracket ± (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {p.name} | {p.changes} | {p.period_s * 1e3:.2f} | {p.phase_s * 1e3:.2f} "
        f"| {p.bracket_s * 1e3:.2f} |"
        for p in phases
    ]
    lines.append("")
    for i, a in enumerate(phases):
        for b in phases[i + 1 :]:
            gap = apart_s(a, b)
            told = gap > 2.0 * (a.bracket_s + b.bracket_s)
            verdict = "apart: their errors are independent" if told else "in phase"
            lines.append(f"- {a.name} and {b.name}: {gap * 1e3:.2f} ms apart, {verdict}")
    if len(phases) < 2:
        lines.append("- one GPU visible: nothing to compare (run on a machine with several)")
    return "\n".join(lines) + "\n"


def selftest() -> int:
    """FakeGPUs with known phases: two in phase, one 40 ms off. Exit 1 if misread."""
    from greenai.testing import FakeClock, FakeGPU

    clock = FakeClock()
    gpus = [
        FakeGPU(f"gpu{i}", clock=clock, seed=i, power_w=300.0, update_phase_s=ph)
        for i, ph in enumerate((0.010, 0.010, 0.050))
    ]
    for g in gpus:
        g.open()
    origin = clock.now()
    rows = poll(gpus, clock, 2.0, 0.001, advance=clock.advance)
    phases = [p for g in gpus if (p := phase_of(g.name, rows[g.name], origin)) is not None]
    print(report(phases, "3 FakeGPUs (selftest)"))
    ok = len(phases) == 3 and all(abs(p.period_s - 0.1) < 0.005 for p in phases)
    ok = (
        ok
        and apart_s(phases[0], phases[1]) < 0.004
        and abs(apart_s(phases[0], phases[2]) - 0.04) < 0.004
    )
    print("selftest:", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--period", type=float, default=0.001, help="s between reads of one GPU")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--selftest", action="store_true")
    args = p.parse_args(argv)
    if args.selftest:
        return selftest()
    from greenai.devices.nvidia import discover_gpus

    gpus = discover_gpus()
    if not gpus:
        print("no NVIDIA GPU visible through NVML")
        return 2
    for g in gpus:
        g.open()
    try:
        origin = SYSTEM_CLOCK.now()
        rows = poll(gpus, SYSTEM_CLOCK, args.seconds, args.period)
    finally:
        for g in gpus:
            g.close()
    phases = [ph for g in gpus if (ph := phase_of(g.name, rows[g.name], origin)) is not None]
    text = report(phases, f"{len(gpus)} GPU(s): {gpus[0].detail()}")
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
