"""What tracking costs the code it tracks.

Targets (from the measurement-core issue): ``job.step()`` ≤ 2 µs, and a tracked
Python-bound training loop within 1% of the untracked one at the default sampling period.
Nothing here asserts a time (shared machines are noisy): read the numbers from the
pytest-benchmark table, where each group shows its variants side by side::

    .venv/bin/python -m pytest benchmarks/test_overhead.py

A :class:`~greenai.testing.FakeGPU` on the real clock stands in for a GPU, so the sampler
thread really runs at the default period (0.1 s) and competes for the GIL as it would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import pytest
import torch

import greenai
from greenai.testing import FakeGPU

STEP_CALLS = 10_000
"""Calls of the hot-path function per timed round."""

TRAIN_STEPS = 300
"""Optimizer steps per timed round of the training loop (tens of milliseconds)."""


@pytest.fixture
def running_job() -> Iterator[greenai.Tracker]:
    """A tracker that is sampling a FakeGPU on the real clock at the default period."""
    job = greenai.track("overhead", devices=[FakeGPU(seed=1)]).start()
    yield job
    if job.running:
        job.stop()


def _check_result(job: greenai.Tracker) -> None:
    """The tracker still measured something sensible after the hammering."""
    result = job.stop()
    assert result.energy_j is not None and math.isfinite(result.energy_j)
    assert result.period_s == pytest.approx(0.1)


# --- the hot path: what one mark costs --------------------------------------------------
@pytest.mark.benchmark(group="hot-path")
def test_floor_append_perf_counter(benchmark) -> None:
    """The floor: what step() must do at least (read the clock, append to a list)."""
    marks: list[float] = []
    now = time.perf_counter

    def mark() -> None:
        marks.append(now())

    benchmark.pedantic(mark, rounds=20, iterations=STEP_CALLS, warmup_rounds=1)
    assert marks


@pytest.mark.benchmark(group="hot-path")
def test_step(benchmark, running_job: greenai.Tracker) -> None:
    benchmark.pedantic(running_job.step, rounds=20, iterations=STEP_CALLS, warmup_rounds=1)
    _check_result(running_job)
    assert running_job.result.steps.count >= 1


@pytest.mark.benchmark(group="hot-path")
def test_step_with_samples(benchmark, running_job: greenai.Tracker) -> None:
    benchmark.pedantic(
        running_job.step,
        kwargs={"samples": 32},
        rounds=20,
        iterations=STEP_CALLS,
        warmup_rounds=1,
    )
    _check_result(running_job)
    steps = running_job.result.steps
    assert steps.samples == 32 * steps.count


@pytest.mark.benchmark(group="hot-path")
def test_phase_enter_exit(benchmark, running_job: greenai.Tracker) -> None:
    phase = running_job.phase

    def enter_exit() -> None:
        with phase("forward"):
            pass

    benchmark.pedantic(enter_exit, rounds=10, iterations=STEP_CALLS // 2, warmup_rounds=1)
    _check_result(running_job)
    assert running_job.result.phase("forward").count >= 1


# --- a Python-bound training loop, untracked vs tracked -----------------------------------
@pytest.fixture
def train_loop() -> Iterator[Callable[[greenai.Tracker | None, bool], float]]:
    """A small MLP on random data: each step is ~0.1 ms of Python and tiny kernels."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fewer pool wake-ups: less noise between rounds
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = [(torch.randn(32, 32), torch.randint(0, 10, (32,))) for _ in range(8)]

    def run(job: greenai.Tracker | None, phases: bool) -> float:
        loss = torch.zeros(())
        for i in range(TRAIN_STEPS):
            x, y = batches[i % len(batches)]
            if job is not None and phases:
                with job.phase("forward"):
                    loss = loss_fn(model(x), y)
                with job.phase("backward"):
                    optimizer.zero_grad()
                    loss.backward()
                with job.phase("optimizer"):
                    optimizer.step()
            else:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if job is not None:
                job.step(samples=len(x))
        return float(loss.detach())

    yield run
    torch.set_num_threads(threads)


@pytest.mark.benchmark(group="train-loop")
def test_train_untracked(benchmark, train_loop) -> None:
    loss = benchmark.pedantic(train_loop, args=(None, False), rounds=10, warmup_rounds=1)
    assert math.isfinite(loss)


@pytest.mark.benchmark(group="train-loop")
def test_train_tracked(benchmark, train_loop, running_job: greenai.Tracker) -> None:
    """The steady-state cost: the sampler thread plus one step() per optimizer step."""
    loss = benchmark.pedantic(train_loop, args=(running_job, False), rounds=10, warmup_rounds=1)
    assert math.isfinite(loss)
    _check_result(running_job)


@pytest.mark.benchmark(group="train-loop")
def test_train_tracked_with_phases(benchmark, train_loop, running_job: greenai.Tracker) -> None:
    """As above, plus three phase() blocks per step."""
    loss = benchmark.pedantic(train_loop, args=(running_job, True), rounds=10, warmup_rounds=1)
    assert math.isfinite(loss)
    _check_result(running_job)


@pytest.mark.benchmark(group="train-loop")
def test_train_tracked_including_start_stop(benchmark, train_loop) -> None:
    """A fresh tracker per round: adds device open, thread start/stop and the integration."""

    def tracked_round() -> greenai.Measurement:
        with greenai.track("train", devices=[FakeGPU(seed=2)]) as job:
            train_loop(job, False)
        return job.result

    result = benchmark.pedantic(tracked_round, rounds=10, warmup_rounds=1)
    assert result.steps.count == TRAIN_STEPS
    assert result.energy_j is not None and result.energy_j > 0


@pytest.mark.benchmark(group="train-loop-paired")
def test_train_paired_overhead(benchmark, train_loop, running_job: greenai.Tracker) -> None:
    """Untracked and tracked rounds back to back, so machine drift hits both alike.

    Each timed round is one pair; the per-pair slowdown (median over pairs) goes to
    ``extra_info["overhead_pct_median"]`` (see ``--benchmark-json``) and is printed (``-s``).
    """
    ratios: list[float] = []
    clock = time.perf_counter

    def timed(job: greenai.Tracker | None) -> float:
        start = clock()
        train_loop(job, False)
        return clock() - start

    def pair() -> None:
        if len(ratios) % 2:  # alternate the order: whichever runs second is not favoured
            tracked, untracked = timed(running_job), timed(None)
        else:
            untracked, tracked = timed(None), timed(running_job)
        ratios.append(tracked / untracked)

    benchmark.pedantic(pair, rounds=12, warmup_rounds=1)
    _check_result(running_job)
    ratios.sort()
    overhead_pct = 100.0 * (ratios[len(ratios) // 2] - 1.0)
    benchmark.extra_info["overhead_pct_median"] = round(overhead_pct, 2)
    benchmark.extra_info["pairs"] = len(ratios)
    print(f"\ntracked vs untracked, median over {len(ratios)} pairs: {overhead_pct:+.2f}%")
