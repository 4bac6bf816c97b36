from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from greenai.progress import progress, progress_enabled, steps


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENAI_NO_PROGRESS", raising=False)
    stream = Terminal()
    with progress(4, "training on digits", stream=stream) as advance:
        for _ in range(4):
            advance(1)
    out = stream.getvalue()
    assert "training on digits" in out and "4/4" in out


def test_nothing_is_drawn_off_a_terminal_or_when_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    piped = io.StringIO()
    with progress(3, "work", stream=piped) as advance:
        advance(3)
    assert piped.getvalue() == ""
    monkeypatch.setenv("GREENAI_NO_PROGRESS", "1")
    assert not progress_enabled(Terminal())
    terminal = Terminal()
    with progress(3, "work", stream=terminal) as advance:
        advance(3)
    assert terminal.getvalue() == ""


def test_steps_show_each_unit_and_the_count_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GREENAI_NO_PROGRESS", raising=False)
    stream = Terminal()
    with steps(2, "bench suite smoke", stream=stream) as bar:
        bar.begin("gemm-fp32-64")
        bar.note("gemm-fp32-64 failed: out of memory")
        bar.begin("mlp-train")
    out = stream.getvalue()
    assert "mlp-train" in out and "2/2" in out and "failed: out of memory" in out


def test_steps_of_unknown_count_show_a_spinner_and_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GREENAI_NO_PROGRESS", raising=False)
    stream = Terminal()
    with steps(None, "compression sweep: 3 rows", stream=stream):
        pass
    out = stream.getvalue()
    assert "compression sweep: 3 rows" in out and "0:00:0" in out


def test_steps_off_a_terminal_are_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = io.StringIO()
    with steps(2, "bench", stream=piped) as bar:
        bar.begin("a")
        bar.note("a failed: no")
        bar.begin("b")
    assert piped.getvalue() == "a ...\na failed: no\nb ...\n"


def test_bench_and_compress_show_progress_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenai.cli import main

    monkeypatch.delenv("GREENAI_NO_PROGRESS", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["bench", "--suite", "smoke", "--only", "gemm-fp32", "--no-store"]
    assert main(argv) == 0
    assert "gemm-fp32-64" in terminal.getvalue() and "1/1" in terminal.getvalue()
    terminal.seek(0)  # truncate() alone keeps the position: the next write pads with NULs
    terminal.truncate(0)
    argv = ["compress", "greenai.demo:build_mlp", "--input-shape", "4,64"]
    argv += ["--methods", "l1:0.5", "--repeats", "2", "--out", str(tmp_path / "t.csv")]
    assert main(argv) == 0
    shown = terminal.getvalue()
    assert "\0" not in shown
    assert "compression sweep: 2 rows" in shown  # the bar's label as it starts
    assert "measuring in interleaved rounds" in shown  # the stage it ends on
    assert (tmp_path / "t.csv").exists()
    capsys.readouterr()
