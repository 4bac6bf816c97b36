"""A stored run as a Hugging Face model card block, or as CodeCarbon's ``emissions.csv``.

``greenai report RUN --format model-card`` prints the ``co2_eq_emissions`` metadata block
of a model card (Hugging Face, "Displaying carbon emissions for your model",
https://huggingface.co/docs/hub/model-cards-co2) and a paragraph that says how the energy
was obtained. ``--format codecarbon-csv`` writes CodeCarbon's ``emissions.csv`` columns
(``codecarbon.output_methods.emissions_data.EmissionsData``), for users who migrate, with
one ``..._method`` column per energy column.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from typing import TYPE_CHECKING, Any

from greenai.report.frames import format_number, method_label, source_in_words
from greenai.safe_output import csv_cell
from greenai.units import J_PER_KWH

if TYPE_CHECKING:
    from greenai.measurement import DeviceEnergy, Measurement

__all__ = ["CODECARBON_COLUMNS", "METHOD_COLUMNS", "codecarbon_csv", "model_card"]

CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip
"""CodeCarbon 3.x's ``emissions.csv`` columns, in its order (units: s, kg, W, kWh, L)."""

METHOD_COLUMNS = (
    "cpu_energy_method",
    "gpu_energy_method",
    "ram_energy_method",
    "energy_consumed_method",
    "energy_consumed_uncertainty",
    "source",
)
"""Columns greenai adds after CodeCarbon's: how each energy column was obtained
(``counter``, ``power``, ``model``, ``+``-joined when mixed), the total's ~95% uncertainty
(kWh), and what wrote the file."""

_KINDS = {"cpu": "cpu", "gpu": "gpu", "ram": "dram"}


def _version() -> str:
    import greenai

    return f"greenai {greenai.__version__}"


def _of_kind(m: Measurement, kind: str) -> list[DeviceEnergy]:
    return [d for d in m.devices if d.kind == kind]


def _methods(devices: list[DeviceEnergy]) -> str:
    order = {"counter": 0, "power": 1, "model": 2}
    return "+".join(sorted({d.method for d in devices}, key=lambda x: order.get(x, 9)))


def _hardware(m: Measurement, meta: dict[str, Any]) -> str:
    given = meta.get("hardware")
    if isinstance(given, str) and given:
        return given
    parts = []
    for kind, word in (("gpu", "GPU"), ("cpu", "CPU"), ("dram", "memory")):
        devices = _of_kind(m, kind)
        if devices:
            names = ", ".join(d.name for d in devices)
            parts.append(f"{len(devices)} {word} ({names})" if kind != "dram" else f"{word}")
    return " + ".join(parts) or "unknown (no device measured)"


def _how(m: Measurement) -> str:
    """``measured (counter) for gpu0; estimated (model) for cpu0-package``."""
    by_method: dict[str, list[str]] = {}
    for d in m.devices:
        by_method.setdefault(d.method, []).append(d.name)
    return "; ".join(f"{method_label(k)} for {', '.join(v)}" for k, v in by_method.items())


def _place(m: Measurement) -> str | None:
    c = m.carbon
    if c is None:
        return None
    if c.cloud:
        return f"{c.cloud} {c.region or ''}".strip()
    if c.country:
        return c.country + (f"/{c.region}" if c.region else "")
    return None


def model_card(m: Measurement, meta: dict[str, Any] | None = None) -> str:
    """The ``co2_eq_emissions`` YAML front matter and a paragraph on energy and method.

    ``emissions`` is location-based CO2e in grams (the card's unit); without a grid
    intensity it is left out and a comment says why. ``training_type`` comes from the run's
    meta (``GreenAICallback(training_type=...)`` or ``meta={"training_type": ...}``) and
    ``hardware_used`` from ``meta["hardware"]`` or the measured devices.
    """
    meta = meta or {}
    lines = ["---", "co2_eq_emissions:"]
    grams = None if m.co2e_kg is None else m.co2e_kg * 1000
    if grams is None:
        why = m.carbon.carbon_intensity_source if m.carbon else "no energy was measured"
        lines.append(f"  # emissions: not computed ({why})".replace("\n", " "))
    else:
        lines.append(f"  emissions: {grams:.6g}")
    how = _how(m) or "no device measured"
    source = f"{_version()} ({how})"
    if m.carbon is not None and m.carbon.carbon_intensity_g_per_kwh is not None:
        source += f"; grid intensity: {source_in_words(m.carbon.carbon_intensity_source)}"
    lines.append(f"  source: {json.dumps(source)}")
    training_type = meta.get("training_type")
    if training_type:
        lines.append(f"  training_type: {json.dumps(str(training_type))}")
    else:
        lines.append('  # training_type: not recorded ("pre-training" or "fine-tuning")')
    place = _place(m)
    if place:
        lines.append(f"  geographical_location: {json.dumps(place)}")
    else:
        lines.append("  # geographical_location: not recorded (track with country=...)")
    lines.append(f"  hardware_used: {json.dumps(_hardware(m, meta))}")
    lines.append("---")
    return "\n".join(lines) + "\n\n" + _paragraph(m) + "\n"


def _prose_name(name: str) -> str:
    # Markdown renders raw HTML: a run named "<script>" must show, not run.
    return html.escape(repr(name), quote=False)


def _paragraph(m: Measurement) -> str:
    hours = m.duration_s / 3600
    took = f"{format_number(hours, 3)} h" if hours >= 1 else f"{format_number(m.duration_s, 3)} s"
    if m.energy_j is None:
        return (
            f"Training ({_prose_name(m.name)}) ran for {took}; its energy was not measured"
            f" (no energy source), so no emissions are given. Tracked with {_version()}."
        )
    kwh = m.energy_j / J_PER_KWH
    unc = (m.uncertainty_j or 0.0) / J_PER_KWH
    text = (
        f"Training ({_prose_name(m.name)}) ran for {took} and drew {format_number(kwh, 3)} kWh"
        f" ± {format_number(unc, 2)} kWh (about 95% coverage) of IT energy: {_how(m)}."
    )
    if "model" in m.methods:
        text += (
            " Figures marked 'estimated (model)' come from utilisation and a TDP table,"
            " not from a sensor."
        )
    c = m.carbon
    if c is not None and c.co2e_kg is not None and c.carbon_intensity_g_per_kwh is not None:
        text += (
            f" At a PUE of {c.pue:g} and {format_number(c.carbon_intensity_g_per_kwh, 3)}"
            f" g CO2e/kWh ({_place(m) or 'given'}; {source_in_words(c.carbon_intensity_source)})"
            f" that is {format_number(c.co2e_kg * 1000, 3)} g CO2e (location-based)."
        )
    else:
        text += " No grid intensity was given, so no emissions are stated."
    return text + f" Measured with {_version()}."


def codecarbon_csv(
    m: Measurement,
    *,
    run_id: str = "",
    ended_at: str | None = None,
    meta: dict[str, Any] | None = None,
) -> str:
    """One ``emissions.csv`` row in CodeCarbon's columns, then greenai's method columns.

    Energies are kWh, powers W (the job's average), emissions kg CO2e, duration s, water
    litres, as CodeCarbon writes them; ``energy_consumed`` is IT energy (CodeCarbon's
    ``pue`` column says the PUE to apply). Columns greenai does not know stay empty.
    """
    meta = meta or {}
    row: dict[str, Any] = dict.fromkeys(CODECARBON_COLUMNS, "")
    c = m.carbon
    row.update(
        timestamp=ended_at or m.started_at,
        project_name=m.name,
        run_id=run_id,
        duration=m.duration_s,
        tracking_mode="machine",
        on_cloud="Y" if c is not None and c.cloud else "N",
        pue=1.0 if c is None else c.pue,
    )
    # the machine as CodeCarbon writes it: recorded with the run (greenai.host), or a
    # bench/demo run's machine; never the devices' names or counts
    host: dict[str, Any] = meta["host"] if isinstance(meta.get("host"), dict) else {}
    machine: dict[str, Any] = meta["machine"] if isinstance(meta.get("machine"), dict) else {}
    for column, keys in (
        ("os", ("os",)),
        ("python_version", ("python_version", "python")),
        ("cpu_count", ("cpu_count",)),
        ("cpu_model", ("cpu_model",)),
        ("ram_total_size", ("ram_total_size",)),
    ):
        found = [
            src[k] for src in (meta, host, machine) for k in keys if src.get(k) not in (None, "")
        ]
        row[column] = found[0] if found else ""
    if m.co2e_kg is not None:
        row["emissions"] = m.co2e_kg
        row["emissions_rate"] = m.co2e_kg / m.duration_s if m.duration_s > 0 else ""
    if m.energy_j is not None:
        row["energy_consumed"] = m.energy_j / J_PER_KWH
    if c is not None:
        row["country_iso_code"] = c.country or ""
        row["region"] = c.region or ""
        row["cloud_provider"] = c.cloud or ""
        row["cloud_region"] = c.region if c.cloud else ""
        row["water_consumed"] = "" if c.water_l is None else c.water_l
        row["wue"] = "" if c.wue_l_per_kwh is None else c.wue_l_per_kwh
    extra: dict[str, Any] = dict.fromkeys(METHOD_COLUMNS, "")
    for column, kind in _KINDS.items():
        devices = _of_kind(m, kind)
        if not devices:
            continue
        energy_j = math.fsum(d.energy_j for d in devices)
        row[f"{column}_energy"] = energy_j / J_PER_KWH
        row[f"{column}_power"] = energy_j / m.duration_s if m.duration_s > 0 else ""
        extra[f"{column}_energy_method"] = _methods(devices)
        if column == "gpu":
            row["gpu_count"] = len(devices)
            row["gpu_model"] = machine.get("gpu_model") or ", ".join(d.name for d in devices)
    extra["energy_consumed_method"] = _methods(list(m.devices))
    if m.uncertainty_j is not None:
        extra["energy_consumed_uncertainty"] = m.uncertainty_j / J_PER_KWH
    extra["source"] = _version()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*CODECARBON_COLUMNS, *METHOD_COLUMNS])
    writer.writeheader()
    writer.writerow({k: csv_cell(v) for k, v in {**row, **extra}.items()})
    return out.getvalue()
