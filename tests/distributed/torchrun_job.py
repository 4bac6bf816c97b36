"""A 2-rank job run by tests/distributed/test_distributed_torchrun.py under torchrun (gloo, CPU).

Usage: python -m torch.distributed.run --nproc_per_node=2 torchrun_job.py OUT MODE
MODE: ``shared`` (both ranks read one shared GPU), ``twonode`` (each rank its own host id),
``die`` (rank 1 exits without stopping its tracker).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import greenai
from greenai.testing import FakeGPU


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo")
    rank, local = dist.get_rank(), int(os.environ["LOCAL_RANK"])
    if mode == "twonode":
        os.environ["GREENAI_HOST_ID"] = f"node{rank}"
    devices = [
        FakeGPU(f"gpu{local}", power_w=100.0 + 100.0 * rank, seed=rank, uuid=f"GPU-{rank}"),
        FakeGPU("shared", power_w=50.0, seed=9, uuid="GPU-shared"),
    ]
    job = greenai.track("ddp", devices=devices, store=out / "runs.db", checkpoint_s=60)
    with job:
        for _ in range(3):
            with job.phase("compute"):
                x = torch.ones(64, 64)
                dist.all_reduce(x)
            job.step(samples=8)
        job.add_flops(1e12 * (rank + 1))
        if mode == "die" and rank == 1:
            os._exit(0)  # dies without stop(): rank 0 must still finish
        if mode != "die":
            dist.barrier()
    (out / f"rank{rank}.json").write_text(json.dumps(job.result.to_dict()))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
