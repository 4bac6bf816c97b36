from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

import greenai
from greenai.cli import main
from greenai.devices.cpu_model import CpuModel
from greenai.report.model_card import CODECARBON_COLUMNS, METHOD_COLUMNS
from greenai.testing import FakeClock, FakeGPU


def stored(tmp_path: Path, **options: object) -> tuple[Path, greenai.Measurement]:
    clock = FakeClock()
    gpu = FakeGPU(power_w=400.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    db = tmp_path / "runs.db"
    with greenai.track("finetune", devices=[gpu], clock=clock, store=db, **options) as job:
        for _ in range(3):
            clock.advance(10.0)
            job.step()
    return db, job.result


def test_model_card_block_is_hf_metadata_with_grams_and_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, m = stored(tmp_path, country="FRA", meta={"training_type": "fine-tuning"})
    assert main(["report", "latest", "--store", str(db), "--format", "model-card"]) == 0
    out = capsys.readouterr().out
    front, _, prose = out.partition("---\n\n")
    card = yaml.safe_load(front.strip().strip("-"))["co2_eq_emissions"]
    assert card["emissions"] == pytest.approx(m.co2e_kg * 1000, rel=1e-5)  # grams
    assert card["training_type"] == "fine-tuning"
    assert card["geographical_location"] == "FRA"
    assert card["hardware_used"] == "1 GPU (gpu0)"
    assert "measured (counter) for gpu0" in card["source"]
    assert "national electricity mix" in card["source"]
    assert "kWh" in prose and "measured (counter)" in prose and "g CO2e" in prose


def test_model_card_without_a_grid_says_why_instead_of_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = stored(tmp_path)
    assert main(["report", "--store", str(db), "--format", "model-card"]) == 0
    out = capsys.readouterr().out
    card = yaml.safe_load(out.partition("---\n\n")[0].strip().strip("-"))["co2_eq_emissions"]
    assert "emissions" not in card and "training_type" not in card
    assert "# emissions: not computed" in out and "No grid intensity was given" in out


def test_model_card_marks_estimates(tmp_path: Path) -> None:
    from greenai.report.model_card import model_card

    with greenai.track("est", devices=[CpuModel()], carbon_intensity_g_per_kwh=300.0) as job:
        pass
    text = model_card(job.result)
    assert "estimated (model)" in text and "not from a sensor" in text


def test_codecarbon_csv_has_codecarbon_columns_and_says_each_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, m = stored(tmp_path, carbon_intensity_g_per_kwh=200.0)
    out_file = tmp_path / "emissions.csv"
    argv = ["report", "--store", str(db), "--format", "codecarbon-csv", "--output", str(out_file)]
    assert main(argv) == 0
    text = out_file.read_text()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == CODECARBON_COLUMNS + METHOD_COLUMNS
    (row,) = list(reader)
    assert float(row["energy_consumed"]) == pytest.approx(m.energy_kwh)
    assert float(row["gpu_energy"]) == pytest.approx(m.energy_kwh)
    assert float(row["emissions"]) == pytest.approx(m.co2e_kg)
    assert float(row["duration"]) == pytest.approx(30.0)
    assert row["gpu_energy_method"] == "counter" and row["energy_consumed_method"] == "counter"
    assert row["cpu_energy"] == "" and row["cpu_energy_method"] == ""
    assert float(row["energy_consumed_uncertainty"]) > 0
    # the machine columns, read as CodeCarbon reads them (its own functions, where it has them)
    import platform

    import psutil

    codecarbon_util = pytest.importorskip("codecarbon.core.util")
    assert row["os"] == platform.platform()
    assert row["python_version"] == platform.python_version()
    assert int(row["cpu_count"]) == codecarbon_util.count_cpus()
    assert float(row["ram_total_size"]) == pytest.approx(psutil.virtual_memory().total / 1024**3)
    assert row["cpu_model"] not in ("", "cpu-model")
    # pandas (what codecarbon users read it with) sees the same columns
    import pandas as pd

    frame = pd.read_csv(out_file)
    assert list(frame.columns)[: len(CODECARBON_COLUMNS)] == list(CODECARBON_COLUMNS)


def test_codecarbon_columns_match_the_installed_codecarbon() -> None:
    import dataclasses

    emissions_data = pytest.importorskip("codecarbon.output_methods.emissions_data")
    fields = [f.name for f in dataclasses.fields(emissions_data.EmissionsData)]
    assert list(CODECARBON_COLUMNS) == fields


def test_codecarbon_csv_cells_are_spreadsheet_safe(tmp_path: Path) -> None:
    from greenai.report.model_card import codecarbon_csv

    with greenai.track("=HYPERLINK(1)", devices=[]) as job:
        pass
    (row,) = csv.DictReader(io.StringIO(codecarbon_csv(job.result)))
    assert row["project_name"] == "'=HYPERLINK(1)"
