"""The CPU compression sweep of docs/compression.md, with its time budget.

Baseline + L1 pruning at 30/50/70% + structured 50% + dynamic int8 on the demo's digits MLP
(64-256-10, trained for a second), batch 64, with the sweep's defaults (5 repeats, windows
of at least 10 sampler periods): the issue's target is under 2 minutes on the CI machine.
The elapsed time and the table go to ``benchmark.extra_info`` (``--benchmark-json``).
``python benchmarks/test_compression_sweep.py`` prints the markdown table for the docs.
Also runs ``gpu_compression.py --selftest``, so the GPU script cannot rot unnoticed.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

BUDGET_S = 120.0
HERE = Path(__file__).resolve().parent


def run_sweep() -> tuple[Any, float]:
    """The sweep and how long it took (seconds), training included."""
    from greenai.compress import CPU_METHODS
    from greenai.demo import compress_demo

    start = time.perf_counter()
    frame = compress_demo(methods=CPU_METHODS)
    return frame, time.perf_counter() - start


def test_digits_sweep_finishes_in_budget(benchmark: Any) -> None:
    frame, elapsed = benchmark.pedantic(run_sweep, rounds=1, iterations=1)
    benchmark.extra_info["elapsed_s"] = round(elapsed, 2)
    cols = ["label", "compression_ratio", "accuracy", "latency_p50_ms", "energy_per_inference_j"]
    benchmark.extra_info["table"] = frame[cols].to_dict("records")
    assert list(frame["status"]) == ["ok"] * 6, frame[["label", "reason"]]
    by = frame.set_index("label")
    assert by.loc["baseline", "accuracy"] > 0.9
    assert by.loc["structured 50%", "compression_ratio"] > 1.9
    assert by.loc["int8-dynamic", "compression_ratio"] > 3.0
    assert elapsed < BUDGET_S, f"the CI sweep took {elapsed:.0f} s (budget {BUDGET_S:.0f} s)"


def test_gpu_script_selftest() -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / "gpu_compression.py"), "--selftest"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "selftest passed" in proc.stdout


if __name__ == "__main__":
    from greenai.report.compression import render_compression_markdown

    frame, elapsed = run_sweep()
    print(render_compression_markdown(frame, title="Digits MLP on CPU"))
    print(f"elapsed {elapsed:.1f} s on {platform.processor() or platform.machine()}")
