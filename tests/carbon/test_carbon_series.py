from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from greenai.carbon.series import (
    co2e_series,
    load_intensity_series,
    start_hour_table,
    total_energy_curve,
)
from greenai.errors import ConfigError

KWH = 3.6e6  # J
UTC = timezone.utc
START = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)


@pytest.fixture
def three_hours(tmp_path: Path) -> Path:
    path = tmp_path / "grid.csv"
    path.write_text(
        "time,carbon_intensity_g_per_kwh\n"
        "2026-11-29T10:00:00Z,100\n"
        "2026-11-29T11:00:00Z,300\n"
        "2026-11-29T12:00:00Z,200\n"
    )
    return path


def test_steady_hour_across_a_step_is_charged_at_both_intensities(three_hours: Path) -> None:
    # 1 kW from 10:30 to 11:30: 0.5 kWh at 100 g/kWh + 0.5 kWh at 300 g/kWh = 200 g.
    t = np.arange(0, 3601, 60.0)
    result = co2e_series(t, 1000.0 * t, START, three_hours)
    assert result.co2e_kg == pytest.approx(0.200)
    assert result.facility_energy_kwh == pytest.approx(1.0)
    assert result.mean_g_per_kwh == pytest.approx(200.0)
    assert result.interval_co2e_kg.shape == (60,)
    assert result.interval_co2e_kg[0] == pytest.approx(60 * 1000 / KWH * 100 / 1000)
    assert result.interval_co2e_kg[-1] == pytest.approx(60 * 1000 / KWH * 300 / 1000)
    assert str(three_hours) in result.source


def test_a_coarse_timeline_is_split_at_the_hour_and_pue_applies(three_hours: Path) -> None:
    # 0.25 kWh in the first half hour (at 100 g), 1 kWh in the second (at 300 g); PUE 1.2.
    t = np.array([0.0, 1800.0, 3600.0])
    e = np.array([0.0, 0.25 * KWH, 1.25 * KWH])
    result = co2e_series(t, e, START, three_hours, pue=1.2)
    assert result.interval_co2e_kg == pytest.approx([1.2 * 0.025, 1.2 * 0.300])
    assert result.co2e_kg == pytest.approx(1.2 * 0.325)
    # One interval straddling 11:00 is split at it, the energy spread evenly in time.
    single = co2e_series([0.0, 3600.0], [0.0, 1.0 * KWH], START, three_hours)
    assert single.co2e_kg == pytest.approx(0.5 * 0.100 + 0.5 * 0.300)


def test_the_last_value_holds_one_step_and_no_further(three_hours: Path) -> None:
    late = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    assert co2e_series([0, 1800], [0, KWH], late, three_hours).co2e_kg == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="covers 2026-11-29T10:00:00\\+00:00 to 2026-11-29T13"):
        co2e_series([0, 3600], [0, KWH], late, three_hours)
    early = datetime(2026, 11, 29, 9, 59, tzinfo=UTC)
    with pytest.raises(ConfigError, match="the job ran 2026-11-29T09:59"):
        co2e_series([0, 60], [0, KWH], early, three_hours)


def test_had_it_started_at_another_hour() -> None:
    hours = pd.date_range("2026-11-29", periods=24, freq="h", tz="UTC")
    series = pd.Series(10.0 * np.arange(24), index=hours, name="operator")
    start = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    t, e = np.array([0.0, 1800.0]), np.array([0.0, KWH])  # 1 kWh within one hour
    rows = start_hour_table(t, e, start, series)
    assert [r.started_at_utc.hour for r in rows] == list(range(24))
    assert [r.co2e_kg for r in rows] == pytest.approx([0.01 * h for h in range(24)])
    assert [r.actual for r in rows].index(True) == 10
    assert rows[5].change == pytest.approx(0.05 / 0.10 - 1)
    assert rows[0].change == pytest.approx(-1.0)


def test_start_hour_rows_outside_the_series_say_so(three_hours: Path) -> None:
    rows = start_hour_table([0, 600], [0, KWH], START, three_hours)
    covered = [r.started_at_utc.hour for r in rows if r.co2e_kg is not None]
    assert covered == [10, 11, 12]
    assert rows[11].co2e_kg == pytest.approx(0.3)


def test_series_and_csv_zones(tmp_path: Path) -> None:
    offset = tmp_path / "cet.csv"
    offset.write_text("when,g\n2026-11-29T11:00:00+01:00,100\n2026-11-29T12:00:00+01:00,300\n")
    naive_utc = tmp_path / "naive.csv"
    naive_utc.write_text("datetime_utc,g\n2026-11-29 10:00,100\n2026-11-29 11:00,300\n")
    naive = pd.Series(
        [100.0, 300.0], index=pd.to_datetime(["2026-11-29 10:00", "2026-11-29 11:00"])
    )
    for source in (offset, naive_utc, naive):
        series = load_intensity_series(source)
        assert series.first_utc == datetime(2026, 11, 29, 10, tzinfo=UTC)
        assert list(series.g_per_kwh) == [100.0, 300.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,g\n2026-11-29 10:00,100\n2026-11-29 11:00,300\n", "no time zone"),
        ("time,g\n2026-11-29T10:00Z,100\n2026-11-29T10:00Z,300\n", "share the timestamp"),
        ("time,g\n2026-11-29T10:00Z,100\n2026-11-29T11:00Z,-3\n", "row 2 has -3"),
        ("time,g\n2026-11-29T10:00Z,100\n2026-11-29T11:00Z,n/a\n", "finite number"),
        ("time,g\n2026-11-29T10:00Z,100\n", "at least two rows"),
        ("time,a,b\n2026-11-29T10:00Z,1,2\n2026-11-29T11:00Z,1,2\n", "carbon_intensity_g_per_kwh"),
        ("time,g\nyesterday,100\ntoday,300\n", "ISO 8601"),
    ],
)
def test_bad_csv_files_fail_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_intensity_series(path)


def test_missing_file_and_bad_inputs(three_hours: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_intensity_series(three_hours.parent / "absent.csv")
    with pytest.raises(ConfigError, match="DatetimeIndex"):
        load_intensity_series(pd.Series([1.0, 2.0]))
    with pytest.raises(ConfigError, match="zone"):
        co2e_series([0, 1], [0, 1], datetime(2026, 11, 29, 10, 30), three_hours)
    with pytest.raises(ConfigError, match="increase strictly"):
        co2e_series([0, 0], [0, 1], START, three_hours)
    with pytest.raises(ConfigError, match="pue"):
        co2e_series([0, 1], [0, 1], START, three_hours, pue=0.5)


def test_total_energy_curve_sums_devices_on_their_own_clocks() -> None:
    timeline = pd.DataFrame(
        {
            "t_s": [0.0, 2.0, 0.0, 1.0, 2.0],
            "device": ["gpu0", "gpu0", "cpu", "cpu", "cpu"],
            "energy_j": [0.0, 200.0, 0.0, 10.0, 20.0],
        }
    )
    t, e = total_energy_curve(timeline)
    assert list(t) == [0.0, 1.0, 2.0]
    assert list(e) == pytest.approx([0.0, 110.0, 220.0])


def _series_around_now(path: Path, hours: int = 3) -> Path:
    now = pd.Timestamp.now(tz="UTC").floor("h")
    stamps = [now + pd.Timedelta(hours=h) for h in range(-hours, hours + 1)]
    rows = "".join(f"{s.isoformat()},{100 + 10 * i}\n" for i, s in enumerate(stamps))
    path.write_text("time,carbon_intensity_g_per_kwh\n" + rows)
    return path


def test_cli_run_charges_the_stored_timeline_hour_by_hour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from greenai.cli import main

    series = _series_around_now(tmp_path / "grid.csv")
    db = str(tmp_path / "runs.db")
    code = "import time; time.sleep(0.3)"
    argv = ["run", "--store", db, "--carbon-intensity-series", str(series), "--"]
    assert main([*argv, sys.executable, "-c", code]) == 0
    err = capsys.readouterr().err
    assert "CO2e hour by hour:" in err and "not computed" not in err
    assert "| start (UTC) | CO2e (g) | vs. actual |" in err and "(actual)" in err


def test_cli_run_refuses_a_bad_series_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenai.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("time,g\n2026-11-29 10:00,1\n2026-11-29 11:00,2\n")
    marker = tmp_path / "ran"
    argv = ["run", "--store", str(tmp_path / "r.db"), "--carbon-intensity-series", str(bad)]
    assert main([*argv, "--", "touch", str(marker)]) == 2
    assert "no time zone" in capsys.readouterr().err
    assert not marker.exists()


def test_total_energy_curve_leaves_the_baseline_before_the_start_out() -> None:
    timeline = pd.DataFrame(
        {"t_s": [-2.0, 0.0, 2.0], "device": ["gpu0"] * 3, "energy_j": [-100.0, 0.0, 100.0]}
    )
    t, e = total_energy_curve(timeline)
    assert list(t) == [0.0, 2.0] and list(e) == [0.0, 100.0]
