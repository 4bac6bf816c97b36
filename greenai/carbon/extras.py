"""Climate figures added to a finished job's Measurement: embodied and hour-by-hour CO2e.

Both are add-ons: what fails becomes a note on the result, never an exception that would
cost the job its measurement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greenai.measurement import Measurement

if TYPE_CHECKING:
    from greenai.carbon.embodied import EmbodiedFigures
    from greenai.carbon.series import IntensitySeries

__all__ = ["load_series", "with_embodied_and_hourly", "with_job_embodied"]


def load_series(value: Any) -> IntensitySeries | None:
    """``carbon_intensity_series=`` loaded and checked (a tracker does it at start).

    Raises:
        ConfigError: A file that is missing or unreadable, a Series without a
            DatetimeIndex (see :func:`greenai.carbon.series.load_intensity_series`).
    """
    if value is None:
        return None
    from greenai.carbon.series import IntensitySeries, load_intensity_series

    if isinstance(value, IntensitySeries):
        return value
    return load_intensity_series(value)


def with_embodied_and_hourly(
    m: Measurement,
    series: IntensitySeries | None,
    timeline: Callable[[], Any] | None,
) -> Measurement:
    """``m`` with its GPUs' embodied CO2e and, with ``series``, the hour-by-hour CO2e.

    ``timeline`` gives the job's power timeline (``Tracker.timeline()``); None leaves the
    hourly figure out. What fails becomes a note.
    """
    from greenai.carbon.series import co2e_series, total_energy_curve

    notes: list[str] = []
    changes = _embodied(m, notes)
    if series is not None and timeline is not None:
        if m.energy_j is None:
            notes.append("hourly CO2e not computed: no energy was measured")
        else:
            try:
                t, e = total_energy_curve(timeline())
                pue = m.carbon.pue if m.carbon is not None else 1.0
                hourly = co2e_series(t, e, m.started_at, series, pue=pue)
                changes["co2e_series_kg"] = hourly.co2e_kg
                changes["co2e_series_source"] = hourly.source
            except Exception as exc:
                notes.append(f"hourly CO2e not computed: {exc}")
    if notes:
        changes["notes"] = (*m.notes, *notes)
    return dataclasses.replace(m, **changes) if changes else m


def with_job_embodied(own: Measurement, job: Measurement) -> Measurement:
    """On rank 0: the job's embodied CO2e from all its GPUs; no job-wide hourly CO2e."""
    try:
        out = with_embodied_and_hourly(job, None, None)
    except Exception as exc:  # never lose the job record
        return dataclasses.replace(job, notes=(*job.notes, f"embodied CO2e: {exc!r}"))
    if own.co2e_series_kg is not None:
        note = (
            "hourly CO2e not computed for the whole job: each rank charges its own"
            f" timeline (rank 0's: {own.co2e_series_kg:.6g} kg CO2e)"
        )
        out = dataclasses.replace(out, notes=(*out.notes, note))
    return out


def _embodied(m: Measurement, notes: list[str]) -> dict[str, Any]:
    from greenai.carbon.embodied import gpu_job_embodied_co2e

    gpus = sum(1 for d in m.devices if d.kind == "gpu")
    if not gpus:
        return {}
    try:
        embodied = gpu_job_embodied_co2e(gpus, m.duration_s)
    except Exception as exc:
        notes.append(f"embodied CO2e not computed: {exc}")
        return {}
    return {"embodied_co2e_kg": embodied.co2e_kg, "embodied_source": _embodied_source(embodied)}


def _embodied_source(figures: EmbodiedFigures) -> str:
    """Where the embodied figure comes from, in one line: each factor, its source, the basis."""
    parts = [
        f"{s.factor.description}: {s.factor.kg_co2e:g} kg CO2e"
        f"{' (class estimate)' if s.factor.class_estimate else ''} × {s.device_hours:.4g}"
        f" device-hours; source: {s.factor.source}"
        for s in figures.shares
    ]
    return " | ".join([*parts, figures.basis])
