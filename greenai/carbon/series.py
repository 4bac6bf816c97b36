"""CO2e that honours *when* energy was drawn: a user's carbon-intensity series (hourly or finer).

A yearly grid average charges a kWh drawn at 3 am on a windy night like one drawn at the
evening peak. Grid operators and data providers publish intensity per hour or finer; bring
that series (greenai makes no network calls) as a CSV or a pandas Series and
:func:`co2e_series` charges each part of the energy timeline at the intensity of its own
hour. :func:`start_hour_table` answers the operator's question: had this job started at
another hour of that day, what would it have emitted?

Conventions: each value of the series holds from its timestamp until the next one; the last
one holds for the series' typical step (the median gap). Energy between two timeline
samples is spread evenly over that interval (the timeline's own resolution).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from greenai.errors import ConfigError
from greenai.units import J_PER_KWH

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "IntensitySeries",
    "SeriesCO2e",
    "StartHourRow",
    "co2e_series",
    "format_start_hour_table",
    "load_intensity_series",
    "start_hour_table",
    "total_energy_curve",
]

FloatArray = npt.NDArray[np.float64]
UTC = timezone.utc
VALUE_COLUMN = "carbon_intensity_g_per_kwh"


@dataclass(frozen=True, eq=False)
class IntensitySeries:
    """A grid carbon-intensity step series in UTC.

    Attributes:
        start_s: Start of each step, seconds since the Unix epoch (UTC), increasing.
        end_s: End of each step (the next start; the last ends one median step later).
        g_per_kwh: Intensity of each step, g CO2e/kWh, ≥ 0.
        source: Where the series came from (file and columns, or the Series' name).
    """

    start_s: FloatArray
    end_s: FloatArray
    g_per_kwh: FloatArray
    source: str

    @property
    def first_utc(self) -> datetime:
        """Start of the first step."""
        return datetime.fromtimestamp(float(self.start_s[0]), UTC)

    @property
    def last_utc(self) -> datetime:
        """End of the last step."""
        return datetime.fromtimestamp(float(self.end_s[-1]), UTC)


@dataclass(frozen=True, eq=False)
class SeriesCO2e:
    """CO2e of a job charged hour by hour (or step by step) of an intensity series.

    Attributes:
        interval_end_s: End of each timeline interval, seconds since the job's start.
        interval_co2e_kg: CO2e of each interval, kg (facility energy × the intensity of
            the steps the interval overlaps).
        co2e_kg: Their sum, kg CO2e.
        facility_energy_kwh: The energy charged (IT energy × PUE), kWh.
        mean_g_per_kwh: Energy-weighted mean intensity over the job, g CO2e/kWh.
        source: The series' source, and the convention used.
    """

    interval_end_s: FloatArray
    interval_co2e_kg: FloatArray
    co2e_kg: float
    facility_energy_kwh: float
    mean_g_per_kwh: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as lists)."""
        return {
            "interval_end_s": self.interval_end_s.tolist(),
            "interval_co2e_kg": self.interval_co2e_kg.tolist(),
            "co2e_kg": self.co2e_kg,
            "facility_energy_kwh": self.facility_energy_kwh,
            "mean_g_per_kwh": self.mean_g_per_kwh,
            "source": self.source,
        }


@dataclass(frozen=True)
class StartHourRow:
    """One row of :func:`start_hour_table`.

    Attributes:
        started_at_utc: The start tried.
        co2e_kg: CO2e had the job started then, or None where the series does not cover it.
        change: ``co2e_kg / actual − 1`` against the real start, or None.
        actual: Whether this row is the real start.
    """

    started_at_utc: datetime
    co2e_kg: float | None
    change: float | None
    actual: bool


def _utc_seconds(values: pd.Series, *, naive_is_utc: bool, what: str) -> FloatArray:
    import pandas as pd

    try:
        stamps = pd.to_datetime(values, utc=False, format="ISO8601")
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{what}: timestamps must be ISO 8601 (2026-11-29T14:00:00Z): {err}"
        ) from err
    if stamps.dt.tz is None:
        if not naive_is_utc:
            raise ConfigError(
                f"{what}: timestamps carry no time zone; write them in UTC with a zone "
                "('2026-11-29T14:00:00Z' or '+00:00'), or name the column '..._utc'"
            )
        stamps = stamps.dt.tz_localize("UTC")
    # Seconds from the epoch whatever the resolution pandas chose (ns, us, s).
    since = stamps.dt.tz_convert("UTC") - pd.Timestamp(0, tz="UTC")
    return np.asarray(since.dt.total_seconds(), dtype=np.float64)


def _series(start_s: FloatArray, values: FloatArray, source: str) -> IntensitySeries:
    if len(start_s) < 2:
        raise ConfigError(f"{source}: a series needs at least two rows (the step is unknown)")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise ConfigError(
            f"{source}: intensity must be a finite number ≥ 0 g CO2e/kWh; row {bad[0] + 1} "
            f"has {float(values[bad[0]]):g}"
        )
    order = np.argsort(start_s, kind="stable")
    start_s, values = start_s[order], values[order]
    steps = np.diff(start_s)
    if np.any(steps == 0):
        at = datetime.fromtimestamp(float(start_s[1:][steps == 0][0]), UTC).isoformat()
        raise ConfigError(f"{source}: two rows share the timestamp {at}")
    end_s = np.append(start_s[1:], start_s[-1] + float(np.median(steps)))
    return IntensitySeries(start_s, end_s, values.astype(np.float64), source)


def load_intensity_series(
    source: str | os.PathLike[str] | pd.Series,
    *,
    time_column: str | None = None,
    value_column: str | None = None,
) -> IntensitySeries:
    """Read a carbon-intensity series from a CSV file or a pandas Series.

    The CSV has a header, a timestamp column and a g CO2e/kWh column: with two columns
    they are taken in that order; with more, the value column is the one called
    ``carbon_intensity_g_per_kwh``, else the only numeric column besides the first (other
    columns, a zone or a source, are ignored), else name them. Timestamps are ISO 8601 with a zone
    (``2026-11-29T14:00:00Z``); zone-less ones are taken as UTC only when the column's name
    ends in ``utc``. A Series has a DatetimeIndex (zone-less means UTC) and g/kWh values.

    Args:
        source: A CSV path, or a pandas Series indexed by time.
        time_column: The timestamp column's name (CSV only).
        value_column: The intensity column's name (CSV only).

    Returns:
        The series, sorted by time.

    Raises:
        ConfigError: The file is missing or unreadable, a column is missing, a timestamp is
            not ISO 8601 or has no zone, two rows share a time, a value is negative or not
            a number, or there are fewer than two rows.
    """
    import pandas as pd

    if isinstance(source, pd.Series):
        if not isinstance(source.index, pd.DatetimeIndex):
            raise ConfigError("a carbon-intensity Series needs a DatetimeIndex (UTC times)")
        index = source.index
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        since = index - pd.Timestamp(0, tz="UTC")
        start_s = np.asarray(since.total_seconds(), dtype=np.float64)
        values = pd.to_numeric(source, errors="coerce").to_numpy(dtype=np.float64)
        label = f"pandas Series {source.name!r}" if source.name is not None else "pandas Series"
        return _series(start_s, values, f"{label} (g CO2e/kWh)")
    path = Path(source)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as err:
        raise ConfigError(f"carbon-intensity series {str(path)!r} does not exist") from err
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ConfigError(f"cannot read carbon-intensity series {str(path)!r}: {err}") from err
    columns = [str(c) for c in frame.columns]
    if time_column is None:
        time_column = columns[0] if columns else ""
    if value_column is None:
        value_column = (
            VALUE_COLUMN if VALUE_COLUMN in columns else (columns[1] if len(columns) == 2 else "")
        )
        if not value_column:  # extra named columns (a zone, a source): the one numeric column
            numeric = [
                c
                for c, raw in zip(columns, frame.columns, strict=True)
                if c != time_column and pd.to_numeric(frame[raw], errors="coerce").notna().all()
            ]
            value_column = numeric[0] if len(numeric) == 1 else ""
    for name, what in ((time_column, "time_column"), (value_column, "value_column")):
        if name not in columns:
            raise ConfigError(
                f"{path}: no column {name!r} ({what}); columns are {columns}. Use two columns "
                f"(UTC time, g CO2e/kWh), name the value column {VALUE_COLUMN!r}, or pass "
                f"{what}="
            )
    what = f"{path}"
    start_s = _utc_seconds(
        frame[time_column], naive_is_utc=time_column.lower().endswith("utc"), what=what
    )
    values = pd.to_numeric(frame[value_column], errors="coerce").to_numpy(dtype=np.float64)
    return _series(start_s, values, f"{path} columns {time_column!r}, {value_column!r} (g/kWh)")


def _as_series(series: IntensitySeries | str | os.PathLike[str] | pd.Series) -> IntensitySeries:
    return series if isinstance(series, IntensitySeries) else load_intensity_series(series)


def _utc(started_at_utc: datetime | str) -> datetime:
    when = (
        datetime.fromisoformat(started_at_utc)
        if isinstance(started_at_utc, str)
        else started_at_utc
    )
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ConfigError(f"started_at_utc must be a datetime with a zone; got {started_at_utc!r}")
    return when.astimezone(UTC)


def _check_energy(energy_t_s: Any, energy_j_cum: Any) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(energy_t_s, dtype=np.float64)
    e = np.asarray(energy_j_cum, dtype=np.float64)
    if t.ndim != 1 or t.shape != e.shape or t.size < 2:
        raise ConfigError(
            "energy_t_s and energy_j_cum must be 1-D, of equal length and at least 2 samples; "
            f"got shapes {t.shape} and {e.shape}"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(e))):
        raise ConfigError("energy_t_s and energy_j_cum must be finite")
    if np.any(np.diff(t) <= 0):
        raise ConfigError("energy_t_s must increase strictly")
    return t, e


def _co2e(
    t: FloatArray, e: FloatArray, start_epoch_s: float, series: IntensitySeries, pue: float
) -> tuple[FloatArray, float | None]:
    """Per-interval kg CO2e, or (empty, first uncovered epoch second) when not covered."""
    t0, t1 = start_epoch_s + t[0], start_epoch_s + t[-1]
    if t0 < series.start_s[0] or t1 > series.end_s[-1]:
        return np.empty(0), t0 if t0 < series.start_s[0] else t1
    # Break the timeline at the series' step boundaries; energy between samples is linear.
    inner = series.start_s[(series.start_s > t0) & (series.start_s < t1)] - start_epoch_s
    knots = np.union1d(t, inner)
    cum = np.interp(knots, t, e)
    piece_j = np.diff(cum) * pue
    mid = start_epoch_s + (knots[:-1] + knots[1:]) / 2
    step = np.searchsorted(series.start_s, mid, side="right") - 1
    piece_kg = piece_j / J_PER_KWH * series.g_per_kwh[step] / 1000.0
    # Sum the pieces back onto the timeline's own intervals.
    interval = np.searchsorted(t, knots[:-1], side="right") - 1
    per_interval = np.bincount(interval, weights=piece_kg, minlength=len(t) - 1)
    return np.asarray(per_interval, dtype=np.float64), None


def co2e_series(
    energy_t_s: npt.ArrayLike,
    energy_j_cum: npt.ArrayLike,
    started_at_utc: datetime | str,
    series: IntensitySeries | str | os.PathLike[str] | pd.Series,
    *,
    pue: float = 1.0,
) -> SeriesCO2e:
    """Charge a job's energy timeline at the intensity of the hour it was drawn in.

    Args:
        energy_t_s: Timeline sample times, seconds since the job's start, increasing
            (shape ``(n,)``, n ≥ 2), e.g. from :func:`total_energy_curve`.
        energy_j_cum: Cumulative IT energy at those times, J (shape ``(n,)``).
        started_at_utc: Wall-clock time of ``t_s = 0``, a zone-aware datetime or ISO text.
        series: An :class:`IntensitySeries`, a CSV path or a pandas Series (see
            :func:`load_intensity_series`).
        pue: Facility energy / IT energy, ≥ 1, applied before charging.

    Returns:
        Per-interval and total CO2e, with the series' source.

    Raises:
        ConfigError: Bad arrays, a start without a zone, a bad series, or a series that
            does not cover the job (the message gives both spans).
    """
    if not (isinstance(pue, int | float) and math.isfinite(pue) and pue >= 1.0):
        raise ConfigError(f"pue must be ≥ 1.0 (facility energy / IT energy); got {pue!r}")
    t, e = _check_energy(energy_t_s, energy_j_cum)
    table = _as_series(series)
    start = _utc(started_at_utc)
    kg, uncovered = _co2e(t, e, start.timestamp(), table, float(pue))
    if uncovered is not None:
        job = (start + timedelta(seconds=float(t[0])), start + timedelta(seconds=float(t[-1])))
        raise ConfigError(
            f"the carbon-intensity series covers {table.first_utc.isoformat()} to "
            f"{table.last_utc.isoformat()} but the job ran {job[0].isoformat()} to "
            f"{job[1].isoformat()}; give a series that covers the whole job"
        )
    facility_kwh = float(e[-1] - e[0]) * pue / J_PER_KWH
    total = math.fsum(kg.tolist())
    return SeriesCO2e(
        interval_end_s=t[1:].copy(),
        interval_co2e_kg=kg,
        co2e_kg=total,
        facility_energy_kwh=facility_kwh,
        mean_g_per_kwh=total * 1000.0 / facility_kwh if facility_kwh > 0 else None,
        source=f"{table.source}; each value holds until the next timestamp",
    )


def start_hour_table(
    energy_t_s: npt.ArrayLike,
    energy_j_cum: npt.ArrayLike,
    started_at_utc: datetime | str,
    series: IntensitySeries | str | os.PathLike[str] | pd.Series,
    *,
    pue: float = 1.0,
) -> list[StartHourRow]:
    """CO2e had the same job started at each hour of its (UTC) start day.

    The job's energy timeline is shifted whole, keeping its minute within the hour, to
    start at 00, 01, ... 23 h UTC of the day it started.

    Args:
        energy_t_s: As :func:`co2e_series`.
        energy_j_cum: As :func:`co2e_series`.
        started_at_utc: The real start, as :func:`co2e_series`.
        series: As :func:`co2e_series`.
        pue: As :func:`co2e_series`.

    Returns:
        24 rows in start order; a row's ``co2e_kg`` is None where the series does not cover
        the shifted job.

    Raises:
        ConfigError: As :func:`co2e_series`, and when the series does not cover the real
            start.
    """
    actual = co2e_series(energy_t_s, energy_j_cum, started_at_utc, series, pue=pue)
    t, e = _check_energy(energy_t_s, energy_j_cum)
    table = _as_series(series)
    start = _utc(started_at_utc)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    within_hour = start - start.replace(minute=0, second=0, microsecond=0)
    rows = []
    for hour in range(24):
        when = midnight + timedelta(hours=hour) + within_hour
        kg, uncovered = _co2e(t, e, when.timestamp(), table, float(pue))
        co2e = None if uncovered is not None else math.fsum(kg.tolist())
        change = None
        if co2e is not None and actual.co2e_kg > 0:
            change = co2e / actual.co2e_kg - 1.0
        rows.append(StartHourRow(when, co2e, change, when.hour == start.hour))
    return rows


def total_energy_curve(timeline: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """The job's total cumulative energy from a stored timeline, all devices summed.

    Args:
        timeline: Columns ``t_s``, ``device``, ``energy_j`` (cumulative per device), as
            :meth:`greenai.Tracker.timeline` and the run store give them.

    Returns:
        ``(t_s, energy_j_cum)`` on the union of the devices' sample times from the start
        (``t_s ≥ 0``; samples of a baseline before it are left out), beginning at
        ``(0, 0)`` (``energy_j`` counts from the start); each device's curve is interpolated
        linearly between its samples and held flat outside them.

    Raises:
        ConfigError: The frame lacks those columns or has fewer than two times.
    """
    missing = {"t_s", "device", "energy_j"} - set(timeline.columns)
    if missing:
        raise ConfigError(f"timeline lacks columns {sorted(missing)}")
    rows = timeline.dropna(subset=["t_s", "energy_j"])
    t = np.unique(rows["t_s"].to_numpy(dtype=np.float64))
    if t.size and t[0] < 0.0 < t[-1]:  # baseline samples before the start: not the job's
        t = np.union1d(t[t >= 0.0], [0.0])
    # energy_j counts from the start, so it is 0 at t = 0 even where the first kept row is
    # later (a long job's first bucket ends 10 s in): anchor it, or that energy is lost.
    anchor = bool(t.size) and t[0] > 0.0
    if t.size < 2:
        raise ConfigError("the timeline has fewer than two sample times: no energy to charge")
    total = np.zeros_like(t)
    for _, device in rows.groupby("device", sort=False):
        device = device.sort_values("t_s")
        total += np.interp(
            t, device["t_s"].to_numpy(np.float64), device["energy_j"].to_numpy(np.float64)
        )
    if anchor:
        return np.insert(t, 0, 0.0), np.insert(total, 0, 0.0)
    return t, total


def format_start_hour_table(rows: list[StartHourRow]) -> str:
    """:func:`start_hour_table` as a markdown table (g CO2e, change against the real start)."""
    lines = ["| start (UTC) | CO2e (g) | vs. actual |", "| --- | ---: | ---: |"]
    for row in rows:
        when = row.started_at_utc.strftime("%H:%M") + (" (actual)" if row.actual else "")
        co2e = "series does not cover" if row.co2e_kg is None else f"{row.co2e_kg * 1000:.4g}"
        change = "" if row.change is None else f"{row.change:+.0%}"
        lines.append(f"| {when} | {co2e} | {change} |")
    return "\n".join(lines)
