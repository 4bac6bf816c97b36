"""What assembling a distributed job costs rank 0 as the job grows (2 → 256 ranks).

An in-process simulation of the gather: each simulated rank writes the payload of a
synthetic Measurement into a real ``torch.distributed.HashStore`` under its key (as ranks do
into the process group's TCPStore), and the timed part is rank 0's side: read every key,
decode the payloads and aggregate them into one job record. Network time is left out (a
TCPStore adds one round trip per key). Payload sizes go to ``extra_info``::

    .venv/bin/python -m pytest benchmarks/test_distributed_gather.py --benchmark-json=g.json

Each rank has one GPU, 3 phases and 100 steps; local rank 0 of each 8-rank node also has
the host's CPU package and DRAM.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from greenai.distributed import RankInfo, RankPayload, StoreGather, aggregate
from greenai.measurement import DeviceEnergy, Measurement, PhaseEnergy, StepEnergy

RANKS_PER_NODE = 8
STEPS = 100
PHASES = ("forward", "backward", "optimizer", "(other)")


def synthetic_payload(rank: int, world_size: int) -> RankPayload:
    """A plausible rank result: one GPU at ~600 W (plus CPU and DRAM on local rank 0)."""
    local = rank % RANKS_PER_NODE
    duration = 60.0
    devices = [
        DeviceEnergy(f"gpu{local}", "gpu", "counter", 600.0 * duration, 30.0, 600.0, 700.0, 600)
    ]
    if local == 0:
        devices.append(
            DeviceEnergy("cpu0-package", "cpu", "counter", 9000.0, 5.0, 150.0, 180.0, 600)
        )
        devices.append(DeviceEnergy("cpu0-dram", "dram", "counter", 1800.0, 2.0, 30.0, 35.0, 600))
    share = [0.3, 0.5, 0.15, 0.05]
    energy = sum(d.energy_j for d in devices)
    m = Measurement(
        name="pretrain",
        status="completed",
        started_at="2026-11-23T12:00:00.000+00:00",
        duration_s=duration,
        energy_j=energy,
        uncertainty_j=sum(d.uncertainty_j for d in devices),
        avg_power_w=energy / duration,
        peak_power_w=900.0,
        devices=tuple(devices),
        phases=tuple(
            PhaseEnergy(p, STEPS, duration * s, energy * s, 1.0)
            for p, s in zip(PHASES, share, strict=True)
        ),
        steps=StepEnergy(
            count=STEPS,
            duration_s=(duration / STEPS,) * STEPS,
            energy_j=(energy / STEPS,) * STEPS,
            uncertainty_j=(0.5,) * STEPS,
            samples=32 * STEPS,
        ),
        flops=1e15,
        flops_executed=1e15,
    )
    info = RankInfo(
        rank=rank,
        world_size=world_size,
        local_rank=local,
        local_world_size=RANKS_PER_NODE,
        host=f"node{rank // RANKS_PER_NODE:03d}",
        backend="nccl",
    )
    phases = {
        d.name: {p: [d.energy_j * s, 0.5] for p, s in zip(PHASES, share, strict=True)}
        for d in devices
    }
    ids = {d.name: f"GPU-{rank}" if d.kind == "gpu" else f"{d.kind}:{d.name}" for d in devices}
    return RankPayload.build(info, m, ids, phases)


@pytest.mark.parametrize("world_size", [2, 8, 32, 128, 256])
@pytest.mark.benchmark(group="distributed-gather")
def test_gather_and_aggregate(benchmark, world_size: int) -> None:
    payloads = [synthetic_payload(r, world_size) for r in range(world_size)]
    blobs = [p.to_bytes() for p in payloads]

    def setup() -> tuple[tuple[StoreGather, bytes], dict[str, object]]:
        store = dist.HashStore()
        gathers = [StoreGather(store, r, world_size, timeout_s=5.0) for r in range(world_size)]
        for g in gathers:
            g.begin()
        for g, blob in zip(gathers[1:], blobs[1:], strict=True):
            g.send(blob)
        return (gathers[0], blobs[0]), {}

    def rank_zero(gather: StoreGather, own: bytes) -> Measurement:
        received, missing = gather.collect()
        assert not missing
        ranks = [RankPayload.from_bytes(own)] + [
            RankPayload.from_bytes(b) for b in received.values()
        ]
        return aggregate(ranks, world_size=world_size)

    job = benchmark.pedantic(rank_zero, setup=setup, rounds=5 if world_size > 32 else 20)
    nodes = -(-world_size // RANKS_PER_NODE)
    assert job.job is not None and job.job.complete
    assert len(job.job.nodes) == nodes and len(job.devices) == world_size + 2 * nodes
    expected = world_size * 600.0 * 60.0 + nodes * (9000.0 + 1800.0)
    assert job.energy_j == pytest.approx(expected)
    benchmark.extra_info["world_size"] = world_size
    benchmark.extra_info["payload_bytes_total"] = sum(len(b) for b in blobs)
    benchmark.extra_info["payload_bytes_rank0"] = len(blobs[0])
    benchmark.extra_info["payload_bytes_rank1"] = len(blobs[1])


def test_nccl_script_selftest_runs_under_torchrun(tmp_path: Path) -> None:
    """benchmarks/gpu_distributed_nccl.py --selftest: the GPU script's path, on CPU/gloo."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).with_name("gpu_distributed_nccl.py")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    env.pop("OUT", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
               "--master_addr=127.0.0.1", f"--master_port={port}", str(script), "--selftest",
               "--steps", "20", "--out", str(tmp_path / "nccl.md")]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = (tmp_path / "nccl.md").read_text()
    assert "through gloo: 1 rank(s)" in report and "CHECK FAILED" not in report
