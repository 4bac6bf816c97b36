from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from greenai.cli import main


def _bench_json(capsys: pytest.CaptureFixture[str], store: Path, *extra: str) -> dict:
    code = main(
        [
            "bench",
            "--suite",
            "smoke",
            "--only",
            "gemm-fp32",
            "--json",
            "--store",
            str(store),
            *extra,
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_bench_json_stores_runs_and_compares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.db"
    doc = _bench_json(capsys, store)
    assert [r["workload"] for r in doc["results"]] == ["gemm-fp32-64"]
    assert doc["results"][0]["run_id"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(doc))
    b.write_text(json.dumps(doc))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "same machine" in out and "gemm-fp32-64" in out
    run_id = doc["results"][0]["run_id"]
    assert main(["compare", run_id, run_id, "--store", str(store)]) == 0
    assert doc["machine"]["fingerprint"] in capsys.readouterr().out


def test_bench_table_and_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--suite", "smoke", "--no-store"]) == 0
    out = capsys.readouterr().out
    assert "suite smoke on cpu" in out and "J/TFLOP" in out and "gemm-bf16-64" in out
    assert "not measured" in out  # the CPU here is modelled, and the table says so


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "--device", "cuda:3"],
        ["bench", "--device", "tpu"],
        ["bench", "--check-gpu", "--device", "cpu"],
        ["bench", "--suite", "smoke", "--only", "zzz", "--no-store"],
    ],
)
def test_bad_values_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("greenai: error:")


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--suite", "nope"])
    assert exc.value.code == 2


def test_mixed_suites_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _bench_json(capsys, tmp_path / "runs.db", "--no-store")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(doc))
    b.write_text(json.dumps(dict(doc, suite="quick")))
    assert main(["compare", str(a), str(b)]) == 2
    assert "different suites" in capsys.readouterr().err


def test_a_failed_workload_is_shown_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenai.bench import suite

    real = suite.run_workload

    def run_workload(workload: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if workload.name == "gemm-bf16-64":
            raise ZeroDivisionError("division by zero")
        return real(workload, *args, **kwargs)

    monkeypatch.setattr(suite, "run_workload", run_workload)
    code = main(["bench", "--suite", "smoke", "--only", "gemm", "--no-store"])
    out = capsys.readouterr().out
    assert code == 1
    assert "gemm-fp32-64" in out and "failed: gemm-bf16-64: ZeroDivisionError" in out


def test_a_malformed_results_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"format": "greenai-bench/1", "suite": "smoke", "results": [{"workload": "x"}]}
    a = tmp_path / "a.json"
    a.write_text(json.dumps(doc))
    assert main(["compare", str(a), str(a)]) == 2
    assert "lacks ['params', 'dtype', 'tflops_per_s', 'j_per_tflop']" in capsys.readouterr().err


def test_stored_runs_of_mixed_suites_exit_2_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenai import Tracker

    store = tmp_path / "runs.db"
    bench_run = _bench_json(capsys, store)["results"][0]["run_id"]
    with Tracker("training", devices=[], store=store) as job:
        pass
    other = job.run_id
    assert main(["compare", bench_run, other, "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert f"{bench_run} (suite smoke), {other} (not a bench run)" in err
    assert main(["compare", bench_run, other, "--store", str(store), "--allow-mixed"]) == 0
    assert "warning: these runs mix benchmark suites" in capsys.readouterr().out
