from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

import greenai
from greenai.measurement import DeviceEnergy, Measurement
from greenai.testing import FakeClock, FakeGPU


@dataclass(frozen=True)
class Run:
    measurement: Measurement
    timeline: pd.DataFrame
    phase_spans: pd.DataFrame


@pytest.fixture(scope="session")
def run() -> Run:
    """A real tracked job on two fake GPUs (counter and power), FRA grid, PUE 1.2."""
    clock = FakeClock()
    devices = [
        FakeGPU("gpu0", clock=clock, seed=1),
        FakeGPU("gpu1", counter=False, power_w=200.0, clock=clock, seed=2),
    ]
    job = greenai.track("train", devices=devices, clock=clock, country="FRA", pue=1.2)
    with job:
        for _ in range(2):
            with job.phase("epoch"):
                for _ in range(3):
                    with job.phase("forward"):
                        clock.advance(0.2)
                    with job.phase("backward"):
                        clock.advance(0.3)
                    job.step(samples=32, tokens=4096)
        clock.advance(0.1)
        job.add_flops(2e14)
    return Run(job.result, job.timeline(), job.phase_spans())


@pytest.fixture(scope="session")
def model_only() -> Measurement:
    """A CPU-only measurement whose energy is a model estimate, without grid or FLOPs."""
    return Measurement(
        name="infer",
        status="completed",
        started_at="2025-01-01T00:00:00+00:00",
        duration_s=10.0,
        energy_j=650.0,
        uncertainty_j=195.0,
        avg_power_w=65.0,
        peak_power_w=80.0,
        devices=(
            DeviceEnergy(
                name="cpu",
                kind="cpu",
                method="model",
                energy_j=650.0,
                uncertainty_j=195.0,
                avg_power_w=65.0,
                peak_power_w=80.0,
                samples=100,
            ),
        ),
        notes=("MFU not computed: it needs a GPU and a known compute dtype (dtype=)",),
    )
