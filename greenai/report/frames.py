"""Tables of a Measurement: pandas frames and the labelled efficiency figures.

Pure functions of a :class:`~greenai.measurement.Measurement`; nothing here reads hardware.
Every energy figure is shown with the method that produced it and its uncertainty, and a
figure that is missing is shown as ``—`` with the reason, never as 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from greenai.units import J_PER_KWH

if TYPE_CHECKING:
    import pandas as pd

    from greenai.measurement import Measurement, PhaseEnergy

__all__ = [
    "MISSING",
    "PhaseSelection",
    "devices_frame",
    "efficiency_rows",
    "format_number",
    "hidden_phases_note",
    "method_label",
    "methods_label",
    "methods_tag",
    "ordered_phases",
    "phases_frame",
    "select_phases",
    "source_in_words",
    "steps_frame",
    "summary_frame",
]

MISSING = "—"
"""What a report shows in place of a figure that does not exist."""

_METHOD_LABELS = {
    "counter": "measured (counter)",
    "power": "measured (power)",
    "model": "estimated (model)",
}


def summary_frame(m: Measurement) -> pd.DataFrame:
    """One row with every scalar field and derived figure of ``m`` (SI units, kWh, kg)."""
    return m.to_frame("summary")


def devices_frame(m: Measurement) -> pd.DataFrame:
    """One row per device: method, energy (J), uncertainty (J), power (W), partial."""
    return m.to_frame("devices")


def phases_frame(m: Measurement) -> pd.DataFrame:
    """One row per phase (``/``-joined path): count, duration (s), energy and uncertainty (J)."""
    return m.to_frame("phases")


def steps_frame(m: Measurement) -> pd.DataFrame:
    """One row per step: duration (s), energy and uncertainty (J); NaN where not measured."""
    return m.to_frame("steps")


def method_label(method: str) -> str:
    """How a method reads in a report: ``measured (counter)``, ``estimated (model)``."""
    return _METHOD_LABELS.get(method, method)


def methods_label(methods: tuple[str, ...] | list[str]) -> str:
    """The methods behind a figure, joined with ``+``; ``—`` when there are none."""
    return " + ".join(method_label(x) for x in methods) if methods else MISSING


def methods_tag(methods: tuple[str, ...] | list[str]) -> str:
    """A short bracketed tag for a figure: ``[measured: counter]``, ``[estimated (model)]``."""
    measured = [x for x in methods if x != "model"]
    parts = [f"measured: {' + '.join(measured)}"] if measured else []
    if "model" in methods:
        parts.append(method_label("model"))
    return f"[{'; '.join(parts)}]" if parts else ""


def ordered_phases(m: Measurement) -> list[PhaseEnergy]:
    """Phases with each parent before its children, in order of first appearance."""
    position = {p.name: i for i, p in enumerate(m.phases)}
    other = len(position)

    def key(p: PhaseEnergy) -> tuple[int, ...]:
        if p.name == "(other)":
            return (other,)
        parts = p.name.split("/")
        paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return tuple(position.get(path, position[p.name]) for path in paths)

    return sorted(m.phases, key=key)


PHASE_DEPTH = 1
"""Default deepest phase level in reports: top-level phases and their children."""
TOP_PHASES = 12
"""Default number of phases a report's chart and table show (the most energy first)."""


@dataclass(frozen=True)
class PhaseSelection:
    """The phases a report shows, and what it leaves out.

    ``shown`` keeps :func:`ordered_phases` order. ``hidden`` counts the phases left out
    (too deep, or beyond the top N); ``hidden_top_energy_j`` sums the energy of the
    top-level ones among them (nested ones are inside their parents' energy already).
    """

    shown: list[PhaseEnergy]
    hidden: int
    hidden_top_energy_j: float


def select_phases(
    m: Measurement, max_depth: int | None = PHASE_DEPTH, top: int | None = TOP_PHASES
) -> PhaseSelection:
    """Phases at most ``max_depth`` deep (0: top level), the ``top`` with the most energy.

    ``(other)`` (time outside every phase) counts as top level. None means no limit. A
    nested phase is shown only with its parent, so a chart never shows a child alone.
    """
    phases = ordered_phases(m)
    if max_depth is not None:
        phases = [p for p in phases if p.name.count("/") <= max_depth]
    if top is not None and len(phases) > top:
        ranked = sorted(phases, key=lambda p: (-(p.energy_j or 0.0), -p.duration_s))
        keep = {p.name for p in ranked[:top]}
        # a kept child needs its kept parent: drop children whose parent is cut
        keep = {n for n in keep if all(a in keep for a in _ancestors(n))}
        phases = [p for p in phases if p.name in keep]
    names = {p.name for p in phases}
    left = [p for p in m.phases if p.name not in names]
    hidden_top = sum(p.energy_j or 0.0 for p in left if "/" not in p.name)
    return PhaseSelection(phases, len(left), hidden_top)


def hidden_phases_note(chosen: PhaseSelection, max_depth: int | None, top: int | None) -> str:
    """``"14 more phases not shown (depth ≤ 1, top 12 by energy; ...)"``; "" if none."""
    if not chosen.hidden:
        return ""
    why = [f"depth ≤ {max_depth}"] if max_depth is not None else []
    why += [f"top {top} by energy"] if top is not None else []
    if chosen.hidden_top_energy_j:
        why.append(f"top-level ones left out: {format_number(chosen.hidden_top_energy_j)} J")
    return f"{chosen.hidden} more phases not shown ({'; '.join(why)})"


def _ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


_CARBON_FILES = {
    "carbon_intensity_per_source.json": "world-average electricity",
    "global_energy_mix.json": "national electricity mix",
    "usa_emissions.json": "US EPA eGRID state average",
    "canada_energy_mix.json": "provincial generation mix (fossil combustion only)",
    "china_provincial_emissions.json": "provincial grid factor (CO2 only, MEE/NBS)",
}


def source_in_words(source: str) -> str:
    """A grid intensity's source in words: what the figure is, its year, whose data.

    ``codecarbon 3.3.2 data/private_infra/global_energy_mix.json['FRA'].carbon_intensity
    (gCO2e/kWh; year 2023)`` reads ``national electricity mix, 2023 (codecarbon 3.3.2
    data)``. The full string stays in the run's JSON. Other sources are returned as they are.
    """
    if source.startswith("given carbon_intensity_g_per_kwh"):
        over = re.search(r"overrides ([\d.]+ g/kWh for \S+)", source)
        return "the intensity given" + (f" (in place of {over.group(1)})" if over else "")
    found = re.match(r"codecarbon (\S+) (\S+?\.json)", source)
    if found is None:
        return source
    version, path = found.groups()
    name = path.rsplit("/", 1)[-1]
    what = _CARBON_FILES.get(name)
    if what is None:
        what = "Nordic bidding-zone factor" if "nordic" in name else "grid factor"
    year = re.search(r"year (\d{4})", source) or re.search(
        r"\b((?:19|20)\d{2})\b", source[found.end() :]
    )
    who = "IEA, " if "iea.org" in source else ""
    when = f", {year.group(1)}" if year else ""
    return f"{what}{when} ({who}codecarbon {version} data)"


def format_number(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; an exponent only for very large or small."""
    if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def _missing(why: str | None) -> str:
    return MISSING if not why else f"{MISSING} ({why})"


def _note(m: Measurement, prefix: str) -> str | None:
    """The first note of ``m`` that starts with ``prefix`` (the tracker's reason)."""
    return next((n for n in m.notes if n.startswith(prefix)), None)


def _energy_reason(m: Measurement) -> str:
    return _note(m, "no energy source") or "no energy source was measured"


def efficiency_rows(m: Measurement) -> list[tuple[str, str]]:
    """The headline figures of ``m`` as ``(label, value with unit)`` pairs.

    Energy-derived values carry ``± uncertainty`` and the method (``measured (counter)``,
    ``estimated (model)``…); values that could not be computed read ``— (reason)``.
    """
    how = methods_tag(m.methods)
    rel = (m.uncertainty_j or 0.0) / m.energy_j if m.energy_j else 0.0
    no_energy = _missing(_energy_reason(m))

    def energy(value: float | None, unit: str, why: str | None = None) -> str:
        if value is None:
            return no_energy if m.energy_j is None else _missing(why)
        return f"{format_number(value)} {unit} ± {format_number(value * rel, 2)} {unit} {how}"

    rows: list[tuple[str, str]] = [("Duration", f"{format_number(m.duration_s)} s")]
    if m.energy_j is None:
        rows.append(("Energy (IT)", no_energy))
    else:
        rows.append(
            (
                "Energy (IT)",
                f"{format_number(m.energy_j / J_PER_KWH)} kWh = {format_number(m.energy_j)} J "
                f"± {format_number(m.uncertainty_j or 0.0, 2)} J {how}",
            )
        )
    rows.append(("Methods", methods_label(m.methods)))
    c = m.carbon
    pue = 1.0 if c is None else c.pue
    rows.append((f"Facility energy (PUE {pue:g})", energy(m.facility_energy_kwh, "kWh")))
    avg = m.avg_power_w
    rows.append(("Average power", no_energy if avg is None else f"{format_number(avg)} W {how}"))

    no_flops = "no FLOPs given: use count_flops, add_flops or flops_per_step"
    rows.append(
        ("Work", _missing(no_flops) if m.tflop is None else f"{format_number(m.tflop)} TFLOP")
    )
    rows.append(("kWh/TFLOP (IT)", energy(m.kwh_per_tflop, "kWh/TFLOP", no_flops)))
    rows.append((f"kWh/TFLOP (PUE {pue:g})", energy(m.kwh_per_tflop_pue, "kWh/TFLOP", no_flops)))
    rows.append(("J/TFLOP", energy(m.j_per_tflop, "J/TFLOP", no_flops)))
    if m.flop_count_energy_j is not None:
        rows.append(
            (
                "FLOP counting",
                f"{format_number(m.flop_count_energy_j)} J: in the total, not in the per-TFLOP"
                " figures",
            )
        )
    tps = m.tflops_per_s
    rows.append(("TFLOP/s", _missing(no_flops) if tps is None else f"{format_number(tps)} TFLOP/s"))
    why_mfu = _note(m, "MFU not computed") or (no_flops if m.flops is None else None)
    rows.append(("MFU", _missing(why_mfu) if m.mfu is None else f"{m.mfu:.1%}"))

    rows.extend(_step_rows(m))
    rows.extend(_carbon_rows(m))
    return rows


def _step_rows(m: Measurement) -> list[tuple[str, str]]:
    s = m.steps
    if not s.count:
        return [("Steps", _missing("no job.step() calls"))]
    how = methods_tag(m.methods)
    rows = [("Steps", str(s.count))]
    measured = s.measured_energy_j is not None or bool(s.energy_j)

    # Per-unit figures carry the steps' total's own uncertainty (greenai.windows.per_unit).
    def per(value: float | None, u: float | None, unit: str, why: str) -> str:
        if value is None:
            return _missing(_energy_reason(m) if not measured else why)
        return f"{format_number(value)} {unit} ± {format_number(u or 0.0, 2)} {unit} {how}"

    rows.append(("J/step (mean)", per(s.mean_energy_j, s.mean_energy_uncertainty_j, "J/step", "")))
    rows.append(
        (
            "J/sample",
            per(
                s.energy_per_sample_j,
                s.energy_per_sample_uncertainty_j,
                "J/sample",
                "no step(samples=)",
            ),
        )
    )
    rows.append(
        (
            "J/token",
            per(
                s.energy_per_token_j,
                s.energy_per_token_uncertainty_j,
                "J/token",
                "no step(tokens=)",
            ),
        )
    )
    if s.flops and s.j_per_tflop is not None:
        u = s.j_per_tflop_uncertainty_j or 0.0
        rows.append(
            (
                "J/TFLOP (steps)",
                f"{format_number(s.j_per_tflop)} J/TFLOP ± {format_number(u, 2)} J/TFLOP {how}",
            )
        )
    return rows


def _carbon_rows(m: Measurement) -> list[tuple[str, str]]:
    c = m.carbon
    if c is None:
        why = _energy_reason(m)
        return [("CO2e (location)", _missing(why)), ("Water", _missing(why))]
    rel = (m.uncertainty_j or 0.0) / m.energy_j if m.energy_j else 0.0
    how = methods_tag(m.methods)

    def mass(kg: float) -> str:
        if kg < 1.0:
            return f"{format_number(kg * 1000)} g CO2e ± {format_number(kg * 1000 * rel, 2)} g"
        return f"{format_number(kg)} kg CO2e ± {format_number(kg * rel, 2)} kg"

    rows: list[tuple[str, str]] = []
    if c.co2e_kg is None or c.carbon_intensity_g_per_kwh is None:
        rows.append(("CO2e (location)", _missing(c.carbon_intensity_source)))
    else:
        place = c.country + (f"/{c.region}" if c.region else "") if c.country else "given"
        rows.append(
            (
                "CO2e (location)",
                f"{mass(c.co2e_kg)} {how} at {format_number(c.carbon_intensity_g_per_kwh)} g/kWh "
                f"({place}; {source_in_words(c.carbon_intensity_source)})",
            )
        )
    if c.co2e_market_kg is not None:
        basis = c.market_basis or "market-based"
        rows.append(("CO2e (market)", f"{mass(c.co2e_market_kg)} {how}: {basis}"))
    elif c.co2e_kg is None:
        rows.append(("CO2e (market)", _missing("no grid intensity")))
    else:
        rows.append(
            ("CO2e (market)", _missing("pass renewable_share= for the market-based figure"))
        )
    if c.water_l is None or c.wue_l_per_kwh is None:
        rows.append(("Water", _missing("pass wue_l_per_kwh= for site water")))
    else:
        rows.append(
            (
                "Water",
                f"{format_number(c.water_l)} L ± {format_number(c.water_l * rel, 2)} L {how} "
                f"at {format_number(c.wue_l_per_kwh)} L/kWh (WUE)",
            )
        )
    if m.co2e_series_kg is not None:
        rows.append(
            (
                "CO2e (hour by hour)",
                f"{mass(m.co2e_series_kg)} {how} charged at the intensity of the hour each "
                f"joule was drawn ({series_in_words(m.co2e_series_source or '')})",
            )
        )
    elif _note(m, "hourly CO2e not computed"):
        rows.append(("CO2e (hour by hour)", _missing(_note(m, "hourly CO2e not computed"))))
    rows.extend(_embodied_rows(m))
    return rows


def _embodied_rows(m: Measurement) -> list[tuple[str, str]]:
    if m.embodied_co2e_kg is None:
        why = _note(m, "embodied CO2e not computed")
        return [("CO2e (embodied)", _missing(why))] if why else []
    kg = m.embodied_co2e_kg
    amount = f"{format_number(kg * 1000)} g CO2e" if kg < 1.0 else f"{format_number(kg)} kg CO2e"
    return [
        (
            "CO2e (embodied)",
            f"{amount}: manufacturing emissions of the GPUs and their servers' share, "
            f"charged by device-hours (Scope 3, beside the CO2e above, not added to it; "
            f"{embodied_in_words(m.embodied_source or '')})",
        )
    ]


def series_in_words(source: str) -> str:
    """An intensity series' source in words: the file (or Series) it came from.

    ``/data/grid.csv columns 'time_utc', 'g' (g/kWh); each value holds until the next
    timestamp`` reads ``series from grid.csv``; the full string stays in the run's JSON.
    """
    head = source.split(";", 1)[0]
    if head.startswith("pandas Series"):
        return "series from a " + head.split(" (", 1)[0]
    if " columns " in head:
        return "series from " + re.split(r"[\\/]", head.split(" columns ", 1)[0])[-1]
    return head or "series"


def embodied_in_words(source: str) -> str:
    """Who the embodied figures come from, ``class estimates: Luccioni et al. 2023``.

    Each figure's full citation stays in the run's JSON (``embodied_source``).
    """
    cited = []
    for part in source.split(" | "):
        found = re.search(r"source: ([A-Z][\w-]+)([^']*)'[^']*'(.*)", part)
        if not found:
            continue
        author, rest, after = found.groups()
        year = re.search(r"\b((?:19|20)\d{2})\b", after) or re.search(r"'(\d{2})\b", after)
        when = "" if year is None else year.group(1)
        when = f"20{when}" if len(when) == 2 else when
        short = f"{author}{' et al.' if rest.strip(' ,') else ''} {when}".strip()
        if short not in cited:
            cited.append(short)
    kind = "class estimates" if "(class estimate" in source else "product footprints"
    return f"{kind}: {', '.join(cited)}" if cited else kind
