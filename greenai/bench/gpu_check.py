"""The GPU acceptance check of the bf16 GEMM workload (``greenai bench --check-gpu``).

For each size it runs a bare ``torch.matmul`` loop, the suite's tracked GEMM workload, and
the bare loop again, and checks two things:

* throughput: the workload reaches ≥ 90% of the better bare loop's TFLOP/s;
* energy: the workload's GPU J/TFLOP is within 5% of the J/TFLOP that two direct reads of
  the GPU's hardware energy counter give over the same loop.

It needs an NVIDIA GPU with an energy counter for the energy part; elsewhere that part is
reported as not checked (and the check does not pass).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from greenai.bench import workloads as w
from greenai.bench.suite import Suite, bench_devices, plan_steps, run_workload, synchronize

__all__ = ["MIN_ENERGY_AGREEMENT", "MIN_THROUGHPUT_RATIO", "bare_matmul", "check_gemm"]

MIN_THROUGHPUT_RATIO = 0.90
"""The workload's TFLOP/s over the bare loop's must be at least this."""

MIN_ENERGY_AGREEMENT = 0.05
"""|tracked GPU J/TFLOP / counter J/TFLOP − 1| must be at most this."""


def _counter_gpu(device: str) -> Any:
    """The greenai GPU device of ``device`` when it has an energy counter, opened; else None."""
    if not device.startswith("cuda"):
        return None
    gpus = [d for d in bench_devices(device) if d.kind == "gpu"]
    if not gpus:
        return None
    gpu = gpus[0]
    gpu.open()
    if gpu.method != "counter":
        gpu.close()
        return None
    return gpu


def bare_matmul(n: int, dtype: str, device: str, seconds: float) -> dict[str, float]:
    """TFLOP/s of a plain ``torch.matmul`` loop of ``n³`` GEMMs lasting about ``seconds``."""
    import torch

    dt = w.torch_dtype(dtype)
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    out = torch.empty(n, n, device=device, dtype=dt)

    def step() -> None:
        torch.matmul(a, b, out=out)

    for _ in range(3):
        step()
    steps = plan_steps(step, device, seconds, 2)
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    elapsed = time.perf_counter() - t0
    return {
        "steps": steps,
        "duration_s": elapsed,
        "tflops_per_s": 2.0 * n**3 * steps / elapsed / 1e12,
    }


def check_gemm(
    device: str = "cuda:0",
    sizes: Sequence[int] = (4096, 8192),
    *,
    dtype: str = "bf16",
    seconds: float = 5.0,
    store: Any = None,
    devices: Sequence[Any] | None = None,
    counter: Any = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Run the check; return one row per size and whether every check passed.

    Args:
        device: The torch device (``cuda:N``; ``cpu`` runs the throughput part only).
        sizes: GEMM sizes (``n`` of ``n³``).
        dtype: Compute dtype.
        seconds: Length of each loop (s).
        store: Run store spec for the tracked workloads (None stores nothing).
        devices: greenai devices the tracker measures (None: those of ``device``).
        counter: A device among ``devices`` whose ``read().energy_j`` is the hardware
            counter (None: a second NVML handle on ``device``'s GPU).

    Row keys: ``size``, ``bare_tflops_per_s``, ``tflops_per_s``, ``throughput_ratio``,
    ``j_per_tflop`` (tracked, GPU only), ``counter_j_per_tflop``, ``energy_error``
    (relative), ``method``, ``passed``.
    """
    own = counter is None
    gpu = _counter_gpu(device) if own else counter
    rows, all_ok = [], True
    try:
        for n in sizes:
            workload = w.gemm(n, dtype)
            suite = replace(Suite("check-gpu", (workload,), min_time_s=seconds), warmup_steps=5)
            reads: dict[str, float] = {}

            def around(where: str, reads: dict[str, float] = reads) -> None:
                if gpu is not None:
                    reads[where] = float(gpu.read().energy_j)

            before = bare_matmul(n, dtype, device, seconds)
            row = run_workload(
                workload, suite, device=device, devices=devices, store=store, around=around
            )
            after = bare_matmul(n, dtype, device, seconds)
            bare = max(before["tflops_per_s"], after["tflops_per_s"])
            ratio = (row["tflops_per_s"] or 0.0) / bare
            counter = None
            if len(reads) == 2 and row["flops"]:
                counter = (reads["end"] - reads["start"]) / (row["flops"] / 1e12)
            tracked = row["gpu_j_per_tflop"]
            error = tracked / counter - 1 if counter and tracked is not None else math.nan
            ok = ratio >= MIN_THROUGHPUT_RATIO and abs(error) <= MIN_ENERGY_AGREEMENT
            all_ok = all_ok and ok
            rows.append(
                {
                    "size": n,
                    "bare_tflops_per_s": bare,
                    "tflops_per_s": row["tflops_per_s"],
                    "throughput_ratio": ratio,
                    "j_per_tflop": tracked,
                    "counter_j_per_tflop": counter,
                    "energy_error": error,
                    "method": ",".join(row["methods"]),
                    "passed": ok,
                }
            )
    finally:
        if own and gpu is not None:
            gpu.close()
    return rows, all_ok
