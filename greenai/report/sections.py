"""The sections every report shows, as rows of strings: devices, phases, notes, header."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenai.report.frames import (
    MISSING,
    format_number,
    method_label,
    ordered_phases,
    select_phases,
)

if TYPE_CHECKING:
    from greenai.measurement import Measurement

__all__ = [
    "DEVICE_COLUMNS",
    "MODEL_NOTE",
    "PHASE_COLUMNS",
    "all_notes",
    "device_rows",
    "header_line",
    "phase_rows",
]

MODEL_NOTE = "'estimated (model)' figures come from utilisation and a TDP table, not from a sensor"

DEVICE_COLUMNS = ("device", "kind", "method", "energy", "avg power", "peak power", "partial")
PHASE_COLUMNS = ("phase", "count", "duration", "energy")


def header_line(m: Measurement) -> str:
    """``name — status — started_at — duration``."""
    return f"{m.name} — {m.status} — started {m.started_at} — {format_number(m.duration_s)} s"


def device_rows(m: Measurement) -> list[tuple[str, ...]]:
    """One row of strings per device, in :data:`DEVICE_COLUMNS` order."""
    rows: list[tuple[str, ...]] = []
    for d in m.devices:
        partial = "yes" + (f": {d.error}" if d.error else "") if d.partial else "no"
        rows.append(
            (
                d.name,
                d.kind,
                method_label(d.method),
                f"{format_number(d.energy_j)} J ± {format_number(d.uncertainty_j, 2)} J",
                f"{format_number(d.avg_power_w)} W",
                f"{format_number(d.peak_power_w)} W",
                partial,
            )
        )
    return rows


def phase_rows(
    m: Measurement, max_depth: int | None = None, top: int | None = None
) -> list[tuple[str, ...]]:
    """One row of strings per phase, in :data:`PHASE_COLUMNS` order.

    With ``max_depth`` or ``top``, only the phases :func:`~greenai.report.frames.select_phases`
    keeps (say what is left out with :func:`~greenai.report.frames.hidden_phases_note`).
    """
    rows: list[tuple[str, ...]] = []
    shown = ordered_phases(m) if max_depth is None and top is None else (
        select_phases(m, max_depth, top).shown
    )  # fmt: skip
    for p in shown:
        if p.energy_j is None:
            energy = MISSING + " (no energy source)"
        else:
            energy = f"{format_number(p.energy_j)} J ± {format_number(p.uncertainty_j or 0.0, 2)} J"
        rows.append((p.name, str(p.count), f"{format_number(p.duration_s)} s", energy))
    return rows


def all_notes(m: Measurement) -> list[str]:
    """The measurement's notes, plus the reminder that model figures are estimates."""
    notes = list(m.notes)
    if "model" in m.methods:
        notes.append(MODEL_NOTE)
    if m.partial:
        notes.append("partial: a device failed during the job; its gap was interpolated")
    return notes
