"""Fixtures: reference models with uninitialised weights (counted, never computed with)."""

from __future__ import annotations

import pytest
import torch
from flops_models import GPT, resnet50
from torch import nn

from greenai.flops import FlopCount, count_flops


@pytest.fixture(scope="session")
def resnet50_meta() -> nn.Module:
    """ResNet-50 on the meta device: FlopCounterMode counts it without any arithmetic."""
    with torch.device("meta"):
        return resnet50()


@pytest.fixture(scope="session")
def gpt2_cpu() -> nn.Module:
    """GPT-2 small with uninitialised CPU weights (count it with fake=True).

    to_empty unties the head from the embedding: count parameters on gpt2_meta.
    """
    with torch.device("meta"):
        model = GPT()
    return model.to_empty(device="cpu")


@pytest.fixture(scope="session")
def gpt2_meta() -> nn.Module:
    with torch.device("meta"):
        return GPT()


@pytest.fixture(scope="session")
def gpt2_tokens() -> torch.Tensor:
    return torch.zeros(1, 512, dtype=torch.long)


@pytest.fixture(scope="session")
def gpt2_forward(gpt2_cpu: nn.Module, gpt2_tokens: torch.Tensor) -> FlopCount:
    """GPT-2 small, one sequence of 512 tokens, forward, CPU attention kernels (fake run)."""
    return count_flops(gpt2_cpu, gpt2_tokens, fake=True)


@pytest.fixture(scope="session")
def gpt2_training(gpt2_cpu: nn.Module, gpt2_tokens: torch.Tensor) -> FlopCount:
    return count_flops(gpt2_cpu, gpt2_tokens, fake=True, backward=True)
