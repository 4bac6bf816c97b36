from __future__ import annotations

import pytest
import torch

from greenai.bench import workloads as w
from greenai.bench.suite import SUITES
from greenai.errors import ConfigError
from greenai.flops import count_flops


def test_gemm_flops_are_exactly_2mnk_and_it_computes_the_product() -> None:
    workload = w.gemm(48, "fp32", m=16, k=32)
    assert workload.name == "gemm-fp32-16x48x32"
    prepared = workload.build("cpu")
    assert prepared.flops_per_step == 2 * 16 * 48 * 32
    assert prepared.samples_per_step == 16
    prepared.step()
    assert w.gemm(64, "bf16").build("cpu").flops_per_step == 2 * 64**3


def test_model_flops_come_from_count_flops_forward_and_backward() -> None:
    prepared = w.convnet_train(2, image=8, width=4).build("cpu")
    torch.manual_seed(0)
    assert prepared.flops_per_step > 0 and prepared.samples_per_step == 2
    prepared.step()  # a real training step runs
    inference = w.inference(3, seq=8, d_model=16, layers=1, heads=2, vocab=50).build("cpu")
    train = w.transformer(3, seq=8, d_model=16, layers=1, heads=2, vocab=50).build("cpu")
    # backward is about twice the forward: a training step is about 3x the inference pass
    assert 2.5 < train.flops_per_step / inference.flops_per_step < 3.5
    tokens = torch.zeros(3, 8, dtype=torch.long)
    model = w.transformer_model(50, 16, 1, 2)
    assert inference.flops_per_step == count_flops(model, tokens).nominal


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(ConfigError, match="dtype must be one of"):
        w.gemm(8, "int3")


def test_every_suite_has_unique_names_and_the_issue_workloads() -> None:
    for build in SUITES.values():
        suite = build()
        names = [x.name for x in suite.workloads]
        assert len(names) == len(set(names))
        kinds = {x.kind for x in suite.workloads}
        assert kinds == {"gemm", "convnet-train", "transformer-train", "inference"}
        assert len({x.params["batch"] for x in suite.workloads if x.kind == "inference"}) >= 2
