from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import pytest

import greenai
from greenai.distributed import RankInfo, RankPayload
from greenai.distributed.session import rank_payload
from greenai.testing import FakeClock, FakeGPU

Rank = Callable[..., tuple[greenai.Tracker, RankPayload]]


@pytest.fixture
def run_rank() -> Rank:
    """Run one simulated rank on a FakeClock; return its stopped tracker and its payload."""

    def run(
        rank: int,
        host: str,
        gpus: Sequence[tuple[str, str, float]],
        *,
        world_size: int = 2,
        local_rank: int = 0,
        steps: int = 4,
        flops: float = 0.0,
        samples: int | None = 8,
        phases: bool = True,
    ) -> tuple[greenai.Tracker, RankPayload]:
        clock = FakeClock()
        devices = [
            FakeGPU(name, power_w=watts, uuid=uuid, seed=rank, clock=clock)
            for name, uuid, watts in gpus
        ]
        job = greenai.Tracker("sim", devices=devices, clock=clock, distributed=False)
        with job:
            for _ in range(steps):
                with job.phase("fwd") if phases else contextlib.nullcontext():
                    clock.advance(0.3)
                clock.advance(0.2)
                job.step(samples=samples)
            if flops:
                job.add_flops(flops)
        info = RankInfo(
            rank=rank,
            world_size=world_size,
            local_rank=local_rank,
            local_world_size=2,
            host=host,
            backend="gloo",
        )
        return job, rank_payload(job, job.result, info)

    return run
