from __future__ import annotations

import math

from greenai.measurement import Measurement
from greenai.report import (
    devices_frame,
    efficiency_rows,
    phases_frame,
    steps_frame,
    summary_frame,
)
from greenai.report.frames import MISSING, format_number, ordered_phases


def test_frames_delegate_to_measurement(run) -> None:
    m = run.measurement
    assert summary_frame(m).shape[0] == 1
    assert summary_frame(m)["methods"].iloc[0] == "counter,power"
    assert list(devices_frame(m)["method"]) == ["counter", "power"]
    assert set(phases_frame(m)["name"]) >= {"epoch", "epoch/forward", "(other)"}
    steps = steps_frame(m)
    assert len(steps) == 6
    assert math.isclose(steps["energy_j"].sum(), m.steps.total_energy_j)


def test_efficiency_rows_carry_method_and_uncertainty(run) -> None:
    m = run.measurement
    rows = dict(efficiency_rows(m))
    energy = rows["Energy (IT)"]
    assert f"{format_number(m.energy_j)} J" in energy
    assert "±" in energy and "measured: counter + power" in energy
    for label in ("J/TFLOP", "kWh/TFLOP (IT)", "kWh/TFLOP (PUE 1.2)", "J/sample", "J/token"):
        assert "±" in rows[label] and "[measured" in rows[label], label
    assert "FRA" in rows["CO2e (location)"]
    assert "codecarbon" in rows["CO2e (location)"]
    assert "g/kWh" in rows["CO2e (location)"]
    assert rows["TFLOP/s"].endswith("TFLOP/s")


def test_missing_figures_are_dashes_with_reasons(run, model_only: Measurement) -> None:
    rows = dict(efficiency_rows(run.measurement))
    assert rows["CO2e (market)"].startswith(MISSING)
    assert "renewable_share" in rows["CO2e (market)"]
    assert rows["Water"].startswith(MISSING)
    assert rows["MFU"] == f"{MISSING} ({run.measurement.notes[0]})"

    rows = dict(efficiency_rows(model_only))
    for label in ("Work", "J/TFLOP", "kWh/TFLOP (IT)", "TFLOP/s", "CO2e (location)", "Steps"):
        assert rows[label].startswith(MISSING), label
        assert rows[label].split()[0] != "0"
    assert "FLOPs" in rows["J/TFLOP"]


def test_model_figures_are_labelled_estimated(model_only: Measurement) -> None:
    rows = dict(efficiency_rows(model_only))
    assert "estimated (model)" in rows["Energy (IT)"]
    assert "measured" not in rows["Energy (IT)"]
    assert rows["Methods"] == "estimated (model)"


def test_nothing_measured_reads_dashes() -> None:
    m = Measurement(
        name="empty",
        status="completed",
        started_at="2025-01-01T00:00:00+00:00",
        duration_s=1.0,
        energy_j=None,
        uncertainty_j=None,
        avg_power_w=None,
        peak_power_w=None,
        notes=("no energy source was measured; only time is reported",),
    )
    rows = dict(efficiency_rows(m))
    for label in ("Energy (IT)", "Average power", "Facility energy (PUE 1)", "CO2e (location)"):
        assert rows[label].startswith(MISSING), label
        assert "no energy source" in rows[label]


def test_parents_come_before_children(run) -> None:
    names = [p.name for p in ordered_phases(run.measurement)]
    assert names.index("epoch") < names.index("epoch/forward")
    assert names[-1] == "(other)"
