"""Fleet KPIs over a run store: energy, efficiency and climate per period and per tag.

Everything is summed in the database (one ``GROUP BY`` over ``runs`` joined to ``tags``),
on SQLite or PostgreSQL alike; pandas only divides the sums. Figures and conventions:

* ``it_kwh``: energy the IT equipment drew; ``facility_kwh``: IT × PUE (PUE-weighted), over
  the jobs whose PUE is known; ``kwh_per_job``: IT kWh per job with an energy figure.
* ``kwh_per_tflop_pue``: facility kWh per trillion (nominal) FLOPs, over the jobs with both
  FLOPs and PUE.
* ``co2e_location_kg`` / ``co2e_market_kg``: GHG Protocol Scope 2, location- and
  market-based, over the jobs that have each; ``renewable_share``: facility-energy-weighted
  share under renewable contracts; ``water_l``: site water.
* ``measured_share``: the share of IT energy read from counters or power sensors (the rest
  is a model's estimate).
* ``±`` columns (``*_u``): one standard uncertainty, the jobs' own in quadrature (jobs
  measured independently); ``it_kwh_u_bound`` adds them linearly, the bound when one scale
  error (one sensor type, one model) runs through every job.

Jobs without PUE or without FLOPs are never counted as zero: each row counts them
(``jobs_without_pue``, ``jobs_without_flops``) and :func:`kpi_notes` says what they left out.
Runs still going are left out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from greenai.errors import ConfigError
from greenai.tags import check_tags

if TYPE_CHECKING:
    import pandas as pd

    from greenai.store import RunStore

__all__ = [
    "METRICS",
    "PERIODS",
    "Target",
    "avoided_by_compression",
    "fleet_kpis",
    "kpi_notes",
    "parse_target",
    "progress",
]

Period = Literal["month", "quarter", "year"]
PERIODS: tuple[str, ...] = ("month", "quarter", "year")

METRICS: dict[str, str] = {
    "jobs": "jobs",
    "it_kwh": "IT energy (kWh)",
    "facility_kwh": "PUE-weighted energy (kWh)",
    "kwh_per_job": "IT kWh per job",
    "kwh_per_tflop_pue": "PUE-weighted kWh per trillion FLOPs",
    "co2e_location_kg": "CO2e, location-based (kg)",
    "co2e_market_kg": "CO2e, market-based (kg)",
    "renewable_share": "renewable share of facility energy",
    "water_l": "site water (litres)",
    "measured_share": "share of IT energy measured (not modelled)",
}
"""The KPI columns and what each is; :func:`parse_target` accepts these names."""

J_PER_KWH = 3.6e6
FLOP_PER_TFLOP = 1e12

# Each figure is a sum or a count, so months add up to quarters and years: the database
# groups by the stored month (read in order from the runs_kpi index, no sort) and pandas adds
# up the few month rows. ``x * 0 + 1`` is 1 where x is known and NULL where it is not, the
# cheapest "only where known" both databases share; CASE is kept for FLOPs (> 0).
_SUMS = """
    count(*) AS jobs,
    count(r.energy_j) AS jobs_with_energy,
    sum(r.energy_j) AS it_j,
    sum(r.uncertainty_j * r.uncertainty_j) AS it_var,
    sum(r.uncertainty_j) AS it_u_sum,
    count(r.energy_j * r.pue) AS jobs_with_pue,
    sum(r.energy_j * r.pue) AS facility_j,
    sum(r.uncertainty_j * r.pue * r.uncertainty_j * r.pue) AS facility_var,
    count(CASE WHEN r.flops > 0 THEN r.energy_j END) AS jobs_with_flops,
    sum(CASE WHEN r.flops > 0 THEN r.energy_j * r.pue END) AS flop_facility_j,
    sum(CASE WHEN r.flops > 0 THEN r.uncertainty_j * r.pue * r.uncertainty_j * r.pue END)
        AS flop_facility_var,
    sum(CASE WHEN r.flops > 0 THEN r.flops * (r.energy_j * r.pue * 0 + 1) END) AS flops,
    sum(r.co2e_kg) AS co2e_location_kg,
    count(r.co2e_kg) AS jobs_with_co2e_location,
    sum(r.co2e_market_kg) AS co2e_market_kg,
    count(r.co2e_market_kg) AS jobs_with_co2e_market,
    sum(r.energy_j * r.pue * r.renewable_share) AS renewable_j,
    sum(r.energy_j * r.pue * (r.renewable_share * 0 + 1)) AS renewable_basis_j,
    sum(r.water_l) AS water_l,
    count(r.water_l) AS jobs_with_water,
    sum(r.measured_energy_j) AS measured_j,
    sum(r.energy_j * (r.measured_energy_j * 0 + 1)) AS measured_basis_j
"""


def fleet_kpis(
    store: RunStore,
    *,
    period: Period = "quarter",
    by: tuple[str, ...] | list[str] = (),
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    tags: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The KPIs of ``store``'s finished runs per ``period`` and per tag in ``by``.

    Args:
        store: An open store (SQLite or PostgreSQL).
        period: ``month``, ``quarter`` (``2026-Q3``) or ``year``, of the runs' UTC start.
        by: Tag names to group by too (``team``, ``project``, ``model``, ``site``, any
            other); runs without the tag fall in ``(untagged)``.
        since: Only runs started at or after this (ISO text or a datetime).
        until: Only runs started at or before this.
        tags: Only runs with every one of these tags.

    Returns:
        One row per period (and tag values), oldest first: ``period``, the ``by`` columns,
        the :data:`METRICS`, their ``*_u`` uncertainties, and the counts of jobs left out
        of each figure (``jobs_without_pue``, ``jobs_without_flops``...).

    Raises:
        ConfigError: An unknown period, a bad tag name or an unparseable time.
        StoreError: The store cannot be read.
    """
    import pandas as pd

    from greenai.store.runstore import _as_utc, _iso

    if period not in PERIODS:
        raise ConfigError(f"period must be one of {list(PERIODS)}; got {period!r}")
    by = list(by)
    check_tags({k: "x" for k in by})
    if len(set(by)) != len(by):
        raise ConfigError(f"each tag may appear once in by=; got {by}")
    taken = [k for k in by if k in _columns() or k.startswith("jobs")]
    if taken:
        raise ConfigError(
            f"cannot group by the tag {taken[0]!r}: the KPI table has a column of that name"
            " (period, month, jobs*, the figures and their _u); group by another tag"
        )
    where, args = ["r.status <> 'running'"], []
    for key, value in check_tags(tags or {}).items():
        where.append("r.{id} IN (SELECT run_id FROM tags WHERE key = ? AND value = ?)")
        args.extend([key, value])
    if since is not None:
        where.append("r.started_at >= ?")
        args.append(_iso(_as_utc(since, "since")))
    if until is not None:
        where.append("r.started_at <= ?")
        args.append(_iso(_as_utc(until, "until")))
    names = ["month", *by, *_sum_names()]
    if len(by) == 1 and _tags_carry_figures(store):
        rows = _by_one_tag(store, by[0], " AND ".join(where), args)
    else:
        joins, columns, join_args = [], [], []
        for i, key in enumerate(by):
            joins.append(f"LEFT JOIN tags g{i} ON g{i}.run_id = r.id AND g{i}.key = ?")
            columns.append(f"g{i}.value")
            join_args.append(key)
        keys = ["r.month", *columns]
        groups = ", ".join(str(i + 1) for i in range(len(keys)))
        rows = store.rows(
            f"SELECT {', '.join(keys)}, {_SUMS} FROM runs r {' '.join(joins)}"
            f" WHERE {' AND '.join(where).format(id='id')} GROUP BY {groups}",
            join_args + args,
        )
    months = pd.DataFrame(rows, columns=names)
    return _finish(_fold(months, period, by), by)


def _tags_carry_figures(store: RunStore) -> bool:
    """Whether the store's tag rows carry their runs' figures (schema 6).

    An older store opened read-only is not migrated: it is rolled up by joining the tags.
    """
    from greenai.store.errors import StoreError

    try:
        store.rows("SELECT month FROM tags WHERE 1 = 0", [])
    except StoreError:
        return False
    return True


def _by_one_tag(store: RunStore, key: str, where: str, args: list[Any]) -> list[tuple[Any, ...]]:
    """The month rows per value of one tag, then those of the runs without it.

    The tagged runs are read from the tag rows' copies of their figures (index ``tags_kpi``,
    in (tag, month, value) order: no join, no sort); the untagged ones only when the counts
    say there are some.
    """
    tagged = store.rows(
        f"SELECT r.month, r.value, {_SUMS} FROM tags r"
        f" WHERE r.key = ? AND {where.format(id='run_id')} GROUP BY 1, 2",
        [key, *args],
    )
    counted = store.rows(f"SELECT count(*) FROM runs r WHERE {where.format(id='id')}", args)
    total = int(counted[0][0]) if counted else 0  # a store not made yet reads no rows
    if sum(int(row[2]) for row in tagged) == total:
        return tagged
    untagged = store.rows(
        f"SELECT r.month, NULL, {_SUMS} FROM runs r WHERE {where.format(id='id')}"
        " AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.run_id = r.id AND t.key = ?)"
        " GROUP BY 1",
        [*args, key],
    )
    return [*tagged, *untagged]


def _fold(months: pd.DataFrame, period: str, by: list[str]) -> pd.DataFrame:
    """Month rows added up into ``period`` rows (a sum of NULLs stays NULL, never 0)."""
    month = months.pop("month").astype(int)
    year = (month // 100).astype(str)
    if period == "month":
        label = year + "-" + (month % 100).astype(str).str.zfill(2)
    elif period == "quarter":
        label = year + "-Q" + ((month % 100 + 2) // 3).astype(str)
    else:
        label = year
    months.insert(0, "period", label)
    for key in by:
        months[key] = months[key].fillna("(untagged)")
    sums = [c for c in months.columns if c not in ("period", *by)]
    months[sums] = months[sums].astype(float)
    folded: pd.DataFrame = (
        months.groupby(["period", *by], sort=True)[sums].sum(min_count=1).reset_index()
    )
    return folded


def _columns() -> set[str]:
    """The names the KPI tables use for themselves: a tag grouped by must differ."""
    figures = {*METRICS, "tflops", "it_kwh_u_bound"}
    return {"period", "month", *figures, *(f"{f}_u" for f in figures), *_sum_names()}


def _sum_names() -> list[str]:
    return re.findall(r"\bAS (\w+)", _SUMS)


def _finish(raw: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Ratios and units from the database's sums (column arithmetic, no loops)."""
    import numpy as np

    s = raw.copy()
    counts = [c for c in s.columns if c.startswith("jobs")]
    s[counts] = s[counts].fillna(0).astype(int)
    s["jobs_without_pue"] = s["jobs_with_energy"] - s["jobs_with_pue"]
    s["jobs_without_flops"] = s["jobs_with_energy"] - s["jobs_with_flops"]

    def div(a: pd.Series, b: pd.Series) -> pd.Series:
        ratio: pd.Series = a / b.where(b > 0)
        return ratio

    out: pd.DataFrame = s[["period", *by, "jobs"]].copy()
    out["it_kwh"] = s["it_j"] / J_PER_KWH
    out["it_kwh_u"] = np.sqrt(s["it_var"]) / J_PER_KWH
    out["it_kwh_u_bound"] = s["it_u_sum"] / J_PER_KWH
    out["facility_kwh"] = s["facility_j"] / J_PER_KWH
    out["facility_kwh_u"] = np.sqrt(s["facility_var"]) / J_PER_KWH
    out["kwh_per_job"] = div(out["it_kwh"], s["jobs_with_energy"])
    out["kwh_per_job_u"] = div(out["it_kwh_u"], s["jobs_with_energy"])
    tflops = s["flops"] / FLOP_PER_TFLOP
    out["tflops"] = tflops
    out["kwh_per_tflop_pue"] = div(s["flop_facility_j"] / J_PER_KWH, tflops)
    out["kwh_per_tflop_pue_u"] = div(np.sqrt(s["flop_facility_var"]) / J_PER_KWH, tflops)
    out["co2e_location_kg"] = s["co2e_location_kg"]
    out["co2e_market_kg"] = s["co2e_market_kg"]
    out["renewable_share"] = div(s["renewable_j"], s["renewable_basis_j"])
    out["water_l"] = s["water_l"]
    out["measured_share"] = div(s["measured_j"], s["measured_basis_j"])
    for name in (
        "jobs_with_energy",
        "jobs_without_pue",
        "jobs_without_flops",
        "jobs_with_co2e_location",
        "jobs_with_co2e_market",
        "jobs_with_water",
    ):
        out[name] = s[name]
    result: pd.DataFrame = out.reset_index(drop=True)
    return result


def kpi_notes(frame: pd.DataFrame) -> list[str]:
    """What each figure of :func:`fleet_kpis` left out, in words (empty when nothing)."""
    if frame.empty:
        return ["no finished runs in this selection"]
    total = int(frame["jobs_with_energy"].sum())
    notes = []
    missing = int(frame["jobs"].sum()) - total
    if missing:
        notes.append(f"{missing} job(s) have no energy figure: counted in jobs only")
    for column, what in (
        ("jobs_without_pue", "no PUE: left out of the PUE-weighted figures"),
        ("jobs_without_flops", "no FLOPs: left out of kWh per trillion FLOPs"),
    ):
        n = int(frame[column].sum())
        if n:
            notes.append(f"{n} of {total} job(s) with energy have {what} (never counted as 0)")
    for column, what in (
        ("jobs_with_co2e_location", "location-based CO2e (no grid given)"),
        ("jobs_with_co2e_market", "market-based CO2e (no renewable share given)"),
        ("jobs_with_water", "water (no WUE given)"),
    ):
        n = total - int(frame[column].sum())
        if n > 0:
            notes.append(f"{n} of {total} job(s) with energy have no {what}")
    return notes


# -- targets -------------------------------------------------------------------------------

_TARGET = re.compile(
    r"^\s*(?P<metric>[a-z_]+)\s*:\s*(?P<sign>[+-])?\s*(?P<number>\d+(?:\.\d+)?)\s*"
    r"(?P<percent>%)?\s*@\s*(?P<year>\d{4})\s*$"
)


@dataclass(frozen=True)
class Target:
    """A declared target: a metric, where it should be, by the end of a year.

    Attributes:
        metric: One of :data:`METRICS`.
        relative: A change against the baseline (``-0.5``: halve it), or None.
        value: An absolute level (``0.6`` for 60%), or None.
        year: The target holds at the end of this year (UTC).
    """

    metric: str
    relative: float | None
    value: float | None
    year: int

    def level(self, baseline: float) -> float:
        """The metric's target level given its baseline."""
        if self.relative is not None:
            return baseline * (1.0 + self.relative)
        assert self.value is not None
        return self.value


def parse_target(text: str) -> Target:
    """``METRIC:±N%@YEAR`` (a change against the baseline) or ``METRIC:VALUE[%]@YEAR``.

    ``kwh_per_tflop_pue:-50%@2027`` halves PUE-weighted kWh per trillion FLOPs by the end
    of 2027; ``renewable_share:60%@2030`` reaches a 60% renewable share;
    ``kwh_per_job:27000@2027`` brings the average job to 27,000 kWh.

    Raises:
        ConfigError: The text does not parse, or names an unknown metric.
    """
    match = _TARGET.match(text)
    if match is None:
        raise ConfigError(
            f"a target is METRIC:CHANGE%@YEAR or METRIC:VALUE@YEAR, e.g."
            f" kwh_per_tflop_pue:-50%@2027; got {text!r}"
        )
    metric = match["metric"]
    if metric not in METRICS or metric == "jobs":
        known = ", ".join(m for m in METRICS if m != "jobs")
        raise ConfigError(f"unknown target metric {metric!r}; one of: {known}")
    number = float(match["number"]) / (100.0 if match["percent"] else 1.0)
    year = int(match["year"])
    if match["sign"]:
        if not match["percent"]:
            raise ConfigError(f"a change needs a percent sign (e.g. -50%); got {text!r}")
        change = number if match["sign"] == "+" else -number
        return Target(metric, relative=change, value=None, year=year)
    return Target(metric, relative=None, value=number, year=year)


def _midpoint(label: str) -> float:
    """The middle of a period label (``2026``, ``2026-Q3``, ``2026-07``) as a year fraction."""
    year = int(label[:4])
    if len(label) == 4:
        return year + 0.5
    if label[5] == "Q":
        return year + (int(label[6]) - 0.5) / 4
    return year + (int(label[5:7]) - 0.5) / 12


def progress(frame: pd.DataFrame, target: Target, *, baseline: str | None = None) -> pd.DataFrame:
    """The metric of an ungrouped :func:`fleet_kpis` frame against a target's straight path.

    The path runs from the baseline period's value (at its middle) to the target level at
    the end of the target year. ``status`` is ``on track`` or ``off track`` when the figure
    and its ``±`` lie on one side of the path, ``undecided`` when the path is within ``±``,
    ``no figure`` when the period has none, and ``baseline`` for the baseline itself.
    ``value_u`` is NaN where the figure has no ``±`` (an input figure such as the renewable
    share, or an uncertainty that could not be computed); the status then compares the
    value alone.

    Args:
        frame: :func:`fleet_kpis` without ``by``.
        target: From :func:`parse_target`.
        baseline: The baseline period's label (default: the first period with a figure).

    Raises:
        ConfigError: The baseline period is not in the frame or has no figure.
    """
    import numpy as np

    metric = target.metric
    value = frame[metric].astype(float)
    u_column = f"{metric}_u"
    # NaN where the figure carries no ± (renewable share is an input) or it is unknown:
    # shown as unknown, never as an exact 0; the status then compares the value alone
    u = frame[u_column].astype(float) if u_column in frame else value * math.nan
    periods = frame["period"].astype(str)
    known = periods[value.notna()]
    if baseline is None:
        if known.empty:
            raise ConfigError(f"no period has a {metric} figure to serve as the baseline")
        baseline = str(known.iloc[0])
    if baseline not in set(known):
        raise ConfigError(
            f"baseline {baseline!r} has no {metric} figure; periods with one:"
            f" {', '.join(known) or 'none'}"
        )
    base = float(value[periods == baseline].iloc[0])
    goal = target.level(base)
    t0, t1 = _midpoint(baseline), target.year + 1.0
    t = periods.map(_midpoint).astype(float)
    path = base + (goal - base) * ((t - t0) / (t1 - t0)).clip(lower=0.0, upper=1.0)
    down = goal <= base
    gap = (path - value) if down else (value - path)
    status = np.where(
        value.isna(),
        "no figure",
        np.where(
            gap.abs() <= u.fillna(0.0), "undecided", np.where(gap > 0, "on track", "off track")
        ),
    )
    status = np.where(periods == baseline, "baseline", status)
    out: pd.DataFrame = frame[["period"]].copy()
    out["metric"] = metric
    out["value"] = value
    out["value_u"] = u
    out["baseline"] = base
    out["change_vs_baseline"] = value / base - 1.0 if base else math.nan
    out["path"] = path
    out["target"] = goal
    out["target_year"] = target.year
    out["status"] = status
    return out


# -- compression -----------------------------------------------------------------------------


def avoided_by_compression(
    sweep: pd.DataFrame,
    label: str,
    inferences: float,
    *,
    carbon_intensity_g_per_kwh: float | None = None,
    pue: float = 1.0,
) -> dict[str, Any]:
    """Energy and CO2e a compressed model avoids over a stated deployment volume.

    From a compression sweep's table (:func:`greenai.compress.sweep`, or its ``--out`` CSV
    or JSON): the row's saving per inference against the baseline times ``inferences``,
    less what compressing (and fine-tuning) it cost; both with their uncertainties.

    Args:
        sweep: The sweep's frame (first row the baseline).
        label: The row's ``label``.
        inferences: The deployment volume (inferences served by the compressed model).
        carbon_intensity_g_per_kwh: Grid factor for CO2e; None leaves CO2e out.
        pue: Facility PUE applied to the energy avoided.

    Returns:
        ``label``, ``inferences``, ``break_even_inferences``, ``mwh_avoided`` (net of the
        one-off cost; negative when the model costs more than it saves at this volume),
        ``mwh_avoided_u``, ``co2e_avoided_kg``, ``co2e_avoided_kg_u``.

    Raises:
        ConfigError: Not a sweep's table (no ``label``), no such label, a row without a
            saving (no energy or compression figures), a negative volume or a PUE below 1.
    """
    if not (inferences >= 0 and math.isfinite(inferences)):
        raise ConfigError(f"the deployment volume must be a finite count >= 0; got {inferences}")
    if not (pue >= 1.0 and math.isfinite(pue)):
        raise ConfigError(f"pue must be >= 1; got {pue}")
    if "label" not in getattr(sweep, "columns", ()):
        raise ConfigError(
            "the sweep has no 'label' column: give the table `greenai compress --out` wrote"
        )
    rows = sweep[sweep["label"].astype(str) == label]
    if rows.empty:
        labels = ", ".join(map(str, sweep["label"].tolist()[1:])) or "none"
        raise ConfigError(f"no sweep row labelled {label!r}; rows: {labels}")
    row = rows.iloc[0]

    def num(name: str) -> float:
        value = row.get(name)
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    saved, saved_u = num("energy_saved_per_inference_j"), num("energy_saved_ci_j")
    if math.isnan(saved):
        raise ConfigError(
            f"sweep row {label!r} has no energy saving per inference (the baseline row, or a"
            " row without energy or compression figures)"
        )
    one_off = sum(v for v in (num("compress_energy_j"), num("finetune_energy_j")) if v == v)
    one_off_u = sum(
        v
        for v in (num("compress_energy_uncertainty_j"), num("finetune_energy_uncertainty_j"))
        if v == v
    )
    net_j = (saved * inferences - one_off) * pue
    net_u = ((0.0 if math.isnan(saved_u) else saved_u) * inferences + one_off_u) * pue
    kwh, kwh_u = net_j / J_PER_KWH, net_u / J_PER_KWH
    co2e = None if carbon_intensity_g_per_kwh is None else kwh * carbon_intensity_g_per_kwh / 1e3
    co2e_u = (
        None if carbon_intensity_g_per_kwh is None else kwh_u * carbon_intensity_g_per_kwh / 1e3
    )
    return {
        "label": label,
        "inferences": inferences,
        "break_even_inferences": num("break_even_inferences"),
        "mwh_avoided": kwh / 1e3,
        "mwh_avoided_u": kwh_u / 1e3,
        "co2e_avoided_kg": co2e,
        "co2e_avoided_kg_u": co2e_u,
    }
