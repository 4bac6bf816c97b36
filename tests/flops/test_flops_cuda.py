"""The CUDA side of the fused formulas: cuDNN RNNs and the fast paths on a GPU.

Skipped without CUDA (reported as skipped, never as passed). On a GPU machine run
``python -m pytest tests/flops/test_flops_cuda.py -ra``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.flops import count_flops

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA (cuDNN RNN, CUDA fast paths)"
)


@pytest.mark.parametrize(
    "build",
    [
        lambda: nn.LSTM(64, 128, num_layers=2, bidirectional=True),
        lambda: nn.LSTM(64, 128, proj_size=32),
        lambda: nn.GRU(64, 128, num_layers=2),
        lambda: nn.RNN(64, 128, bidirectional=True),
    ],
    ids=["lstm-2-bi", "lstm-proj", "gru-2", "rnn-bi"],
)
def test_cudnn_rnn_counts_as_on_cpu(build: object) -> None:
    module = build()  # type: ignore[operator]
    x = torch.randn(20, 4, 64)
    cpu = count_flops(module, x)
    gpu = count_flops(module.cuda(), x.cuda(), backward=True)
    assert "aten._cudnn_rnn" in gpu.by_operator
    assert gpu.forward == cpu.total
    assert gpu.backward == 2 * cpu.total  # data and weight gradients
    assert not gpu.uncounted


def test_fast_paths_count_as_on_cpu() -> None:
    mha = nn.MultiheadAttention(256, 8, batch_first=True).eval()
    layer = nn.TransformerEncoderLayer(256, 8, 512, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2).eval()
    x = torch.randn(4, 64, 256)
    with torch.no_grad():
        for model, args in ((mha, (x, x, x)), (encoder, (x,))):
            cpu = count_flops(model, *args)
            gpu = count_flops(model.cuda(), *(a.cuda() for a in args))
            assert gpu.total == cpu.total > 0
            assert not gpu.uncounted, gpu.uncounted


def test_products_count_as_on_cpu() -> None:
    a, v = torch.randn(4096, 1024), torch.randn(1024)
    assert count_flops(torch.mv, a.cuda(), v.cuda()).total == 8_388_608
    layer = nn.Linear(64, 32).cuda()
    x = torch.randn(8, 64, device="cuda", requires_grad=True)
    flops = count_flops(layer, x, backward=True)
    assert (flops.forward, flops.backward) == (32_768, 65_536)
