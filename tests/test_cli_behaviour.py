"""Every command behaves: versions, formats, I/O problems, read-only listings, safe output."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenai
from greenai.cli import main
from greenai.store import RunStore
from greenai.testing import FakeGPU
from greenai.tracker import Tracker


def track(db: Path, name: str) -> str:
    with Tracker(name, devices=[FakeGPU()], store=db, meta={"lr": 3e-4}) as job:
        job.step(samples=8)
    assert job.run_id is not None
    return job.run_id


def one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("greenai: error:") and "\n" not in err, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"greenai {greenai.__version__}"


def test_runs_as_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    ids = [track(db, "a"), track(db, "=HYPERLINK(1)")]
    assert main(["runs", "--store", str(db), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ids[::-1]
    assert rows[0]["name"] == "=HYPERLINK(1)" and rows[0]["energy_j"] > 0
    assert main(["runs", "--store", str(db), "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["id"] for r in table] == ids[::-1]
    assert table[0]["name"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    assert float(table[0]["energy_j"]) > 0


def test_greenai_run_names_the_script_prints_the_id_and_keeps_command_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    script = tmp_path / "train.py"
    script.write_text("import sys\nsys.exit(3)\n")
    assert main(["run", "--store", str(db), "--", sys.executable, str(script), "--lr", "3"]) == 3
    err = capsys.readouterr().err
    with RunStore(db) as store:
        run = store.get("latest")
    assert run.name == "train.py" and f"greenai: run {run.id} in {db}" in err
    assert run.exit_code == 3 and run.command is not None and run.command.endswith("--lr 3")
    assert main(["report", run.id, "--store", str(db), "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["run"]["id"] == run.id and record["run"]["exit_code"] == 3
    assert record["run"]["host"] == run.host and record["run"]["command"] == run.command
    assert record["run"]["meta"]["command"] == run.command and record["name"] == "train.py"
    assert main(["report", run.id, "--store", str(db), "--format", "csv"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["run_id"] == run.id and row["exit_code"] == "3" and row["host"] == run.host
    assert row["command"] == run.command and json.loads(row["meta"])["exit_code"] == 3


def test_report_json_carries_the_meta_of_a_tracked_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    run_id = track(db, "job")
    assert main(["report", run_id, "--store", str(db), "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    meta = record["run"]["meta"]
    # the user's meta, and the host it ran on (greenai.host, recorded with every stored run)
    assert {k: v for k, v in meta.items() if k != "host"} == {"lr": 3e-4}
    assert meta["host"]["python_version"] and record["run"]["exit_code"] is None


def test_listings_create_nothing_and_say_whether_filters_excluded_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GREENAI_HOME", "~/greenai-home")
    assert main(["runs"]) == 0
    assert "no runs stored yet" in capsys.readouterr().out
    assert main(["report"]) == 2
    one_line_error(capsys, "no runs")
    assert main(["compare", "latest"]) == 2
    capsys.readouterr()
    assert list(tmp_path.iterdir()) == []  # no folder, no file
    track(tmp_path / "greenai-home" / "runs.db", "job")  # ~ expanded: the default store
    assert main(["runs", "--name", "other"]) == 0
    assert capsys.readouterr().out.strip() == "no runs match these filters"
    assert main(["runs"]) == 0
    assert "job" in capsys.readouterr().out


def test_long_names_are_cut_in_listings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    track(db, "n" * 300)
    assert main(["runs", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "n" * 39 + "…" in out and "n" * 41 not in out
    assert max(len(line) for line in out.splitlines()) < 200


def test_terminal_output_strips_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    track(db, "evil\x1b]0;pwned\x07\x1b[2Jname")
    for args in (["runs"], ["report", "latest"], ["report", "latest", "--format", "csv"]):
        assert main([*args, "--store", str(db)]) == 0
        out = capsys.readouterr().out
        assert "evil]0;pwned[2Jname" in out and "\x1b" not in out and "\x07" not in out, args
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["report", "latest", "--store", str(db)]) == 0
    coloured = capsys.readouterr().out
    assert "\x1b[" in coloured  # colour is still on...
    assert "\x1b]" not in coloured and "\x1b[2J" not in coloured and "\x07" not in coloured


def test_markdown_report_escapes_html_in_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    track(db, "<img src=x onerror=alert(1)>")
    assert main(["report", "latest", "--store", str(db), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out and "<img" not in out


def test_exported_csv_neutralises_formulas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    track(db, "@SUM(A1:A9)")
    assert main(["export", "latest", "--store", str(db), "--dir", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    (row,) = csv.DictReader((tmp_path / "out" / "summary.csv").open())
    assert row["name"] == "'@SUM(A1:A9)"


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("{tmp}", "is a folder"),
        ("{tmp}/no/such/folder/r.json", "does not exist"),
        ("/dev/full", "No space left"),
    ],
)
def test_report_output_problems_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, words: str
) -> None:
    if output == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is Linux's full disk")
    db = tmp_path / "runs.db"
    track(db, "job")
    target = output.format(tmp=tmp_path)
    assert main(["report", "--store", str(db), "--format", "json", "--output", target]) == 2
    one_line_error(capsys, words)


def test_export_into_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    track(db, "job")
    (tmp_path / "taken").write_text("")
    assert main(["export", "--store", str(db), "--dir", str(tmp_path / "taken")]) == 2
    one_line_error(capsys, "is a file")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="/dev/full is Linux's full disk")
def test_stdout_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    for i in range(3):
        track(db, f"job{i}")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "greenai", "runs", "--store", str(db), "--format", "json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "No space left" in proc.stderr, proc.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    track(db, "job")
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenai", "runs", "--store", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before greenai writes (as `| head -1` after a line)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 2
    assert "Traceback" not in err and "Exception ignored" not in err and err == ""


def test_json_nested_100000_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["compare", str(deep), str(deep)]) == 2
    one_line_error(capsys, "nested too deeply")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "soon"])
@pytest.mark.parametrize("option", ["--period", "--checkpoint"])
def test_infinite_or_nonpositive_seconds_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--store", str(tmp_path / "r.db"), f"{option}={value}", "--", "true"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "finite" in err and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()  # refused before anything ran


def test_compress_refuses_period_inf(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compress", "greenai.demo:build_mlp", "--input-shape", "4,64", "--period", "inf"])
    assert "--period" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("out", "words"), [("{tmp}/x.csv", "is a folder"), ("{tmp}/a/b.csv", "exist")]
)
def test_compress_out_is_checked_before_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, words: str
) -> None:
    (tmp_path / "x.csv").mkdir()
    target = out.format(tmp=tmp_path)
    argv = ["compress", "greenai.demo:build_mlp", "--input-shape", "4,64", "--out", target]
    assert main(argv) == 2
    one_line_error(capsys, "--out", words)
    assert capsys.readouterr().out == ""  # no sweep table: nothing ran


@pytest.mark.parametrize("command", ["runs", "report", "run"])
def test_another_applications_database_as_store_is_one_line_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    import sqlite3
    from contextlib import closing

    app = tmp_path / "app.db"
    with closing(sqlite3.connect(app)) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
        conn.commit()
    before = app.read_bytes()
    argv = [command, "--store", str(app)] + (
        ["--", sys.executable, "-c", "1"] if command == "run" else []
    )
    assert main(argv) == 2
    one_line_error(capsys, "another application", "users")
    assert app.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_a_bad_command_line_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--period", "inf", "--", "true"], ["report", "latest", "--format", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("greenai: error:"), err


def test_report_of_a_run_without_measurement_to_a_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    with RunStore(db) as store:
        store.start_run("empty")
    code = main(["report", "latest", "--store", str(db), "--format", "json", "--output",
                 str(tmp_path / "out.json")])  # fmt: skip
    assert code == 2
    assert not (tmp_path / "out.json").exists()
    assert "no measurement yet" in capsys.readouterr().err


def test_a_killed_run_says_its_figures_are_the_last_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    code = f"""
import os, time, greenai
from greenai.testing import FakeGPU
job = greenai.track("k", devices=[FakeGPU()], store={str(db)!r}, checkpoint_s=0.2).start()
time.sleep(1.0)
os._exit(9)  # dies without stop()
"""
    subprocess.run([sys.executable, "-c", code], timeout=120)
    with RunStore(db, read_only=True) as store:
        run = store.get("latest")
    assert run.status == "interrupted"
    assert run.measurement is not None and run.measurement.status == "interrupted"
    assert any("last checkpoint" in n for n in run.measurement.notes)
