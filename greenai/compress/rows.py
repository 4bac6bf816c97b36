"""The rows of a compression sweep and their figures: energy per inference, paired ratios.

:func:`greenai.compress.sweep` measures every row in interleaved rounds (one tracked phase
per window); these turn a row's windows into its table columns.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenai.compress.base import Method
from greenai.paired import Protocol, Ratio, Rounds, implausible_saving, paired_ratio, verdict
from greenai.windows import across_offsets

if TYPE_CHECKING:
    from torch import nn

    from greenai.measurement import Measurement

__all__ = ["JOULES_PER_KWH", "SweepRow", "call_latencies", "row_energy", "row_ratios"]

JOULES_PER_KWH = 3.6e6
_MAX_LATENCY_CALLS = 1000
_MIN_LATENCY_CALLS = 20


@dataclass
class SweepRow:
    """One method's row of a sweep while it is measured: its windows and its figures.

    Attributes:
        method: The compression method (the baseline is row 0).
        index: The row's position in the sweep (0: the baseline).
        values: The row's table values so far (``status``, ``flops_nominal``, ...).
        phases: The tracked phase of each round's window ("" where the row did not run).
        durations_s: Each round's window duration (s).
        calls: Each round's calls in its window (0 where the row did not run).
    """

    method: Method
    index: int
    values: dict[str, Any] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    model: nn.Module | None = None
    """The compressed model, held from preparation until the rounds are done."""
    call_count: int = 0
    """Calls per window, from the calibration."""
    shifted: bool = False
    one_off: dict[str, str] = field(default_factory=dict)
    """``{"compress": phase name, "finetune": phase name}`` of the row's one-off phases."""
    notes: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget what was measured (the row is measured again from scratch)."""
        self.values.clear()
        self.phases.clear()
        self.durations_s.clear()
        self.calls.clear()
        self.one_off.clear()
        self.notes.clear()
        self.model = None


def call_latencies(
    call: Callable[[], None], sync: Callable[[], None], seconds: float
) -> list[float]:
    """Time single calls (s each, ``sync`` after each) for ``seconds``.

    At least 20 and at most 1,000 calls, whatever ``seconds`` says: what the sweep's
    latency columns and its window size (calls per window) come from.
    """
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < _MAX_LATENCY_CALLS and (
        len(out) < _MIN_LATENCY_CALLS or time.perf_counter() - start < seconds
    ):
        t0 = time.perf_counter()
        call()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def _per_round_j(row: SweepRow, m: Measurement) -> list[float] | None:
    """Energy per inference in each round (NaN where the row did not run); None without energy."""
    if m.energy_j is None:
        return None
    out = []
    for phase, n in zip(row.phases, row.calls, strict=True):
        if not phase or not n:
            out.append(math.nan)
            continue
        got = m.phase(phase).energy_j
        if got is None:
            return None
        out.append(float(got) / n)
    return out


def row_energy(
    row: SweepRow, m: Measurement, batch: int, kept: list[bool] | None = None
) -> dict[str, Any]:
    """Per-inference energy and its intervals from a row's kept windows.

    Energy per inference is each window's energy over its calls; the interval combines
    the spread of the windows with the measurement's own uncertainty
    (:func:`greenai.windows.across_offsets`).

    Args:
        row: The row, its windows measured.
        m: The sweep's measurement (one phase per window).
        batch: Samples per call.
        kept: Which rounds count (outlier rounds re-measured are left out); all when None.

    Returns:
        The row's energy columns (see :data:`greenai.compress.COLUMNS`); only
        ``energy_method`` when there is no energy source.
    """
    if kept is None:
        kept = [True] * len(row.phases)
    use = [k and bool(p) and n > 0 for k, p, n in zip(kept, row.phases, row.calls, strict=True)]
    phases = [m.phase(p) for p, u in zip(row.phases, use, strict=True) if u]
    calls = [n for n, u in zip(row.calls, use, strict=True) if u]
    if m.energy_j is None or not phases or any(p.energy_j is None for p in phases):
        return {"energy_method": "none (no energy source)"}
    window_j = [float(p.energy_j or 0.0) for p in phases]
    per = [e / n for e, n in zip(window_j, calls, strict=True)]
    sensor = statistics.fmean(
        float(p.uncertainty_j or 0.0) / n for p, n in zip(phases, calls, strict=True)
    )
    figure = across_offsets(per, sensor)
    mean = figure.value
    out: dict[str, Any] = {
        "energy_per_inference_j": mean,
        "energy_ci_j": figure.uncertainty,
        "energy_repeat_ci_j": figure.spread,
        "energy_uncertainty_j": sensor,
        "energy_per_window_j": window_j,
        "energy_per_sample_j": mean / batch,
        "kwh_per_1k_inferences": mean * 1000 / JOULES_PER_KWH,
        "energy_method": ",".join(sorted(set(m.methods))),
    }
    for kind, phase in row.one_off.items():
        spent = m.phase(phase)
        if spent.energy_j is not None:
            out[f"{kind}_energy_j"] = float(spent.energy_j)
            out[f"{kind}_energy_uncertainty_j"] = float(spent.uncertainty_j or 0.0)
    flops = row.values.get("flops_nominal")
    if flops:
        out["j_per_tflop"] = mean / (flops / 1e12)
    if m.co2e_kg is not None and m.energy_j:
        out["co2e_g_per_1k_inferences"] = m.co2e_kg / m.energy_j * mean * 1000 * 1000
    return out


def row_ratios(
    rows: list[SweepRow], m: Measurement, rounds: Rounds, protocol: Protocol
) -> dict[int, dict[str, Any]]:
    """Paired per-round ratios to the baseline (time and energy), verdicts, plausibility.

    Args:
        rows: The sweep's rows, the baseline first.
        m: The sweep's measurement (one phase per window).
        rounds: The rounds run (which were kept).
        protocol: The A/B protocol (its outlier rule).

    Returns:
        Per row index: ``time_vs_baseline*``, ``energy_vs_baseline*`` (with energy),
        ``verdict`` and ``extra_notes``; empty when the baseline did not run.
    """
    live = [r for r in rows if r.values.get("status") == "ok" and r.phases]
    if not live or live[0].index != 0:
        return {}
    kept = rounds.kept

    def seconds(row: SweepRow) -> list[float]:
        return [
            d / n if n and k else math.nan
            for d, n, k in zip(row.durations_s, row.calls, kept, strict=True)
        ]

    def energies(row: SweepRow) -> list[float] | None:
        got = _per_round_j(row, m)
        return (
            None if got is None else [x if k else math.nan for x, k in zip(got, kept, strict=True)]
        )

    base = live[0]
    base_s, base_j = seconds(base), energies(base)
    out: dict[int, dict[str, Any]] = {}
    for row in live:
        if len(row.durations_s) != len(kept):
            continue
        t = paired_ratio(base_s, seconds(row), protocol.outlier_mads)
        row_j = energies(row)
        e = (
            paired_ratio(base_j, row_j, protocol.outlier_mads)
            if base_j is not None and row_j is not None
            else None
        )
        if row is base:
            t = e = Ratio(1.0, 1.0, 1.0, t.rounds)
        values: dict[str, Any] = {
            "time_vs_baseline": t.value,
            "time_vs_baseline_low": t.low,
            "time_vs_baseline_high": t.high,
        }
        shown = e if e is not None else t
        noun = "energy" if e is not None else "time"
        sentence = "baseline" if row is base else verdict(shown, noun)
        notes: list[str] = []
        if row is not base:
            flops, base_flops = row.values.get("flops_nominal"), base.values.get("flops_nominal")
            size, base_size = row.values.get("size_bytes"), base.values.get("size_bytes")
            flops_lower = flops is None or base_flops is None or flops < 0.999 * base_flops
            size_lower = size is None or base_size is None or size < 0.99 * base_size
            note = implausible_saving(
                shown,
                dense_flops_lower=flops_lower,
                size_lower=size_lower,
                kernel=row.method.kernel,
                noun=noun,
            )
            if note is not None:
                noise = f"±{shown.halfwidth * 100:.2g}%"
                sentence = f"no measurable difference (implausible saving; noise {noise})"
                notes.append(note)
            dropped = max(t.dropped, e.dropped if e is not None else 0)
            if dropped:
                notes.append(
                    f"{dropped} round(s) left out as outliers (over {protocol.outlier_mads:g} MADs)"
                )
        if e is not None:
            values.update(
                energy_vs_baseline=e.value,
                energy_vs_baseline_low=e.low,
                energy_vs_baseline_high=e.high,
            )
        values["verdict"] = sentence
        values["extra_notes"] = notes
        out[row.index] = values
    return out
