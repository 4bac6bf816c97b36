from __future__ import annotations

from pathlib import Path

import pytest

from greenai.bench import get_suite, resolve_device, run_suite
from greenai.bench.report import results_table
from greenai.errors import ConfigError
from greenai.store import RunStore
from greenai.testing import FakeGPU


def test_smoke_gemm_is_tracked_stored_and_consistent(tmp_path: Path) -> None:
    suite = get_suite("smoke")
    doc = run_suite(
        suite,
        # updates every 10 ms: the 50 ms loop is one trial (shifted trials: below)
        devices=[FakeGPU(power_w=250.0, seed=2, update_period_s=0.01)],
        store=tmp_path / "runs.db",
        only=["gemm-fp32"],
    )
    assert doc["suite"] == "smoke" and doc["device"] == "cpu"
    assert doc["machine"]["fingerprint"] and doc["format"] == "greenai-bench/1"
    (row,) = doc["results"]
    assert row["workload"] == "gemm-fp32-64"
    assert row["flops"] == 2 * 64**3 * row["steps"]
    assert row["tflops_per_s"] == pytest.approx(row["flops"] / 1e12 / row["duration_s"])
    assert row["j_per_tflop"] == pytest.approx(row["energy_j"] / (row["flops"] / 1e12))
    assert row["j_per_sample"] == pytest.approx(row["energy_j"] / (64 * row["steps"]))
    assert row["gpu_energy_j"] == pytest.approx(row["energy_j"])
    assert row["methods"] in (["counter"], ["power"])
    # the loop ran in rounds (phases round<i>): their spread is the row's noise estimate
    from greenai.bench.suite import ROUNDS

    assert len(row["round_s_per_step"]) == ROUNDS and all(x > 0 for x in row["round_s_per_step"])
    assert len(row["round_j_per_step"]) == ROUNDS and all(x > 0 for x in row["round_j_per_step"])
    assert isinstance(row["warmup_stable"], bool)
    with RunStore(tmp_path / "runs.db") as store:
        run = store.get(row["run_id"])
    assert run.name == "bench/gemm-fp32-64"
    assert run.meta["bench"]["suite"] == "smoke"
    assert run.meta["bench"]["params"] == {"m": 64, "n": 64, "k": 64}
    assert run.meta["machine"]["fingerprint"] == doc["machine"]["fingerprint"]
    assert run.measurement is not None
    table = results_table(doc)
    assert "GPU J/TFLOP" in table and "gemm-fp32-64" in table and "[counter]" not in table
    assert results_table(doc, markdown=True).splitlines()[2].startswith("| workload |")
    # the stored step ends at the loop's end, the job a few µs later, at stop()
    assert run.measurement.steps.energy_per_sample_j == pytest.approx(row["j_per_sample"], 0.01)


def test_default_suite_follows_the_device_and_bad_names_are_refused() -> None:
    assert get_suite(None, "cpu").name == "quick"
    assert get_suite(None, "cuda:0").name == "full"
    with pytest.raises(ConfigError, match="unknown suite"):
        get_suite("huge")
    with pytest.raises(ConfigError, match="no workload"):
        run_suite(get_suite("smoke"), devices=[], only=["nothing-like-this"])


def test_devices_are_checked() -> None:
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="device must be"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="not available"):
        resolve_device("cuda:7")


def test_a_workload_that_raises_is_a_failed_row_and_the_suite_goes_on() -> None:
    from greenai.bench import workloads as w
    from greenai.bench.suite import Suite

    def build(device: str) -> w.Prepared:
        raise RuntimeError("CUDA out of memory")

    broken = w.Workload("broken-1", "gemm", "fp32", build, {"n": 1})
    suite = Suite("tiny", (broken, w.gemm(16)), min_time_s=0.01, warmup_steps=0)
    seen: list[str] = []
    doc = run_suite(suite, devices=[], progress=seen.append)
    failed, ok = doc["results"]
    assert failed["workload"] == "broken-1" and failed["status"] == "failed"
    assert failed["reason"] == "RuntimeError: CUDA out of memory"
    assert failed["params"] == {"n": 1} and failed["steps"] is None and failed["methods"] == []
    assert set(failed) == set(ok)  # the same keys, so tables and JSON readers need no care
    assert ok["workload"] == "gemm-fp32-16" and ok["status"] == "ok" and ok["steps"] >= 2
    assert "broken-1 failed: RuntimeError: CUDA out of memory" in seen
    table = results_table(doc)
    assert "failed: broken-1: RuntimeError: CUDA out of memory" in table
    assert results_table(doc, markdown=True).endswith(
        "failed: broken-1: RuntimeError: CUDA out of memory"
    )


def test_a_loop_shorter_than_the_sensor_update_runs_as_shifted_trials(tmp_path: Path) -> None:
    """The smoke suite's 50 ms loop against 100 ms updates: 8 trials at shifted offsets."""
    from greenai.protocol import SHIFTS

    suite = get_suite("smoke")
    doc = run_suite(
        suite,
        devices=[FakeGPU(power_w=250.0, seed=2, update_period_s=0.1)],
        store=tmp_path / "runs.db",
        only=["gemm-fp32"],
    )
    (row,) = doc["results"]
    assert row["trials"] == SHIFTS
    with RunStore(tmp_path / "runs.db") as store:
        m = store.get(row["run_id"]).measurement
    assert m is not None
    trials = [m.phase(f"trial{i}") for i in range(SHIFTS)]
    # the row sums the trials, not the delays between them (the job holds both)
    assert row["energy_j"] == pytest.approx(sum(p.energy_j for p in trials))
    assert row["energy_j"] < 0.9 * m.energy_j
    assert row["duration_s"] == pytest.approx(sum(p.duration_s for p in trials), rel=0.05, abs=2e-3)
    # steady 250 W: within the stated uncertainty (plus slack for a late sampler thread)
    truth = 250.0 * row["duration_s"]
    assert abs(row["energy_j"] - truth) <= row["uncertainty_j"] + 0.05 * truth
    assert row["j_per_sample"] == pytest.approx(row["energy_j"] / (64 * row["steps"]))
    assert row["flops"] == 2 * 64**3 * row["steps"]
    assert 0 <= row["offset_spread_j"] <= row["uncertainty_j"]
