from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from greenai.cli import main
from greenai.errors import ConfigError
from greenai.report import export_tables, run_tables, tables_export


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_every_table_round_trips(run, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    paths = export_tables(
        run.measurement, tmp_path / fmt, fmt, timeline=run.timeline, phase_spans=run.phase_spans
    )
    names = {p.stem for p in paths}
    assert names == {"summary", "devices", "phases", "steps", "timeline", "phase_spans"}
    read = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt]
    tables = run_tables(run.measurement, run.timeline, run.phase_spans)
    for path in paths:
        back = read(path)
        want = tables[path.stem]
        assert list(back.columns) == list(want.columns)
        assert len(back) == len(want)
    devices = read(tmp_path / fmt / f"devices.{fmt}")
    assert devices["energy_j"].sum() == pytest.approx(run.measurement.energy_j)


def test_bad_format_and_missing_pyarrow_say_what_to_do(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="csv, json, parquet"):
        export_tables(run.measurement, tmp_path, "xlsx")
    monkeypatch.setattr(tables_export, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"greenai\[parquet\]"):
        export_tables(run.measurement, tmp_path, "parquet")


def test_cli_export_writes_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "runs.db")
    assert main(["run", "--store", db, "--name", "x", "--", sys.executable, "-c", "1"]) == 0
    capsys.readouterr()
    assert main(["export", "--store", db, "--format", "json", "--dir", str(tmp_path / "e")]) == 0
    written = capsys.readouterr().out.split()
    assert {Path(p).name for p in written} >= {"summary.json", "timeline.json"}
    assert pd.read_json(tmp_path / "e" / "summary.json")["name"][0] == "x"
    assert main(["export", "nosuchrun", "--store", db]) == 2
