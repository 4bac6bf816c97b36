"""Comparing bench documents: the devices' shared scale error cancels only where it is shared."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from greenai.bench.compare import bench_comparisons, compare_files, round_noise
from greenai.errors import ConfigError

ROUNDS = [0.99, 1.01, 1.0, 0.995, 1.005]  # J per step in each round: about ±1% noise
CPU_MODEL = {"name": "cpu-model", "kind": "cpu", "method": "model"}


def _doc(fingerprint: str, *, new: bool = True) -> dict[str, Any]:
    """A CPU-model document: 100 J ± 50 J, all of the ± the model's shared scale error."""
    row: dict[str, Any] = {
        "workload": "gemm-fp32-256",
        "params": {"m": 256, "n": 256, "k": 256},
        "dtype": "fp32",
        "tflops_per_s": 0.1,
        "j_per_tflop": 400.0,
        "j_per_sample": 0.5,
        "energy_j": 100.0,
        "uncertainty_j": 50.0,
        "steps": 100,
        "duration_s": 2.0,
        "round_s_per_step": [0.02] * 5,
        "round_j_per_step": ROUNDS,
        "methods": ["model"],
    }
    doc: dict[str, Any] = {
        "format": "greenai-bench/1",
        "suite": "quick",
        "device": "cpu",
        "created_at": "2026-12-06T00:00:00+00:00",
        "machine": {"fingerprint": fingerprint, "gpus": [], "cpu_model": "X", "torch": "2.13"},
        "results": [row],
    }
    if new:
        row.update(energy_shared_uncertainty_j=50.0, devices=[CPU_MODEL])
        doc["devices"] = [CPU_MODEL]
    return doc


def _changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    comparisons, notes = bench_comparisons(["a.json", "b.json"], a, b)
    (c,) = comparisons
    return {ch.figure: ch for ch in c.changes}, notes


def test_a_file_compared_with_itself_keeps_only_the_rounds_noise(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(_doc("m1")))
    doc = json.loads(compare_files([str(path), str(path)], "json"))
    changes = {ch["figure"]: ch for ch in doc["comparisons"][0]["changes"]}
    noise = round_noise(ROUNDS)
    assert noise is not None and 0 < noise < 0.05
    for figure in ("J/sample", "J/TFLOP"):
        ch = changes[figure]
        assert ch["ratio"] == pytest.approx(1.0)
        # the model's ±50% cancels; the rounds' spread on each side stays (was 0.71)
        assert ch["ratio_uncertainty"] == pytest.approx(math.hypot(noise, noise))
        # each side still shows its whole ±: the shared 50% and the rounds' spread
        assert ch["a_uncertainty"] == pytest.approx(ch["a"] * (0.5 + noise))
        assert ch["verdict"].startswith("within uncertainty")
    assert any("(±50%): it cancels in the ratio" in n for n in doc["notes"])
    assert not any("do not record their devices" in n for n in doc["notes"])


def test_the_rounds_spread_does_not_hide_behind_the_shared_part() -> None:
    """An independent part larger than the rounds' spread is kept, not the spread."""
    a, b = _doc("m1"), _doc("m1")
    for doc in (a, b):
        doc["results"][0]["energy_shared_uncertainty_j"] = 40.0  # 10% independent
    b["results"][0].update(j_per_sample=0.6, j_per_tflop=480.0)
    changes, _ = _changes(a, b)
    ch = changes["J/sample"]
    assert ch.ratio == pytest.approx(1.2)
    assert ch.ratio_uncertainty == pytest.approx(1.2 * math.hypot(0.1, 0.1))
    assert ch.verdict.startswith("B uses 20% ±") and "more energy per sample" in ch.verdict


def test_documents_from_two_machines_keep_the_independent_uncertainty() -> None:
    changes, notes = _changes(_doc("m1"), _doc("m2"))
    ch = changes["J/sample"]
    assert ch.ratio == pytest.approx(1.0)
    assert ch.ratio_uncertainty == pytest.approx(
        math.hypot(0.5 + round_noise(ROUNDS), 0.5 + round_noise(ROUNDS))
    )  # type: ignore[operator]
    assert not any("cancels" in n for n in notes)


def test_other_devices_on_one_machine_do_not_cancel() -> None:
    b = _doc("m1")
    gpu = {"name": "gpu0", "kind": "gpu", "method": "model"}
    b["devices"] = b["results"][0]["devices"] = [CPU_MODEL, gpu]
    changes, notes = _changes(_doc("m1"), b)
    assert changes["J/sample"].ratio_uncertainty > 0.7
    assert any("their devices differ, so it is taken as independent" in n for n in notes)
    # a device read another way (power, not the model) is not the same error either
    b["devices"] = b["results"][0]["devices"] = [{**CPU_MODEL, "method": "power"}]
    changes, _ = _changes(_doc("m1"), b)
    assert changes["J/sample"].ratio_uncertainty > 0.7


@pytest.mark.parametrize("old", ["A", "B", "both"])
def test_an_old_document_compares_with_the_cautious_note(old: str) -> None:
    a, b = _doc("m1", new=old == "B"), _doc("m1", new=old == "A")
    changes, notes = _changes(a, b)
    ch = changes["J/sample"]
    assert ch.ratio == pytest.approx(1.0) and ch.ratio_uncertainty > 0.7
    assert any("do not record their devices" in n and "cautious" in n for n in notes)


def test_a_row_without_its_own_device_list_uses_the_documents() -> None:
    a, b = _doc("m1"), _doc("m1")
    for doc in (a, b):
        del doc["results"][0]["devices"]
    changes, _ = _changes(a, b)
    assert changes["J/sample"].ratio_uncertainty < 0.05
    b["devices"] = [{**CPU_MODEL, "name": "cpu1-model"}]
    changes, _ = _changes(a, b)
    assert changes["J/sample"].ratio_uncertainty > 0.7


@pytest.mark.parametrize(
    "devices",
    ["cpu", [{"name": "cpu", "kind": "cpu"}], [{"name": 1, "kind": "cpu", "method": "m"}]],
)
def test_malformed_device_lists_are_config_errors(devices: Any) -> None:
    b = _doc("m1")
    b["devices"] = devices
    with pytest.raises(ConfigError, match="'devices' must be a list of objects"):
        bench_comparisons(["a", "b"], _doc("m1"), b)
    b = _doc("m1")
    b["results"][0]["devices"] = devices
    with pytest.raises(ConfigError, match="'devices' must be a list of objects"):
        bench_comparisons(["a", "b"], _doc("m1"), b)


def test_a_shared_part_beyond_the_rows_uncertainty_counts_only_up_to_it() -> None:
    a = _doc("m1")
    a["results"][0]["energy_shared_uncertainty_j"] = 80.0  # more than the row's ±50 J
    b = copy.deepcopy(a)
    changes, _ = _changes(a, b)
    ch = changes["J/sample"]
    assert ch.a_uncertainty == pytest.approx(0.5 * (0.5 + round_noise(ROUNDS)))  # type: ignore[operator]
    assert ch.ratio_uncertainty < 0.05


def test_greenai_bench_writes_what_compare_needs(tmp_path: Path) -> None:
    from greenai.bench import run_suite
    from greenai.bench import workloads as w
    from greenai.bench.suite import Suite
    from greenai.devices.cpu_model import CpuModel

    cpu = CpuModel(tdp_w=100.0, cpu_percent=lambda: 50.0, sockets=1, threads_per_socket=8)
    suite = Suite("tiny", (w.gemm(16),), min_time_s=0.2, warmup_steps=0)
    doc = run_suite(suite, devices=[cpu])
    (row,) = doc["results"]
    assert row["methods"] == ["model"]
    assert (
        doc["devices"] == row["devices"] == [{"name": cpu.name, "kind": "cpu", "method": "model"}]
    )
    # the model's whole ± is its scale error, the same in every run on this machine
    assert row["energy_shared_uncertainty_j"] == pytest.approx(row["uncertainty_j"])
    assert row["energy_shared_uncertainty_j"] == pytest.approx(0.5 * row["energy_j"], rel=0.01)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    out = json.loads(compare_files([str(path), str(path)], "json"))
    ch = next(c for c in out["comparisons"][0]["changes"] if c["figure"] == "J/sample")
    noise = round_noise(row["round_j_per_step"]) or 0.0
    assert ch["ratio"] == pytest.approx(1.0)
    assert ch["ratio_uncertainty"] == pytest.approx(math.hypot(noise, noise), abs=1e-9)
    assert any("it cancels in the ratio" in n for n in out["notes"])
