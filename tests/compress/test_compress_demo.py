from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("sklearn")
pytest.importorskip("torch_pruning")
pytest.importorskip("optimum.quanto")

from greenai.compress.demo import (
    ResidualMLP,
    compress_demo,
    digits_accuracy,
    finetune_digits,
)


def test_finetune_trains_the_float_parameters_in_place() -> None:
    torch.manual_seed(0)
    model = ResidualMLP(width=16, hidden=32, blocks=1).eval()
    before = digits_accuracy(model)
    weight = model.stem.weight.detach().clone()
    assert finetune_digits(model) is None
    assert not torch.equal(model.stem.weight, weight) and not model.training
    assert digits_accuracy(model) > before + 0.02  # one gentle epoch: better than untrained


def test_the_demo_pipeline_is_over_ten_times_smaller_and_still_accurate(
    fast_options: dict[str, Any],
) -> None:
    threads = torch.get_num_threads()
    frame = compress_demo(methods="structured:0.5+int4wo", **fast_options)
    assert torch.get_num_threads() == threads  # put back after the sweep
    assert list(frame["status"]) == ["ok", "ok"], frame["reason"].tolist()
    base, pipe = frame.iloc[0], frame.iloc[1]
    assert base["accuracy"] > 0.9
    assert pipe["compression_ratio"] >= 10
    assert pipe["accuracy"] > base["accuracy"] - 0.1
    assert pipe["finetune_s"] > 0 and pipe["break_even"]
