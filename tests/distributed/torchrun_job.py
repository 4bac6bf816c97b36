"""A 2-rank job run by tests/distributed/test_distributed_torchrun.py under torchrun (gloo, CPU).

Usage: python -m torch.distributed.run --nproc_per_node=2 torchrun_job.py OUT MODE
MODE: ``shared`` (both ranks read one shared GPU), ``twonode`` (each rank its own host id),
``die`` (rank 1 fails with exit code 1 while rank 0 stops: torchrun then sends rank 0
SIGTERM while it waits for rank 1's payload), ``trainer`` (a transformers Trainer with
greenai's callback, DDP over gloo: the Trainer sets up the process group).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

import greenai
from greenai.testing import FakeGPU


def trainer_job(out: Path) -> None:
    import transformers

    from greenai.integrations.transformers import GreenAICallback

    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])

    class Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
        def __init__(self, n: int) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(5, 100, (n, 16), generator=g)
            self.labels = torch.randint(0, 2, (n,), generator=g)

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    gpu = FakeGPU(f"gpu{local}", power_w=100.0 + 100.0 * rank, seed=rank, uuid=f"GPU-{rank}")
    callback = GreenAICallback(devices=[gpu], store=out / "runs.db", flops="none")
    args = transformers.TrainingArguments(
        output_dir=str(out / "hf"), per_device_train_batch_size=4, max_steps=4,
        report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
        ddp_backend="gloo", eval_strategy="no", logging_steps=2,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=transformers.BertForSequenceClassification(config),
        args=args,
        train_dataset=Tokens(64),
        callbacks=[callback],
    )
    trainer.train()
    assert callback.result is not None
    (out / f"rank{rank}.json").write_text(json.dumps(callback.result.to_dict()))


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "trainer":
        trainer_job(out)
        return
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
        if mode == "die":
            store = dist.distributed_c10d._get_default_store()
            if rank == 1:  # dies once rank 0 is about to stop: it must still record the job
                store.wait(["test/rank0-stopping"])
                time.sleep(0.5)  # let rank 0 reach its wait for the payloads
                os._exit(1)
            store.set("test/rank0-stopping", b"1")
        if mode != "die":
            dist.barrier()
    (out / f"rank{rank}.json").write_text(json.dumps(job.result.to_dict()))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
