from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

import greenai
from greenai.cli import main
from greenai.measurement import Measurement
from greenai.report.compare import (
    FIGURES,
    Comparison,
    Side,
    change,
    compare_measurements,
    comparisons_csv,
    comparisons_json,
    difference_with_uncertainty,
    ratio_with_uncertainty,
    render_comparisons,
    verdict,
)
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU

SPECS = {f.key: f for f in FIGURES}


def test_ratio_and_difference_combine_independent_errors_in_quadrature() -> None:
    r, u = ratio_with_uncertainty(100.0, 3.0, 77.0, 4.0 * 0.77)
    assert r == pytest.approx(0.77)
    assert u == pytest.approx(0.77 * math.hypot(0.03, 0.04))
    d, ud = difference_with_uncertainty(100.0, 3.0, 77.0, 4.0)
    assert (d, ud) == (pytest.approx(-23.0), pytest.approx(5.0))
    with pytest.raises(ValueError, match="zero"):
        ratio_with_uncertainty(0.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        difference_with_uncertainty(1.0, -1.0, 1.0, 0.0)


def test_verdicts_say_less_more_times_or_within_uncertainty() -> None:
    per_sample = SPECS["j_per_sample"]
    assert verdict(per_sample, 0.77, 0.04) == "B uses 23% ± 4.0% less energy per sample"
    assert verdict(SPECS["energy"], 1.5, 0.1) == "B uses 50% ± 10% more energy"
    assert verdict(SPECS["time"], 2.5, 0.0) == "B takes 2.5 times the time of A"
    assert verdict(SPECS["co2e"], 0.97, 0.08) == "within uncertainty: B −3.0% ± 8.0% CO2e"
    assert verdict(SPECS["time"], 1.0, 0.0) == "B takes the same time as A"


def test_change_explains_a_missing_figure_and_an_unknown_uncertainty() -> None:
    missing = change("j_per_sample", (None, None, "no step(samples=) calls"), (1.0, 0.1, ""))
    assert missing.ratio is None and "A: no step(samples=) calls" in missing.verdict
    unknown = change("j_per_tflop", (100.0, None, ""), (50.0, 1.0, ""))
    assert unknown.ratio == 0.5 and unknown.ratio_uncertainty is None
    assert unknown.verdict.endswith("(uncertainty unknown)")


def _job(power_w: float, steps: int, samples: int, seconds: float = 1.0) -> Measurement:
    clock = FakeClock()
    gpu = FakeGPU(power_w=power_w, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    with greenai.track("train", devices=[gpu], clock=clock, country="FRA") as job:
        for _ in range(steps):
            clock.advance(seconds)
            job.step(samples=samples)
        job.add_flops(1e12 * steps)
    return job.result


def test_compare_two_runs_gives_ratio_difference_and_verdict_per_figure() -> None:
    a, b = _job(300.0, 10, 32), _job(150.0, 10, 32, seconds=1.2)  # B: 0.6x energy, 1.2x time
    side_a = Side("A", "r1", "train", "completed", a.methods, host="h", command="python a.py")
    side_b = Side("B", "r2", "train", "completed", b.methods, host="h", command="python b.py")
    c = compare_measurements(side_a, a, side_b, b)
    by = {ch.figure: ch for ch in c.changes}
    assert set(by) == {"energy", "J/sample", "J/TFLOP", "time", "CO2e"}
    energy = by["energy"]
    assert energy.ratio == pytest.approx(0.6, rel=0.02)
    assert energy.difference == pytest.approx((b.energy_j or 0) - (a.energy_j or 0))
    assert energy.ratio_uncertainty == pytest.approx(
        0.6 * math.hypot(a.uncertainty_j / a.energy_j, b.uncertainty_j / b.energy_j),  # type: ignore[operator]
        rel=0.05,
    )
    # both runs have steps: the verdict is paired.verdict's, its interval the wider of the
    # measurements' ± and the steps' own noise (here none: every step draws the same)
    assert energy.verdict.startswith("40% less energy (95% CI")
    assert by["J/sample"].ratio == pytest.approx(0.6, rel=0.02)
    assert "less energy per sample" in by["J/sample"].verdict
    assert "less energy per TFLOP" in by["J/TFLOP"].verdict
    assert by["time"].verdict == "20% more time (95% CI 20% to 20% more)"
    assert "less CO2e" in by["CO2e"].verdict

    text = render_comparisons([c])
    needles = ("A: r1  train (completed)", "measured by: measured (counter)",
               "command: python b.py", "B/A", "verdict:", "less energy per sample")  # fmt: skip
    assert all(n in text for n in needles), text
    doc = json.loads(comparisons_json([c], ["a note"]))
    assert doc["notes"] == ["a note"] and doc["comparisons"][0]["b"]["id"] == "r2"
    assert {ch["figure"] for ch in doc["comparisons"][0]["changes"]} == set(by)
    rows = list(csv.DictReader(io.StringIO(comparisons_csv([c]))))
    assert [r["figure"] for r in rows] == [ch.figure for ch in c.changes]
    assert float(rows[0]["ratio"]) == pytest.approx(energy.ratio)


def test_same_energy_is_within_uncertainty_and_model_runs_are_flagged() -> None:
    a, b = _job(300.0, 5, 8), _job(300.0, 5, 8)
    c = compare_measurements(Side("A", "1", "x"), a, Side("B", "2", "x"), b)
    assert next(ch for ch in c.changes if ch.figure == "energy").verdict.startswith(
        "no measurable difference at this precision"
    )
    model = Side("B", "2", "x", methods=("model",))
    notes = compare_measurements(Side("A", "1", "x", methods=("counter",)), a, model, b).notes
    assert any("obtained differently" in n for n in notes)
    assert any("not measured" in n for n in notes)


def test_a_run_without_measurement_or_energy_is_not_comparable() -> None:
    c = compare_measurements(Side("A", "1", "x", status="running"), None, Side("B", "2", "x"),
                             _job(100.0, 2, 4))  # fmt: skip
    assert all(ch.ratio is None for ch in c.changes)
    assert "no measurement yet" in c.changes[0].verdict
    assert any("running" in n for n in c.notes)


def test_csv_cells_that_look_like_formulas_are_quoted() -> None:
    a = _job(100.0, 2, 4)
    c = compare_measurements(Side("A", "=cmd()", "x"), a, Side("B", "2", "x"), a)
    assert "'=cmd()" in comparisons_csv([c])


def test_cli_compare_stored_runs_as_text_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    for power_w in (300.0, 200.0):
        clock = FakeClock()
        gpu = FakeGPU(power_w=power_w, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
        meta = {"command": f"python train.py --power {power_w:g}", "lr": 0.1}
        with greenai.track("train", devices=[gpu], clock=clock, store=db, meta=meta) as job:
            for _ in range(4):
                clock.advance(1.0)
                job.step(samples=16)
    with RunStore(db) as store:
        ids = list(store.runs()["id"])[::-1]  # oldest first: A is the 300 W run
    assert main(["compare", *ids, "--store", str(db)]) == 0
    text = capsys.readouterr().out
    assert "command: python train.py --power 200" in text and "lr=0.1" in text
    assert "33% less energy per sample (95% CI" in text
    assert "energy paired by step index over 4 steps" in " ".join(text.split())
    assert main(["compare", *ids, "--store", str(db), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    energy = doc["comparisons"][0]["changes"][0]
    assert energy["figure"] == "energy" and energy["ratio"] == pytest.approx(2 / 3, rel=0.02)
    assert main(["compare", *ids, "--store", str(db), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 5 and rows[0]["a"] == ids[0]
    assert main(["compare", *ids, "--store", str(db), "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") == 1
    assert "less energy per sample" in html and ids[1] in html
    assert main(["compare", ids[0], "--store", str(db)]) == 2
    assert "two runs" in capsys.readouterr().err


def _gpu_run(power_w: float, seconds: float = 60.0, seed: int = 1) -> Measurement:
    clock = FakeClock()
    gpu = FakeGPU(power_w=power_w, clock=clock, seed=seed)
    with greenai.track("steady", devices=[gpu], clock=clock) as job:
        clock.advance(seconds)
    return job.result


def test_two_steady_fakegpu_runs_ten_percent_apart_get_a_verdict() -> None:
    """Issue 23: a 60 s steady load read 10% higher is called, not 'within uncertainty'."""
    a, b = _gpu_run(700.0, seed=1), _gpu_run(770.0, seed=2)
    c = compare_measurements(Side("A", "1", "x", host="h"), a, Side("B", "2", "x", host="h"), b)
    energy = next(ch for ch in c.changes if ch.figure == "energy")
    assert energy.ratio is not None and energy.ratio_uncertainty is not None
    assert energy.ratio == pytest.approx(1.10, abs=0.005)
    assert energy.ratio_uncertainty < 0.02  # the counter's ± on 60 s is a fraction of 1%
    assert energy.verdict.startswith("B uses 10% ± ")
    assert "more energy" in energy.verdict


def _cpu_model_run(seconds: float) -> Measurement:
    from greenai.devices.cpu_model import CpuModel

    clock = FakeClock()
    cpu = CpuModel(tdp_w=100.0, cpu_percent=lambda: 50.0, sockets=1, threads_per_socket=8)
    with greenai.track("cpu", devices=[cpu], clock=clock) as job:
        clock.advance(seconds)
    return job.result


def test_two_cpu_model_runs_on_one_machine_share_their_scale_error() -> None:
    """The model's ±50% is one error in both runs: it cancels in B/A (counted once)."""
    a, b = _cpu_model_run(60.0), _cpu_model_run(66.0)
    assert a.devices[0].method == "model"
    assert a.devices[0].shared_uncertainty_j == pytest.approx(0.5 * a.energy_j, rel=1e-6)
    same = compare_measurements(
        Side("A", "1", "x", methods=("model",), host="h"),
        a,
        Side("B", "2", "x", methods=("model",), host="h"),
        b,
    )
    energy = next(ch for ch in same.changes if ch.figure == "energy")
    assert energy.ratio == pytest.approx(1.10, abs=0.005)
    assert energy.ratio_uncertainty is not None and energy.ratio_uncertainty < 0.02
    assert "more energy" in energy.verdict and "within" not in energy.verdict
    # the difference keeps the scale error once: ±50% of the 10% difference
    assert energy.difference_uncertainty == pytest.approx(
        0.5 * abs(energy.difference or 0.0), rel=0.05
    )
    assert any("cancels in the ratio" in n for n in same.notes)
    # nothing independent of the model's error is known: the ± 0 says what it is, never bare
    assert energy.ratio_uncertainty == 0.0
    assert energy.verdict.endswith(
        "(± 0 once the shared ±50% cancels: no independent error is known)"
    )
    text = render_comparisons([same])
    assert "  1.1 ± 0  " in text and "B uses 10% more energy (± 0 once" in text
    # on two machines the models' errors are independent: no verdict
    apart = compare_measurements(
        Side("A", "1", "x", methods=("model",), host="h1"),
        a,
        Side("B", "2", "x", methods=("model",), host="h2"),
        b,
    )
    energy = next(ch for ch in apart.changes if ch.figure == "energy")
    assert energy.verdict.startswith("within uncertainty")


def test_an_independent_part_left_shows_as_the_ratios_plus_minus() -> None:
    """A model's run with 2% of its ± independent of the shared 50% (a gap interpolated)."""
    energy = change("energy", (100.0, 52.0, ""), (110.0, 57.2, ""), shared_rel=0.5)
    assert energy.ratio_uncertainty == pytest.approx(1.1 * math.hypot(0.02, 0.02))
    assert energy.verdict == "B uses 10% ± 3.1% more energy"
    assert "1.1 ± 0.031" in render_comparisons(
        [Comparison(Side("A", "1", "x"), Side("B", "2", "x"), (energy,))]
    )


def test_compare_with_uncertainty_cancels_only_the_shared_part() -> None:
    from greenai.windows import compare_with_uncertainty

    r, ur, d, ud = compare_with_uncertainty(100.0, 52.0, 110.0, 57.2, shared_rel=0.5)
    assert r == pytest.approx(1.1)
    assert ur == pytest.approx(1.1 * math.hypot(2.0 / 100.0, 2.2 / 110.0))
    assert d == pytest.approx(10.0)
    assert ud == pytest.approx(math.hypot(2.0, 2.2) + 5.0)
    assert compare_with_uncertainty(100.0, 5.0, 110.0, 5.0)[1] == pytest.approx(
        1.1 * math.hypot(0.05, 5.0 / 110.0)
    )


def _noisy_steps(power_w: list[float], seed: int) -> Measurement:
    """A run whose steps draw the given powers (1 s each): its own step-to-step noise."""
    from greenai.testing import FakeClock, FakeGPU

    clock = FakeClock()
    gpu = FakeGPU(power_w=lambda t: power_w[min(int(t), len(power_w) - 1)], clock=clock,
                  noise_w=0.0, sensor_noise_w=0.0, seed=seed)  # fmt: skip
    with greenai.track("noisy", devices=[gpu], clock=clock) as job:
        for _ in power_w:
            clock.advance(1.0)
            job.step()
    return job.result


def test_run_verdicts_take_their_noise_from_the_runs_own_steps() -> None:
    import random

    from greenai.report.compare import step_noise

    r = random.Random(5)
    a_w = [300.0 * r.uniform(0.7, 1.3) for _ in range(12)]
    b_w = [w * 1.03 for w in a_w[::-1]]  # 3% more, the steps in another order
    a, b = _noisy_steps(a_w, 1), _noisy_steps(b_w, 2)
    c = compare_measurements(Side("A", "1", "x", host="h"), a, Side("B", "2", "x", host="h"), b)
    energy = next(ch for ch in c.changes if ch.figure == "energy")
    assert energy.ratio == pytest.approx(1.03, rel=0.01)
    # the totals' ± alone (a counter, a fraction of 1%) would call 3% more; the steps
    # scatter by ±30% and 12 steps a side cannot size a 3% change
    assert energy.ratio_uncertainty is not None and energy.ratio_uncertainty < 0.02
    assert energy.verdict.startswith("no measurable difference at this precision")
    noise = step_noise(a, b)
    assert noise is not None and "paired by step index over 12 steps" in noise[1]
    # fewer steps on one side: not paired, a Welch interval on both sets
    short = _noisy_steps(b_w[:7], 3)
    noise = step_noise(a, short)
    assert noise is not None and "Welch interval on 12 and 7 steps" in noise[1]
    assert any("step-to-step noise" in n for n in c.notes)
    # steps that repeat exactly: the same 3% is called
    steady_a, steady_b = _noisy_steps([300.0] * 8, 1), _noisy_steps([309.0] * 8, 2)
    c = compare_measurements(Side("A", "1", "x"), steady_a, Side("B", "2", "x"), steady_b)
    energy = next(ch for ch in c.changes if ch.figure == "energy")
    assert energy.verdict.startswith("3% more energy (95% CI"), energy.verdict
