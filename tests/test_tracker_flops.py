from __future__ import annotations

import pytest
import torch

import greenai
from greenai.errors import ConfigError
from greenai.flops import peak_flops_per_s
from greenai.testing import FakeClock, FakeGPU


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class NamedFakeGPU(FakeGPU):
    """A FakeGPU that says which real GPU it stands for, as NvidiaGPU does after open()."""

    model = "NVIDIA H100 80GB HBM3"


def test_added_flops_give_energy_per_tflop_it_and_pue_weighted(clock: FakeClock) -> None:
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock, pue=1.25) as job:
        clock.advance(1.0)
        job.add_flops(3e12)
        job.add_flops(1e12, executed=0.5e12)
    r = job.result
    assert r.flops == 4e12 and r.flops_executed == 3.5e12
    assert r.tflop == pytest.approx(4.0)
    assert r.j_per_tflop == pytest.approx(r.energy_j / 4.0)
    assert r.kwh_per_tflop == pytest.approx(r.energy_j / 4.0 / 3.6e6)
    assert r.kwh_per_tflop_pue == pytest.approx(r.facility_energy_kwh / 4.0)
    assert r.tflops_per_s == pytest.approx(4.0 / r.duration_s)
    assert r.to_dict()["j_per_tflop"] == pytest.approx(r.j_per_tflop)


def test_count_flops_in_the_loop_counts_each_shape_once(clock: FakeClock) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False), torch.nn.ReLU())
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
        for batch in (8, 8, 8, 4):
            count = job.count_flops(model, torch.randn(batch, 64))
            clock.advance(0.1)
            job.step(samples=batch)
    (cache,) = job.work.caches.values()
    assert (cache.misses, cache.hits) == (2, 2)
    assert count.nominal == 2 * 4 * 64 * 32
    assert job.result.flops == 2 * 64 * 32 * (8 + 8 + 8 + 4)


def test_count_once_per_step_multiplies_by_steps(clock: FakeClock) -> None:
    model = torch.nn.Linear(16, 16, bias=False)
    x = torch.randn(2, 16)
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
        one = job.count_flops(model, x, backward=True, per_step=True)
        for _ in range(5):
            clock.advance(0.1)
            job.step()
    r = job.result
    assert one.forward == 2 * 2 * 16 * 16 and one.nominal > one.forward
    assert r.flops == 5 * one.nominal
    assert r.steps.flops == r.flops
    assert r.steps.j_per_tflop == pytest.approx(r.steps.total_energy_j / (r.flops / 1e12))


def test_mfu_against_the_datasheet_peak_of_the_gpu(clock: FakeClock) -> None:
    with greenai.track(
        devices=[NamedFakeGPU(clock=clock)], clock=clock, dtype="bf16", flops_per_step=1e14
    ) as job:
        for _ in range(4):
            clock.advance(0.5)
            job.step()
    r = job.result
    peak = peak_flops_per_s("NVIDIA H100 80GB HBM3", "bf16")
    assert peak is not None and r.peak_flops_per_s == peak
    assert r.mfu == pytest.approx(4e14 / 2.0 / peak)


def test_mfu_absent_without_a_known_gpu_and_says_why(clock: FakeClock) -> None:
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock, flops_per_step=1e9) as job:
        clock.advance(0.2)
        job.step()
    assert job.result.mfu is None
    assert any("MFU not computed" in n for n in job.result.notes)


def test_negative_flops_are_refused() -> None:
    with pytest.raises(ConfigError, match="flops_per_step"):
        greenai.track(flops_per_step=-1)
    job = greenai.track(devices=[])
    with job, pytest.raises(ConfigError, match="non-negative"):
        job.add_flops(-5)


def test_unknown_dtype_is_refused_before_the_job_not_at_stop() -> None:
    with pytest.raises(ConfigError, match="unknown dtype"):
        greenai.track(dtype="fp4")
