"""What greenai prints and the paths it takes can never be turned against the user (issue 28)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenai
from greenai.cli import main
from greenai.errors import ConfigError, MeasurementWarning
from greenai.safe_output import DISPLAY_NAME_MAX
from greenai.store import RunStore
from greenai.store.errors import StoreError
from greenai.testing import FakeClock, FakeGPU

HOSTILE = "train\x1b]0;pwned\x07\x1b[2J<script>alert(1)</script>"


def _stored(db: Path, name: str) -> str:
    clock = FakeClock()
    with greenai.track(name, devices=[FakeGPU(clock=clock)], clock=clock, store=db) as job:
        clock.advance(1.0)
        job.step()
    assert job.run_id is not None
    return job.run_id


@pytest.mark.parametrize("fmt", ["text", "csv"])
def test_compare_never_prints_a_run_names_escape_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    db = tmp_path / "runs.db"
    a, b = _stored(db, HOSTILE), _stored(db, HOSTILE + "2")
    assert main(["compare", a, b, "--store", str(db), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "train" in out or fmt == "csv"  # the CSV names runs by id


def test_a_fifo_is_refused_as_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "runs.db"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        RunStore(fifo).open()
    for command in (["runs"], ["report", "latest"], ["export", "latest"]):
        assert main([*command, "--store", str(fifo)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a regular file" in err


def test_a_huge_run_name_is_cut_for_display_and_whole_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    name = "n" * 100_000
    run_id = _stored(db, name)
    for fmt in ("text", "md"):
        assert main(["report", run_id, "--store", str(db), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "n" * (DISPLAY_NAME_MAX + 1) not in out and "n" * 50 in out
    html = tmp_path / "r.html"
    assert (
        main(["report", run_id, "--store", str(db), "--format", "html", "--output", str(html)]) == 0
    )
    assert "n" * (DISPLAY_NAME_MAX + 1) not in html.read_text()
    capsys.readouterr()
    assert main(["report", run_id, "--store", str(db), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == name


def test_a_full_disk_at_the_end_is_a_note_on_the_kept_measurement(tmp_path: Path) -> None:
    class Full(RunStore):
        def finish_run(self, *args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    clock = FakeClock()
    job = greenai.track(devices=[FakeGPU(clock=clock)], clock=clock, store=Full(tmp_path / "f.db"))
    with pytest.warns(MeasurementWarning, match="No space left"):
        with job:
            clock.advance(1.0)
    assert job.result.energy_j is not None and job.result.energy_j > 0
    assert any("run store" in n and "No space left" in n for n in job.result.notes)


def test_an_intensity_csv_with_extra_named_columns_is_read(tmp_path: Path) -> None:
    from greenai.carbon.series import load_intensity_series

    csv = tmp_path / "grid.csv"
    csv.write_text(
        "datetime,zone,intensity,source\n"
        "2026-11-29T14:00:00Z,DE,400,estimated\n"
        "2026-11-29T15:00:00Z,DE,300,measured\n"
    )
    series = load_intensity_series(csv)
    assert list(series.g_per_kwh) == [400.0, 300.0]
    two = tmp_path / "two.csv"
    two.write_text("datetime,a,b\n2026-11-29T14:00:00Z,1,2\n2026-11-29T15:00:00Z,3,4\n")
    with pytest.raises(ConfigError, match="value_column"):
        load_intensity_series(two)  # two numeric columns: which one is ambiguous


def test_compress_of_a_module_that_does_not_compile_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_model.py").write_text("def build(:\n")
    (tmp_path / "torch_pruning.py").write_text("raise SystemExit('shadowed the installed one')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from greenai.cli import main; sys.exit(main())",
         "compress", "broken_model:build", "--input-shape", "4"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "syntax error" in done.stderr


def test_the_working_directory_never_shadows_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenai.compress.cli import load_object

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "json.py").write_text("raise RuntimeError('shadowed')\n")
    (tmp_path / "my_model.py").write_text("import json\nVALUE = json.dumps(1)\n")
    assert load_object("my_model:VALUE") == "1"
    assert sys.path[-1] == str(tmp_path)


def test_the_model_card_escapes_html_in_a_run_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    run_id = _stored(db, "<script>alert(1)</script>")
    assert main(["report", run_id, "--store", str(db), "--format", "model-card"]) == 0
    out = capsys.readouterr().out
    assert "<script>" not in out and "&lt;script&gt;" in out
