from __future__ import annotations

import subprocess
import sys

import pytest

from greenai.cli import main


def test_devices_lists_each_source_and_its_method(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "cpu-model" in out and "model" in out
    assert "memory-model" in out
    assert "sampler: " in out  # which sampling loop reads RAPL/NVML here


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nosuchcommand"])
    assert exc.value.code == 2


def test_bad_values_exit_2_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--epochs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("greenai: error:") and "epochs" in err and "\n" not in err


def test_demo_trains_and_reports_energy() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "greenai", "demo", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo-digits-mlp: completed" in proc.stdout
    assert "J/step" in proc.stdout and "phase forward" in proc.stdout
    assert "[model]" in proc.stdout or "[counter" in proc.stdout
