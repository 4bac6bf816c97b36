from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from greenai.paired import Protocol
from greenai.testing import FakeGPU


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.BatchNorm1d(32),
        nn.GELU(),
        nn.Linear(32, 4),
    ).eval()


@pytest.fixture
def fast_options() -> dict[str, Any]:
    """Sweep options that keep a row to a few tenths of a second, on a steady fake GPU."""
    return {
        "devices": [FakeGPU(power_w=100.0, noise_w=0.0, sensor_noise_w=0.0, update_period_s=0.01)],
        "period_s": 0.01,
        "min_window_s": 0.05,
        "warmup_s": 0.01,
        "latency_s": 0.01,
        "repeats": 2,
        # two rounds, a short warm-up: the protocol's own rules are tested in test_paired
        "protocol": Protocol(min_rounds=2, max_rounds=2, warmup_window=3, warmup_max_s=0.05),
    }


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core VM: intra-op threads only add wake-up latency."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
