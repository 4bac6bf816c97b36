"""The standard workload suite under pytest-benchmark (``greenai.bench`` definitions).

By default the tiny ``smoke`` suite runs on the CPU, so the project's own test run stays
fast. Choose another with environment variables, and add energy with ``--greenai``::

    GREENAI_BENCH_SUITE=quick pytest benchmarks/workloads --greenai --benchmark-json=out.json
    GREENAI_BENCH_SUITE=full GREENAI_BENCH_DEVICE=cuda pytest benchmarks/workloads --greenai

Each benchmark declares its FLOPs and samples per call in ``extra_info``, so with
``--greenai`` its J/TFLOP and J/sample land next to its timings in the JSON.
"""

from __future__ import annotations

import os

import pytest

from greenai.bench import get_suite, resolve_device
from greenai.bench.suite import plan_steps

DEVICE = resolve_device(os.environ.get("GREENAI_BENCH_DEVICE", "cpu"))
SUITE = get_suite(os.environ.get("GREENAI_BENCH_SUITE", "smoke"), DEVICE)


def _synchronised(step, device: str):
    if not device.startswith("cuda"):
        return step
    import torch

    def call() -> None:
        step()
        torch.cuda.synchronize(device)

    return call


@pytest.mark.parametrize("workload", SUITE.workloads, ids=lambda w: w.name)
def test_workload(benchmark, workload) -> None:
    prepared = workload.build(DEVICE)
    benchmark.group = f"{SUITE.name}-{workload.kind}"
    benchmark.extra_info.update(
        suite=SUITE.name,
        workload=workload.name,
        device=DEVICE,
        flops=prepared.flops_per_step,
        samples=prepared.samples_per_step,
    )
    step = _synchronised(prepared.step, DEVICE)
    rounds = 3 if SUITE.name == "smoke" else 10
    for _ in range(SUITE.warmup_steps):
        step()
    # rounds long enough for the energy sensors (~100 ms refresh): the suite's time over all
    iterations = plan_steps(step, DEVICE, SUITE.min_time_s / rounds, 1)
    benchmark.pedantic(step, rounds=rounds, iterations=iterations)
    stats = benchmark.stats
    if stats is not None:  # None under --benchmark-disable
        mean_s = stats.stats.mean
        benchmark.extra_info["tflops_per_s"] = prepared.flops_per_step / mean_s / 1e12
