"""Runs the store tests save, on either backend: one tracked job and one small Measurement."""

from __future__ import annotations

import greenai
from greenai.measurement import Measurement
from greenai.testing import FakeClock, FakeGPU


def tracked_job() -> greenai.Tracker:
    """A finished job on two fake GPUs (one counter, one power) with nested phases."""
    clock = FakeClock()
    gpus = [FakeGPU("gpu0", clock=clock, power_w=300.0, seed=1)]
    gpus.append(FakeGPU("gpu1", clock=clock, power_w=500.0, seed=2, counter=False))
    with greenai.track("train", devices=gpus, clock=clock, carbon_intensity_g_per_kwh=400.0) as job:
        with job.phase("fwd"):
            clock.advance(1.0)
            with job.phase("attn"):
                clock.advance(0.5)
        job.step(samples=8)
        clock.advance(1.0)
        job.step(samples=8)
    return job


def small_measurement(name: str = "m", status: str = "completed") -> Measurement:
    """A 2 s, 100 J ± 1 J Measurement started 2025-01-01."""
    return Measurement(
        name=name,
        status=status,  # type: ignore[arg-type]
        started_at="2025-01-01T00:00:00.000+00:00",
        duration_s=2.0,
        energy_j=100.0,
        uncertainty_j=1.0,
        avg_power_w=50.0,
        peak_power_w=60.0,
    )
