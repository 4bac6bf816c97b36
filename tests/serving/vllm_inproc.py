"""Run with vLLM's Python: vLLM's LLM in this process, greenai marking each engine step.

Usage: python vllm_inproc.py MODEL_DIR; prints one JSON line (rows, totals, token counts).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine core in-process
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from vllm import LLM, SamplingParams

import greenai
from greenai.devices import discover
from greenai.serving import ServingMeter
from greenai.serving.vllm import generate


def main(model: str) -> None:
    llm = LLM(model=model, max_model_len=256, dtype="bfloat16")
    params = [SamplingParams(max_tokens=n, ignore_eos=True) for n in (16, 16, 64, 64)]
    with greenai.track("vllm-inproc", devices=discover(), period_s=0.05) as job:
        meter = ServingMeter(job)
        outs = generate(llm, ["the quick brown fox"] * 4, params, meter)
    meter.settle(final=True)
    print(
        json.dumps(
            {
                "tokens": [len(o.outputs[0].token_ids) for o in outs],
                "rows": [r.to_dict() for r in meter.recent],
                "totals": meter.totals().to_dict(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
