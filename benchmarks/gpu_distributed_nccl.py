"""A 1-GPU torchrun job through the real NCCL path, checked end to end.

Run on a machine with an NVIDIA GPU, PyTorch with CUDA, and nvidia-ml-py::

    PYTHONPATH=. torchrun --nproc_per_node=1 benchmarks/gpu_distributed_nccl.py --out nccl.md

(``--nproc_per_node=N`` on an N-GPU machine works too.) Each rank initialises an NCCL
process group, tracks a bf16 matmul loop (with phases, steps and FLOPs) with discovered
devices — so ownership is the real rule: its ``LOCAL_RANK`` GPU, host devices on local
rank 0 — all-reduces a tensor every step, and stops. Rank 0 checks the job record (one
record, every rank present, each GPU counted once, totals equal the sum of the unique
devices, FLOPs summed) and writes a markdown table to ``--out`` (default ``$OUT/nccl.md``
when ``OUT`` is set) and stdout. Exits 2 when there is no usable GPU, 1 when a check fails.

``--selftest`` runs the same job on CPU with gloo and a FakeGPU per rank: no GPU needed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import greenai
from greenai.testing import FakeGPU


def _devices(selftest: bool, local_rank: int) -> Any:
    if selftest:
        return [FakeGPU(f"gpu{local_rank}", power_w=250.0, uuid=f"GPU-fake-{local_rank}")]
    return None  # discovery: NVML GPUs (this rank's), RAPL or models for the host


def _check(job: greenai.Measurement, world: int) -> list[str]:
    record = job.job
    problems = []
    if record is None or record.scope != "job":
        return ["rank 0 has no job record"]
    if not record.complete:
        problems.append(f"missing ranks {record.missing_ranks}")
    if len(record.ranks) != world:
        problems.append(f"{len(record.ranks)} ranks in the record, expected {world}")
    ids = [(d.host, d.device_id) for d in record.devices]
    if len(ids) != len(set(ids)):
        problems.append("a device is counted twice")
    gpus = [d for d in record.devices if d.kind == "gpu"]
    if len(gpus) != world:
        problems.append(f"{len(gpus)} GPUs counted for {world} ranks")
    total = math.fsum(d.energy_j for d in record.devices)
    if job.energy_j is None or not math.isclose(job.energy_j, total, rel_tol=1e-9):
        problems.append(f"job energy {job.energy_j} != sum of unique devices {total}")
    flops = math.fsum(r.flops or 0.0 for r in record.ranks)
    if job.flops is None or not math.isclose(job.flops, flops, rel_tol=1e-12):
        problems.append(f"job FLOPs {job.flops} != sum over ranks {flops}")
    return problems


def _table(job: greenai.Measurement) -> str:
    record = job.job
    assert record is not None
    lines = [
        f"# torchrun job through {record.backend}: {record.world_size} rank(s)",
        "",
        f"- job energy: {job.energy_j:.1f} J ± {job.uncertainty_j:.1f} J in {job.duration_s:.2f} s "
        f"[{', '.join(job.methods)}]",
        f"- work: {job.tflop:.1f} TFLOP, {job.j_per_tflop:.3f} J/TFLOP",
        f"- gather: {1000 * (record.gather_s or 0):.2f} ms, {record.payload_bytes} bytes",
        "",
        "| device | rank | method | energy (J) | ± (J) | also read by |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d in record.devices:
        lines.append(
            f"| {d.name} | {d.rank} | {d.method} | {d.energy_j:.1f} | {d.uncertainty_j:.1f} "
            f"| {list(d.duplicates) or ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--selftest", action="store_true")
    args = parser.parse_args(argv)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.selftest:
        dist.init_process_group("gloo")
        device, dtype, size = torch.device("cpu"), torch.float32, 128
    else:
        if not torch.cuda.is_available():
            print("no CUDA GPU here: run with --selftest, or on a GPU machine", file=sys.stderr)
            return 2
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
        device, dtype, size = torch.device("cuda", local_rank), torch.bfloat16, args.size
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    grad = torch.ones(1024, device=device)
    job = greenai.track("nccl-check", devices=_devices(args.selftest, local_rank), dtype=dtype)
    with job:
        for _ in range(args.steps):
            with job.phase("matmul"):
                a @ b
            with job.phase("allreduce"):
                dist.all_reduce(grad)
            if device.type == "cuda":
                torch.cuda.synchronize()
            job.step(samples=1)
        job.add_flops(2.0 * size**3 * args.steps)
    code = 0
    if dist.get_rank() == 0:
        problems = _check(job.result, dist.get_world_size())
        report = _table(job.result) + "".join(f"\nCHECK FAILED: {p}" for p in problems)
        print(report)
        out = args.out or (Path(os.environ["OUT"]) / "nccl.md" if "OUT" in os.environ else None)
        if out is not None:
            out.write_text(report)
        code = 1 if problems else 0
    dist.destroy_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
