"""Tracker carbon options end to end: cloud regions, Scope 2 tiers, hourly intensity, embodied."""

from __future__ import annotations

import json
import math
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

import greenai
from greenai.carbon.cloud import cloud_intensity
from greenai.cli import main
from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.report.frames import efficiency_rows
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU
from greenai.units import J_PER_KWH

HOURS_PER_YEAR = 365.25 * 24


class SteadyCpu(Device):
    name = "cpu-steady"
    kind = "cpu"
    method = "model"
    relative_uncertainty = 0.3

    def read(self) -> Reading:
        return Reading(power_w=20.0)


def run(seconds: float, *, gpus: int = 1, period_s: float = 0.5, **options: object) -> Measurement:
    clock = FakeClock()
    devices = [
        FakeGPU(f"gpu{i}", power_w=300.0 + 100 * i, clock=clock, seed=i) for i in range(gpus)
    ]
    with greenai.track("job", devices=devices, clock=clock, period_s=period_s, **options) as job:
        clock.advance(seconds)
    assert job.result is not None
    return job.result


def step_series(step_s: float, values: list[float], *, before_s: float) -> pd.Series:
    """A UTC step series starting ``before_s`` before now, one value per ``step_s``."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=before_s)
    index = pd.DatetimeIndex([start + timedelta(seconds=step_s * k) for k in range(len(values))])
    return pd.Series(values, index=index, name="grid")


def hand_co2e_kg(m: Measurement, series: pd.Series, step_s: float, pue: float) -> float:
    """Steady power × each step's overlap with the job × its intensity, summed by hand."""
    power_w = m.energy_j / m.duration_s  # type: ignore[operator]
    begin = datetime.fromisoformat(m.started_at).timestamp()
    end = begin + m.duration_s
    total = 0.0
    for when, g in series.items():
        lo = when.timestamp()  # type: ignore[attr-defined]
        overlap = max(0.0, min(end, lo + step_s) - max(begin, lo))
        total += overlap * power_w * pue / J_PER_KWH * g / 1000.0
    return total


# --- cloud regions and Scope 2 tiers -------------------------------------------------------


def test_cloud_region_sets_the_grid() -> None:
    m = run(2.0, cloud="gcp", region="us-central1")
    grid = cloud_intensity("gcp", "us-central1")
    assert m.carbon is not None and m.carbon.cloud == "gcp"
    assert m.carbon.carbon_intensity_g_per_kwh == grid.g_per_kwh
    assert m.co2e_kg == pytest.approx(m.energy_j / J_PER_KWH * grid.g_per_kwh / 1000)  # type: ignore[operator]


def test_bad_cloud_options_fail_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="needs region"):
        greenai.track("job", cloud="gcp", devices=[])
    with pytest.raises(ConfigError, match="pass one of them"):
        greenai.track("job", cloud="aws", region="us-east-1", country="USA", devices=[])
    job = greenai.track("job", cloud="gcp", region="mars-north1", devices=[])
    with pytest.raises(ConfigError, match="us-central1"):  # the known regions are listed
        job.start()
    assert not job.started


def test_market_factor_is_used_and_its_tier_named() -> None:
    m = run(
        3.0,
        pue=1.2,
        country="FRA",
        renewable_share=0.25,
        market_factor_g_per_kwh=450.0,
        market_factor_kind="residual_mix",
    )
    c = m.carbon
    assert c is not None and c.market_tier == "residual_mix"
    facility_kwh = m.energy_j * 1.2 / J_PER_KWH  # type: ignore[operator]
    assert c.co2e_market_kg == pytest.approx(facility_kwh * 0.75 * 450.0 / 1000)
    row = dict(efficiency_rows(m))["CO2e (market)"]
    assert "25% covered" in row and "residual-mix factor" in row and "450 g/kWh" in row
    last_resort = dict(efficiency_rows(run(1.0, country="FRA", renewable_share=0.5)))
    assert "last-resort" in last_resort["CO2e (market)"]


def test_market_factor_needs_its_kind() -> None:
    with pytest.raises(ConfigError, match="go together"):
        greenai.track("job", market_factor_g_per_kwh=300.0, devices=[])
    with pytest.raises(ConfigError, match="market_factor_kind"):
        greenai.track("job", market_factor_g_per_kwh=300.0, market_factor_kind="green", devices=[])


# --- hour-by-hour intensity ---------------------------------------------------------------


def test_series_charges_each_step_at_its_intensity_on_a_long_job() -> None:
    # 15 minutes: the timeline keeps the first 5 in 10 s buckets; 5-minute steps of a known
    # series, so the job spans four of them.
    step_s, values = 300.0, [100.0, 500.0, 50.0, 800.0, 200.0, 600.0]
    series = step_series(step_s, values, before_s=150.0)
    m = run(900.0, pue=1.5, carbon_intensity_g_per_kwh=300.0, carbon_intensity_series=series)
    assert m.co2e_series_kg is not None
    assert m.co2e_series_kg == pytest.approx(hand_co2e_kg(m, series, step_s, 1.5), rel=2e-3)
    assert m.co2e_kg is not None and not math.isclose(m.co2e_series_kg, m.co2e_kg, rel_tol=0.05)
    assert m.co2e_series_source is not None and "pandas Series 'grid'" in m.co2e_series_source
    row = dict(efficiency_rows(m))["CO2e (hour by hour)"]
    assert "series from a pandas Series 'grid'" in row


def test_series_from_a_csv(tmp_path: Path) -> None:
    series = step_series(60.0, [100.0, 400.0, 100.0, 400.0], before_s=30.0)
    path = tmp_path / "grid.csv"
    frame = pd.DataFrame({"time": series.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "g": series})
    frame.to_csv(path, index=False)
    m = run(120.0, carbon_intensity_series=path)
    assert m.co2e_series_kg == pytest.approx(hand_co2e_kg(m, series, 60.0, 1.0), rel=2e-3)
    assert m.co2e_series_source is not None and str(path) in m.co2e_series_source


def test_a_bad_series_fails_at_construction_or_at_start_before_measuring(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="CSV path"):
        greenai.track("job", carbon_intensity_series=[1, 2, 3])
    # the file is read at start(), not by the constructor, and fails before sampling
    for series, message in [
        (tmp_path / "none.csv", "does not exist"),
        (pd.Series([1.0, 2.0]), "DatetimeIndex"),
    ]:
        job = greenai.track("job", devices=[], carbon_intensity_series=series)
        with pytest.raises(ConfigError, match=message):
            job.start()
        assert not job.running and not job.started
        assert not [t for t in threading.enumerate() if t.name.startswith("greenai-")]


def test_a_series_that_misses_the_job_is_a_note_not_an_exception() -> None:
    old = step_series(3600.0, [100.0, 200.0], before_s=10 * 86400)
    m = run(2.0, carbon_intensity_series=old)
    assert m.status == "completed" and m.energy_j is not None
    assert m.co2e_series_kg is None
    note = next(n for n in m.notes if n.startswith("hourly CO2e not computed"))
    assert "covers" in note
    assert dict(efficiency_rows(m))["CO2e (hour by hour)"].endswith(f"({note})")


# --- embodied emissions ---------------------------------------------------------------------


def test_embodied_co2e_is_charged_by_gpu_hours_and_kept_apart() -> None:
    m = run(60.0, gpus=2, carbon_intensity_g_per_kwh=400.0)
    hours = 60.0 / 3600
    # Luccioni et al. 2023: 150 kg per GPU, 2500 kg per 8-GPU server; 6 years of service.
    expected = (2 * 150.0 + 2 / 8 * 2500.0) * hours / (6 * HOURS_PER_YEAR)
    assert m.embodied_co2e_kg == pytest.approx(expected, rel=1e-9)
    assert m.co2e_kg == pytest.approx(m.energy_j / J_PER_KWH * 400.0 / 1000)  # type: ignore[operator]
    assert m.embodied_source is not None and "Luccioni" in m.embodied_source
    assert "class estimate" in m.embodied_source
    row = dict(efficiency_rows(m))["CO2e (embodied)"]
    assert "not added" in row and "class estimates: Luccioni et al. 2023" in row


def test_no_gpu_no_embodied_figure() -> None:
    clock = FakeClock()
    with greenai.track("cpu", devices=[SteadyCpu()], clock=clock, period_s=0.5) as job:
        clock.advance(5.0)
    m = job.result
    assert m is not None and m.embodied_co2e_kg is None and m.embodied_source is None
    assert "CO2e (embodied)" not in dict(efficiency_rows(m))


# --- records ----------------------------------------------------------------------------------


def test_new_fields_round_trip_and_older_records_still_load() -> None:
    series = step_series(60.0, [100.0, 200.0, 300.0], before_s=30.0)
    m = run(20.0, carbon_intensity_series=series)
    back = Measurement.from_dict(json.loads(m.to_json()))
    for field in ("co2e_series_kg", "co2e_series_source", "embodied_co2e_kg", "embodied_source"):
        assert getattr(back, field) == getattr(m, field) is not None
    assert back.devices == m.devices
    old = m.to_dict()
    for field in ("co2e_series_kg", "co2e_series_source", "embodied_co2e_kg", "embodied_source"):
        del old[field]
    for device in old["devices"]:
        del device["scope"]
    before = Measurement.from_dict(old)
    assert before.co2e_series_kg is None and before.embodied_co2e_kg is None
    assert [d.scope for d in before.devices] == ["machine"]


def test_options_are_known_and_kept() -> None:
    job = greenai.track("job", cloud="azure", region="westeurope", devices=[])
    assert job.options["cloud"] == "azure"
    assert job.accounting.cloud == "azure"
    for name in (
        "cloud",
        "market_factor_g_per_kwh",
        "market_factor_kind",
        "carbon_intensity_series",
        "scope",
    ):
        assert name in greenai.tracker.OPTIONS and name in job.options


# --- greenai run ---------------------------------------------------------------------------


def test_run_cli_cloud_and_series(tmp_path: Path) -> None:
    series = step_series(600.0, [150.0, 250.0, 350.0], before_s=300.0)
    path = tmp_path / "grid.csv"
    frame = pd.DataFrame({"time": series.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "g": series})
    frame.to_csv(path, index=False)
    db = tmp_path / "r.db"
    argv = ["run", "--store", str(db), "--cloud", "gcp", "--region", "us-central1"]
    argv += ["--carbon-intensity-series", str(path), "--", sys.executable, "-c", "pass"]
    assert main(argv) == 0
    with RunStore(db) as store:
        m = store.get("latest").measurement
    assert m is not None and m.carbon is not None and m.carbon.cloud == "gcp"
    if m.energy_j:  # a machine with an energy source: charged by the series too
        assert m.co2e_series_kg is not None and str(path) in (m.co2e_series_source or "")


def test_run_cli_refuses_an_unknown_cloud(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--store", str(tmp_path / "r.db"), "--cloud", "ovh", "--", "true"])
    assert exit_info.value.code == 2
    assert "--cloud" in capsys.readouterr().err


def test_a_distributed_job_gets_the_embodied_figure_of_all_its_gpus() -> None:
    import torch.distributed as dist

    series = step_series(60.0, [100.0, 200.0, 300.0], before_s=30.0)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        m = run(30.0, gpus=2, carbon_intensity_series=series)
    finally:
        dist.destroy_process_group()
    assert m.job is not None and m.job.scope == "job"
    expected = (2 * 150.0 + 2 / 8 * 2500.0) * (30.0 / 3600) / (6 * HOURS_PER_YEAR)
    assert m.embodied_co2e_kg == pytest.approx(expected, rel=1e-6)
    # The job's hourly figure would need every rank's timeline: a note, not rank 0's alone.
    assert m.co2e_series_kg is None
    assert any(n.startswith("hourly CO2e not computed for the whole job") for n in m.notes)
