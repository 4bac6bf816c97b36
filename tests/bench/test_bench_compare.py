from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from greenai.bench.compare import bench_comparisons, compare, compare_files, stored_run_notes
from greenai.cli import main
from greenai.errors import ConfigError


def _doc(fingerprint: str, scale: float = 1.0, suite: str = "quick") -> dict[str, Any]:
    row = {
        "workload": "gemm-bf16-512",
        "params": {"m": 512, "n": 512, "k": 512},
        "dtype": "bf16",
        "tflops_per_s": 10.0 * scale,
        "j_per_tflop": 100.0 / scale,
        "j_per_sample": 0.5,
        "methods": ["counter"],
    }
    machine = {"fingerprint": fingerprint, "gpus": [], "cpu_model": "X", "torch": "2.13"}
    return {
        "format": "greenai-bench/1",
        "suite": suite,
        "device": "cuda:0",
        "created_at": "2026-11-23T00:00:00+00:00",
        "machine": machine,
        "results": [row],
    }


def test_ratios_per_workload_and_machines_named() -> None:
    rows, notes = compare(_doc("aaaa"), _doc("bbbb", scale=2.0))
    (row,) = rows
    assert row["status"] == "ok"
    assert row["speed_b_over_a"] == pytest.approx(2.0)
    assert row["energy_b_over_a"] == pytest.approx(0.5)
    assert "[aaaa]" in notes[0] and "[bbbb]" in notes[1]
    assert not any("same machine" in n for n in notes)


def test_same_machine_is_flagged() -> None:
    _, notes = compare(_doc("aaaa"), _doc("aaaa"))
    assert any("same machine" in n for n in notes)


def test_different_suites_are_refused() -> None:
    with pytest.raises(ConfigError, match="different suites"):
        compare(_doc("a"), _doc("b", suite="full"))


def test_different_sizes_and_missing_workloads_are_not_compared() -> None:
    b = _doc("b")
    b["results"][0]["params"] = {"m": 1, "n": 512, "k": 512}
    extra = copy.deepcopy(b["results"][0])
    extra["workload"] = "inference-bf16-b8"
    b["results"].append(extra)
    b["results"][0]["methods"] = ["model"]
    rows, _ = compare(_doc("a"), b)
    assert [r["status"] for r in rows] == ["sizes differ", "only in B"]
    assert all(r["speed_b_over_a"] is None for r in rows)


def test_methods_that_differ_are_flagged() -> None:
    b = _doc("b")
    b["results"][0]["methods"] = ["model"]
    _, notes = compare(_doc("a"), b)
    assert any("measured by ['counter'] on A but ['model'] on B" in n for n in notes)
    assert any("not measured" in n for n in notes)


def test_files(tmp_path: Path) -> None:
    a, b, bad = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "bad.json"
    a.write_text(json.dumps(_doc("a")))
    b.write_text(json.dumps(_doc("b", 1.5)))
    bad.write_text(json.dumps({"benchmarks": []}))
    text = compare_files([str(a), str(b)])
    assert "gemm-bf16-512" in text and "0.667" in text  # J/TFLOP: B/A = 1/1.5
    with pytest.raises(ConfigError, match="not a greenai bench result"):
        compare_files([str(a), str(bad)])
    with pytest.raises(ConfigError, match="cannot read"):
        compare_files([str(a), str(tmp_path / "missing.json")])
    with pytest.raises(ConfigError, match="two at a time"):
        compare_files([str(a)])


def test_stored_runs_mixing_suites_are_refused_and_machines_noted() -> None:
    quick = {"bench": {"suite": "quick"}, "machine": {"fingerprint": "a"}}
    full = {"bench": {"suite": "full"}, "machine": {"fingerprint": "b"}}
    with pytest.raises(ConfigError, match=r"r1 \(suite quick\), r2 \(suite full\)"):
        stored_run_notes([quick, full], ["r1", "r2"])
    with pytest.raises(ConfigError, match=r"2 \(not a bench run\).*--allow-mixed"):
        stored_run_notes([quick, {}])
    notes = stored_run_notes([quick, full], allow_mixed=True)
    assert any("warning: these runs mix benchmark suites" in n for n in notes)
    assert any("2 different machines" in n for n in notes)
    assert stored_run_notes([quick, quick]) == []
    assert stored_run_notes([{}, {"machine": None}]) == []  # two ordinary runs


def test_machine_unknown_is_not_called_the_same_machine() -> None:
    a, b = _doc("a"), _doc("b")
    del a["machine"], b["machine"]
    _, notes = compare(a, b)
    assert not any("same machine configuration" in n for n in notes)
    assert any("machine unknown for A and B" in n for n in notes)
    _, notes = compare(_doc("a"), b)
    assert any("machine unknown for B" in n for n in notes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["results"][0].pop("params"), r"result 0 lacks \['params'\]"),
        (lambda d: d["results"][0].pop("workload"), r"result 0 lacks \['workload'\]"),
        (lambda d: d["results"][0].update(tflops_per_s="fast"), "tflops_per_s 'fast', not a"),
        (lambda d: d["results"][0].update(methods="counter"), "methods 'counter'"),
        (lambda d: d["results"].append("gemm"), "result 1 is a str"),
        (lambda d: d.update(results={"gemm": {}}), "'results' is a dict, not a list"),
        (lambda d: d["results"].append(dict(d["results"][0])), "twice"),
        (lambda d: d.update(machine=["x"]), "'machine' is a list"),
        (lambda d: d["machine"].update(gpus=["H100"]), "'gpus' must be a list of objects"),
    ],
)
def test_malformed_documents_are_config_errors(change: Any, message: str) -> None:
    b = _doc("b")
    change(b)
    with pytest.raises(ConfigError, match=message):
        compare(_doc("a"), b)


def test_failed_workloads_are_not_compared() -> None:
    b = _doc("b")
    b["results"][0].update(status="failed", reason="OOM", tflops_per_s=None, j_per_tflop=None)
    (row,), _ = compare(_doc("a"), b)
    assert row["status"] == "failed in B" and row["speed_b_over_a"] is None


def test_bench_files_compare_per_workload_with_uncertainty_and_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_doc, b_doc = _doc("a"), _doc("b", 1.25)
    for doc, energy in ((a_doc, 100.0), (b_doc, 80.0)):
        doc["results"][0].update(energy_j=energy, uncertainty_j=0.02 * energy, steps=10,
                                 duration_s=2.0 / (1.25 if energy == 80.0 else 1.0))  # fmt: skip
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(a_doc))
    b.write_text(json.dumps(b_doc))
    text = compare_files([str(a), str(b)])
    assert "B relative to A: gemm-bf16-512" in text
    assert "B uses 20% ± 2.3% less energy per TFLOP" in text
    assert "B takes 20% less time per step" in text
    assert "J/sample" in text and "within uncertainty" in text  # 0.5 J/sample both
    doc = json.loads(compare_files([str(a), str(b)], "json"))
    (c,) = doc["comparisons"]
    assert c["subject"] == "gemm-bf16-512" and c["a"]["machine"].endswith("[a]")
    tflop = next(ch for ch in c["changes"] if ch["figure"] == "J/TFLOP")
    assert tflop["ratio"] == pytest.approx(0.8)
    assert tflop["ratio_uncertainty"] == pytest.approx(0.8 * math.hypot(0.02, 0.02))
    lines = compare_files([str(a), str(b)], "csv").splitlines()
    assert lines[0].startswith("subject,a,b,figure") and len(lines) == 4
    assert main(["compare", str(a), str(b), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparisons"][0]["subject"] == "gemm-bf16-512"
    # a bench file beside a stored run: said so, not "no run 'a.json'"
    assert main(["compare", str(a), "latest", "--store", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a bench result" in err and "no run" not in err


def test_bench_workloads_that_cannot_be_compared_say_why(tmp_path: Path) -> None:
    b = _doc("b")
    b["results"][0]["params"] = {"m": 1, "n": 512, "k": 512}
    comparisons, _ = bench_comparisons(["a", "b"], _doc("a"), b)
    assert all(ch.verdict == "not comparable (sizes differ)" for ch in comparisons[0].changes)
    b["results"][0]["duration_s"] = "fast"
    with pytest.raises(ConfigError, match="duration_s 'fast', not a number"):
        bench_comparisons(["a", "b"], _doc("a"), b)


def test_bench_time_changes_are_claimed_only_beyond_the_rounds_noise(tmp_path: Path) -> None:
    a_doc, b_doc = _doc("a"), _doc("b")
    noisy = [0.18, 0.22, 0.19, 0.23, 0.18]  # s per step, ±10% round to round
    tight_a, tight_b = [0.2, 0.201, 0.199, 0.2, 0.2], [0.16, 0.161, 0.159, 0.16, 0.16]
    for doc, rounds in ((a_doc, noisy), (b_doc, [x * 1.03 for x in noisy])):
        doc["results"][0].update(steps=5, duration_s=sum(rounds), round_s_per_step=rounds)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(a_doc))
    b.write_text(json.dumps(b_doc))
    text = compare_files([str(a), str(b)])
    assert "within uncertainty: B +3.0% ±" in text  # 3% slower, inside the rounds' noise
    for doc, rounds in ((a_doc, tight_a), (b_doc, tight_b)):
        doc["results"][0].update(steps=5, duration_s=sum(rounds), round_s_per_step=rounds)
    a.write_text(json.dumps(a_doc))
    b.write_text(json.dumps(b_doc))
    text = compare_files([str(a), str(b)])
    assert "B takes 20% ±" in text and "less time per step" in text
    # a file from before rounds existed: a ratio, no claim, and a note says why
    del a_doc["results"][0]["round_s_per_step"]
    a.write_text(json.dumps(a_doc))
    text = compare_files([str(a), str(b)])
    assert "uncertainty unknown" in text and "no per-round figures" in text


def test_bench_files_compare_as_an_html_page_with_a_plot(tmp_path: Path) -> None:
    a_doc, b_doc = _doc("a"), _doc("b", 1.25)
    for doc, rounds in ((a_doc, [0.2, 0.201, 0.199]), (b_doc, [0.16, 0.161, 0.159])):
        doc["results"][0].update(
            energy_j=10.0, uncertainty_j=0.2, steps=3, duration_s=sum(rounds),
            round_s_per_step=rounds,
        )  # fmt: skip
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(a_doc))
    b.write_text(json.dumps(b_doc))
    html = compare_files([str(a), str(b)], "html")
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") == 1
    assert "gemm-bf16-512 relative to A" in html and "less time per step" in html
    assert "<script" not in html


def test_the_comparison_plot_colours_only_what_is_beyond_the_noise() -> None:
    from greenai.report.compare import Change, Comparison, Side
    from greenai.report.compare_html import comparison_figure

    def change(ratio: float, u: float | None) -> Change:
        return Change("energy", "J", 1.0, 0.1, ratio, u, ratio, u, ratio - 1, u, "")

    side = Side("A", "a", "run a")
    c = Comparison(
        side, Side("B", "b", "run b"), (change(0.5, 0.1), change(1.02, 0.1), change(2.0, None))
    )
    fig = comparison_figure([c])
    colours = [line.get_color() for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert colours == ["0.45", "0.45", "#2e7d32"]  # drawn bottom-up: unknown, within, less
