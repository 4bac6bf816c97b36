"""B relative to A: for each figure the ratio, the difference with its uncertainty, a verdict.

``greenai compare A B`` answers "did B use less?": for energy, J/sample, J/TFLOP, time and
CO2e it gives B/A and B − A, each with its uncertainty (about 95% coverage, as every
uncertainty in greenai), and a sentence — "B uses 23% ± 4% less energy per sample", or
"within uncertainty" when the difference is smaller than its uncertainty. Each side also
says how it was measured, on which machine, by which command, with which meta.

Pure functions of Measurements and plain dicts; nothing here reads hardware or the store.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from greenai.paired import Ratio, paired_ratio, unpaired_ratio
from greenai.paired import verdict as paired_verdict
from greenai.report.frames import format_number, methods_label
from greenai.windows import (
    compare_with_uncertainty,
    difference_with_uncertainty,
    ratio_with_uncertainty,
)

if TYPE_CHECKING:
    from greenai.measurement import Measurement

__all__ = [
    "FIGURES",
    "Change",
    "Comparison",
    "Side",
    "change",
    "compare_measurements",
    "comparisons_csv",
    "comparisons_json",
    "difference_with_uncertainty",
    "interval_verdict",
    "measurement_figures",
    "ratio_with_uncertainty",
    "render_comparisons",
    "shared_scale_rel",
    "step_noise",
    "verdict",
]


@dataclass(frozen=True)
class FigureSpec:
    """How one compared figure is named: its key, label, unit, verb and noun in a verdict."""

    key: str
    label: str
    unit: str
    verb: str
    noun: str


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("energy", "energy", "J", "uses", "energy"),
    FigureSpec("j_per_sample", "J/sample", "J/sample", "uses", "energy per sample"),
    FigureSpec("j_per_tflop", "J/TFLOP", "J/TFLOP", "uses", "energy per TFLOP"),
    FigureSpec("time", "time", "s", "takes", "time"),
    FigureSpec("time_per_step", "time/step", "s/step", "takes", "time per step"),
    FigureSpec("co2e", "CO2e", "kg", "emits", "CO2e"),
)
_SPECS = {f.key: f for f in FIGURES}


# --- the arithmetic lives with every other uncertainty rule, in greenai.windows -------------


def _percent(x: float) -> str:
    return f"{x:.1f}" if x < 9.95 else f"{x:.0f}"


def verdict(spec: FigureSpec, ratio: float, ratio_uncertainty: float) -> str:
    """The plain sentence for B/A = ``ratio`` ± ``ratio_uncertainty``.

    "B uses 23% ± 4% less energy per sample"; "B takes 2.5 ± 0.2 times the time of A";
    "within uncertainty: B +3% ± 8% energy" when ``|ratio − 1| <= ratio_uncertainty``.
    """
    change = ratio - 1.0
    if abs(change) <= ratio_uncertainty or change == 0:
        signed = ("+" if change >= 0 else "−") + _percent(abs(change) * 100)
        if ratio_uncertainty == 0:
            return f"B {spec.verb} the same {spec.noun} as A"
        return f"within uncertainty: B {signed}% ± {_percent(ratio_uncertainty * 100)}% {spec.noun}"
    plus_minus = f" ± {_percent(ratio_uncertainty * 100)}%" if ratio_uncertainty else ""
    if ratio >= 2.0:
        u = f" ± {ratio_uncertainty:.2g}" if ratio_uncertainty else ""
        return f"B {spec.verb} {ratio:.3g}{u} times the {spec.noun} of A"
    word = "less" if change < 0 else "more"
    return f"B {spec.verb} {_percent(abs(change) * 100)}%{plus_minus} {word} {spec.noun}"


@dataclass(frozen=True)
class Change:
    """One figure of B relative to A. Uncertainties are absolute, about 95% coverage.

    ``ratio``/``difference`` are None when a side lacks the figure; ``verdict`` then says why.
    """

    figure: str
    unit: str
    a: float | None
    a_uncertainty: float | None
    b: float | None
    b_uncertainty: float | None
    ratio: float | None
    ratio_uncertainty: float | None
    difference: float | None
    difference_uncertainty: float | None
    verdict: str


Value = tuple[float | None, float | None, str]
"""A figure of one side: value, uncertainty (same unit), and why it is missing ("" if not)."""


def interval_verdict(spec: FigureSpec, ratio: float, ratio_uncertainty: float,
                     noise: Ratio | None = None) -> str:  # fmt: skip
    """The :func:`greenai.paired.verdict` sentence for B/A, the one rule of every A/B.

    The interval is ``ratio ± ratio_uncertainty`` (the measurements' ±), widened to the
    run-to-run noise ``noise`` (from the runs' own steps, :func:`step_noise`) when given:
    a change is claimed only when the interval excludes no change.
    """
    low, high = ratio - ratio_uncertainty, ratio + ratio_uncertainty
    rounds = 0
    if noise is not None and noise.value > 0 and math.isfinite(noise.high):
        low = min(low, ratio * noise.low / noise.value)
        high = max(high, ratio * noise.high / noise.value)
        rounds = noise.rounds
    return paired_verdict(Ratio(ratio, max(low, 0.0), high, rounds), spec.noun)


def step_noise(
    ma: Measurement | None, mb: Measurement | None, what: str = "energy"
) -> tuple[Ratio, str] | None:
    """B/A of the runs' own steps (energies, or ``what="time"`` durations), and how.

    Paired by step index when both ran the same steps (as many, with the same samples
    counted); otherwise a Welch interval on the two sets. None unless both sides have at
    least 2 steps with that figure.
    """
    if ma is None or mb is None:
        return None
    field = "duration_s" if what == "time" else "energy_j"
    a = [x for x in getattr(ma.steps, field) if math.isfinite(x) and x > 0]
    b = [x for x in getattr(mb.steps, field) if math.isfinite(x) and x > 0]
    if len(a) < 2 or len(b) < 2:
        return None
    same = len(a) == len(b) == ma.steps.count == mb.steps.count
    if same and ma.steps.samples == mb.steps.samples:
        return paired_ratio(a, b), f"{what} paired by step index over {len(a)} steps"
    return unpaired_ratio(a, b), f"{what}: Welch interval on {len(a)} and {len(b)} steps"


def change(
    key: str,
    a: Value,
    b: Value,
    *,
    not_comparable: str = "",
    shared_rel: float = 0.0,
    noise: Ratio | None = None,
) -> Change:
    """Compare figure ``key`` (one of :data:`FIGURES`) of A and B.

    ``not_comparable`` gives a reason to show both values but no ratio (sizes differ).
    ``shared_rel``: the relative scale error both sides share (same devices, same machine:
    :func:`shared_scale_rel`); it cancels in the ratio (:func:`compare_with_uncertainty`).
    Where nothing of either side's ± is left once it cancels (a model's runs: its whole
    ± is the shared scale error), the verdict says that the ratio's ± 0 is only what does
    not cancel, not a claim of exactness.
    ``noise``: the run-to-run noise of B/A (:func:`step_noise`); with it, the verdict is
    :func:`interval_verdict`'s, else :func:`verdict`'s.

    Raises:
        KeyError: ``key`` is not a known figure.
    """
    spec = _SPECS[key]
    (va, ua, why_a), (vb, ub, why_b) = a, b
    if not_comparable:
        return Change(
            spec.label, spec.unit, va, ua, vb, ub, None, None, None, None,
            f"not comparable ({not_comparable})",
        )  # fmt: skip
    if va is None or vb is None or va == 0:
        missing = [
            f"{side}: {why or 'not computed'}"
            for side, v, why in (("A", va, why_a), ("B", vb, why_b))
            if v is None
        ] or ["A is zero"]
        return Change(
            spec.label, spec.unit, va, ua, vb, ub, None, None, None, None,
            f"not comparable ({'; '.join(missing)})",
        )  # fmt: skip
    if ua is None or ub is None:  # a ratio, but no claim on whether it exceeds the noise
        r, d = vb / va, vb - va
        sentence = verdict(spec, r, 0.0) + " (uncertainty unknown)"
        return Change(spec.label, spec.unit, va, ua, vb, ub, r, None, d, None, sentence)
    rel = shared_rel if key != "time" else 0.0
    r, ur, d, ud = compare_with_uncertainty(va, ua, vb, ub, shared_rel=rel)
    sentence = verdict(spec, r, ur) if noise is None else interval_verdict(spec, r, ur, noise)
    if noise is None and ur == 0 and rel > 0:
        sentence += f" (± 0 once the shared ±{rel:.0%} cancels: no independent error is known)"
    return Change(spec.label, spec.unit, va, ua, vb, ub, r, ur, d, ud, sentence)


# --- the two sides -------------------------------------------------------------------------
@dataclass(frozen=True)
class Side:
    """Who one side is: id, name, status, how its energy was measured, machine, command."""

    label: str
    id: str
    name: str
    status: str = ""
    methods: tuple[str, ...] = ()
    host: str = ""
    machine: str = ""
    command: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """B relative to A (``subject``: a benchmark workload, or "" for whole runs)."""

    a: Side
    b: Side
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()
    subject: str = ""


def measurement_figures(m: Measurement | None) -> dict[str, Value]:
    """The compared figures of one run: energy, J/sample, J/TFLOP, time, CO2e.

    J/sample's uncertainty is the steps' total's own, per sample (as in the report);
    J/TFLOP and CO2e carry the total's relative uncertainty (FLOP counts and the
    grid's intensity are taken as exact); time is taken as exact.
    """
    if m is None:
        none: Value = (None, None, "no measurement yet")
        return {k: none for k in ("energy", "j_per_sample", "j_per_tflop", "time", "co2e")}
    no_energy = "no energy source measured"
    rel = (m.uncertainty_j or 0.0) / m.energy_j if m.energy_j else 0.0
    s = m.steps
    per_sample = s.energy_per_sample_j
    u_sample = s.energy_per_sample_uncertainty_j if per_sample else None
    why_sample = no_energy if m.energy_j is None else "no step(samples=) calls"
    why_flops = no_energy if m.energy_j is None else "no FLOPs counted"
    co2e = m.co2e_kg
    why_co2e = no_energy if m.energy_j is None else "no grid given (--country)"
    return {
        "energy": (m.energy_j, m.uncertainty_j, no_energy),
        "j_per_sample": (per_sample, u_sample, why_sample),
        "j_per_tflop": (
            m.j_per_tflop,
            None if m.j_per_tflop is None else m.j_per_tflop * rel,
            why_flops,
        ),
        "time": (m.duration_s, 0.0, ""),
        "co2e": (co2e, None if co2e is None else co2e * rel, why_co2e),
    }


def compare_measurements(
    a: Side, ma: Measurement | None, b: Side, mb: Measurement | None
) -> Comparison:
    """B relative to A for every figure of :func:`measurement_figures`, with notes."""
    fa, fb = measurement_figures(ma), measurement_figures(mb)
    same = _same_machine(a, b)
    rel = shared_scale_rel(ma, mb, same_machine=same)
    energy, time = step_noise(ma, mb), step_noise(ma, mb, "time")
    noise = {k: (time if k == "time" else energy) for k in fa}
    changes = tuple(
        change(key, fa[key], fb[key], shared_rel=rel, noise=_ratio_of(noise[key])) for key in fa
    )
    notes = method_notes(a.methods, b.methods, same_machine=same, shared_rel=rel)
    notes += _noise_notes(energy, time)
    if ma is not None and mb is not None and ma.carbon is not None and mb.carbon is not None:
        ia, ib = ma.carbon.carbon_intensity_g_per_kwh, mb.carbon.carbon_intensity_g_per_kwh
        if ia is not None and ib is not None and ia != ib:
            notes.append(
                f"CO2e: A's grid is {format_number(ia)} g/kWh, B's {format_number(ib)} g/kWh; "
                "the CO2e ratio includes that difference"
            )
    for side in (a, b):
        if side.status and side.status != "completed":
            notes.append(f"{side.label} ({side.id}) is {side.status}: its figures are partial")
    return Comparison(a, b, changes, tuple(notes))


def _ratio_of(noise: tuple[Ratio, str] | None) -> Ratio | None:
    return None if noise is None else noise[0]


def _noise_notes(energy: tuple[Ratio, str] | None, time: tuple[Ratio, str] | None) -> list[str]:
    """How the verdicts' intervals were sized."""
    if energy is None and time is None:
        return []
    how = "; ".join(n[1] for n in (energy, time) if n is not None)
    return [
        f"verdicts: a change only when the 95% interval of B/A excludes no change; its width "
        f"is the wider of the measurements' ± and the runs' own step-to-step noise ({how})"
    ]


def shared_scale_rel(
    ma: Measurement | None, mb: Measurement | None, *, same_machine: bool
) -> float:
    """The relative scale error that A and B share, which cancels between them (0..1).

    Only on one machine, with the same devices measured the same way (name, kind,
    method): then each device's scale error (``DeviceEnergy.shared_uncertainty_j``: a
    model's, a power sensor's) is the same error in both runs. The smaller of the two
    sides' shares is taken, so only what both certainly share cancels.
    """
    if not same_machine or ma is None or mb is None or not ma.energy_j or not mb.energy_j:
        return 0.0
    da = {(d.name, d.kind, d.method) for d in ma.devices}
    db = {(d.name, d.kind, d.method) for d in mb.devices}
    if not da or da != db:
        return 0.0
    rel_a = sum(d.shared_uncertainty_j for d in ma.devices) / ma.energy_j
    rel_b = sum(d.shared_uncertainty_j for d in mb.devices) / mb.energy_j
    return max(0.0, min(rel_a, rel_b))


def _same_machine(a: Side, b: Side) -> bool:
    return bool(a.machine or a.host) and (a.machine, a.host) == (b.machine, b.host)


def method_notes(
    a_methods: tuple[str, ...] | list[str],
    b_methods: tuple[str, ...] | list[str],
    *,
    same_machine: bool,
    shared_rel: float = 0.0,
    devices_known: bool = True,
) -> list[str]:
    """What the methods behind A and B mean for their comparison.

    ``devices_known``: False where the sides do not list their devices (``greenai bench``
    documents), so a shared scale error cannot be told apart.
    """
    notes = []
    if set(a_methods) != set(b_methods):
        notes.append(
            f"A was {methods_label(tuple(a_methods))}, B {methods_label(tuple(b_methods))}: "
            "the ratio compares figures obtained differently"
        )
    if "model" in a_methods or "model" in b_methods:
        notes.append(
            "'model' energy is estimated from utilisation and a TDP table, not measured"
            + (
                "; on one machine the model's scale error is shared by A and B"
                + (
                    f" (±{shared_rel:.0%}): it cancels in the ratio and counts once"
                    " in the difference"
                    if shared_rel > 0
                    else ", but their devices differ, so it is taken as independent"
                    if devices_known
                    else ", but these results do not record their devices, so it is taken as"
                    " independent (a cautious ±)"
                )
                if same_machine and "model" in a_methods and "model" in b_methods
                else ""
            )
        )
    elif shared_rel > 0:
        notes.append(
            f"A and B share their devices' scale error (±{shared_rel:.0%}, one machine):"
            " it cancels in the ratio and counts once in the difference"
        )
    return notes


# --- output --------------------------------------------------------------------------------
def _two_digits(x: float) -> str:
    """``x`` to two significant digits, as a plain number (2,400 rather than 2.4e+03)."""
    if x == 0 or not math.isfinite(x) or abs(x) < 100:
        return format_number(x, 2)
    rounded = round(x, 1 - math.floor(math.log10(abs(x))))
    return f"{rounded:,.0f}" if abs(rounded) >= 10_000 else f"{rounded:.0f}"


def _figure(
    value: float | None, uncertainty: float | None, unit: str, *, signed: bool = False
) -> str:
    if value is None:
        return "—"
    if unit == "kg" and abs(value) < 1.0:
        value, uncertainty, unit = value * 1000, (uncertainty or 0.0) * 1000, "g"
    u = f" ± {_two_digits(uncertainty)}" if uncertainty else ""
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{format_number(value)}{u} {unit}"


def _ratio(ratio: float | None, uncertainty: float | None) -> str:
    if ratio is None:
        return "—"
    if uncertainty is None:
        return f"{ratio:.3g}"
    return f"{ratio:.3g} ± {uncertainty:.2g}" if uncertainty else f"{ratio:.3g} ± 0"


def _side_lines(side: Side) -> list[str]:
    head = f"{side.label}: {side.id}  {side.name}" + (f" ({side.status})" if side.status else "")
    lines = [head, f"   measured by: {methods_label(side.methods)}"]
    host = f"host {side.host}" if side.host and f"host {side.host}" not in side.machine else ""
    where = ", ".join(x for x in (host, side.machine) if x)
    lines.append(f"   machine: {where or 'unknown'}")
    if side.command:
        lines.append(f"   command: {side.command}")
    meta = {k: v for k, v in side.meta.items() if k not in ("machine", "command", "host")}
    if meta:
        lines.append("   meta: " + ", ".join(f"{k}={_short(v)}" for k, v in meta.items()))
    return lines


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_comparisons(comparisons: list[Comparison], notes: list[str] | None = None) -> str:
    """Plain text: each side, then per comparison a table of figures and the verdicts."""
    lines: list[str] = list(notes or [])
    shown: set[str] = set()
    for c in comparisons:
        for side in (c.a, c.b):
            if side.label not in shown:
                shown.add(side.label)
                lines += _side_lines(side)
        lines.append("")
        title = f"{c.b.label} relative to {c.a.label}" + (f": {c.subject}" if c.subject else "")
        lines.append(title)
        rows = [["figure", c.a.label, c.b.label, f"{c.b.label}/{c.a.label}", "difference"]]
        for ch in c.changes:
            ratio = _ratio(ch.ratio, ch.ratio_uncertainty)
            rows.append(
                [
                    ch.figure,
                    _figure(ch.a, ch.a_uncertainty, ch.unit),
                    _figure(ch.b, ch.b_uncertainty, ch.unit),
                    ratio,
                    _figure(ch.difference, ch.difference_uncertainty, ch.unit, signed=True),
                ]
            )
        lines += ["  " + row for row in _table(rows)]
        width = max(len(ch.figure) for ch in c.changes)
        lines.append("  verdict:")
        lines += [f"    {ch.figure:<{width}}  {ch.verdict}" for ch in c.changes]
        lines += [textwrap.fill(n, 100, initial_indent="  note: ", subsequent_indent="        ")
                  for n in c.notes]  # fmt: skip
    lines.append("(± is about 95% coverage; differences combine both runs' uncertainties)")
    return "\n".join(lines)


def _as_dict(c: Comparison) -> dict[str, Any]:
    return {
        "subject": c.subject,
        "a": asdict(c.a),
        "b": asdict(c.b),
        "changes": [asdict(ch) for ch in c.changes],
        "notes": list(c.notes),
    }


def comparisons_json(comparisons: list[Comparison], notes: list[str] | None = None) -> str:
    """``{"notes": [...], "comparisons": [{"subject", "a", "b", "changes", "notes"}]}``."""
    doc = {"notes": list(notes or []), "comparisons": [_as_dict(c) for c in comparisons]}
    return json.dumps(doc, indent=2, default=str)


CSV_COLUMNS = (
    "subject",
    "a",
    "b",
    "figure",
    "unit",
    "a_value",
    "a_uncertainty",
    "b_value",
    "b_uncertainty",
    "ratio",
    "ratio_uncertainty",
    "difference",
    "difference_uncertainty",
    "verdict",
)


def _cell(value: Any) -> Any:
    """A text cell that a spreadsheet would read as a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def comparisons_csv(comparisons: list[Comparison]) -> str:
    """One row per (comparison, figure), columns :data:`CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in comparisons:
        for ch in c.changes:
            writer.writerow(
                _cell(v)
                for v in (
                    c.subject, c.a.id, c.b.id, ch.figure, ch.unit, ch.a, ch.a_uncertainty,
                    ch.b, ch.b_uncertainty, ch.ratio, ch.ratio_uncertainty, ch.difference,
                    ch.difference_uncertainty, ch.verdict,
                )
            )  # fmt: skip
    return out.getvalue()
