"""Published FLOP counts of reference models, reproduced without running the arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import flop_counter as torch_flops

from greenai.flops import FlopCount, count_flops

aten = torch.ops.aten

T = 512
ATTENTION = 9_663_676_416  # 12 layers x 4·512²·768: QK^T and AV, dense


def test_resnet50_forward_is_8_18_gflop(resnet50_meta: nn.Module) -> None:
    # torchvision publishes 4.09 GMACs for resnet50 at 224x224; 1 MAC = 2 FLOPs.
    flops = count_flops(resnet50_meta, torch.empty(1, 3, 224, 224, device="meta"))
    assert flops.total == pytest.approx(8.18e9, rel=0.01)
    assert flops.total == 8_178_368_512
    assert flops.executed == flops.nominal
    assert set(flops.by_operator) == {"aten.convolution", "aten.addmm"}


def test_resnet50_training_is_about_3x_forward(resnet50_meta: nn.Module) -> None:
    x = torch.empty(1, 3, 224, 224, device="meta")
    flops = count_flops(resnet50_meta, x, backward=True)
    assert flops.forward == 8_178_368_512
    # 2.97: nothing needs the gradient of the image, so the stem's input-grad conv is skipped.
    assert flops.total / flops.forward == pytest.approx(3.0, rel=0.02)
    assert flops.backward == flops.total - flops.forward


def test_gpt2_small_forward_is_136_2_gflop_on_cpu(gpt2_forward: FlopCount) -> None:
    # 136.2 GFLOP = linear layers 86.97 + tied lm head 39.52 (2·768·50257·512) + attention
    # 9.66, dense: nominal does not halve the causal mask (FlopCounterMode's CUDA convention).
    assert gpt2_forward.total == pytest.approx(136.2e9, rel=0.01)
    assert gpt2_forward.by_operator == {
        "aten.addmm": 86_973_087_744,
        "aten.mm": 39_523_713_024,
        "aten._scaled_dot_product_flash_attention_for_cpu": ATTENTION,
    }
    # is_causal=True was passed: the fused kernel skips the masked half.
    assert gpt2_forward.executed == gpt2_forward.total - ATTENTION // 2


def test_gpt2_cpu_count_equals_the_math_path_count(
    gpt2_forward: FlopCount, gpt2_meta: nn.Module
) -> None:
    # On the meta device SDPA runs its math path (two bmm per layer), which FlopCounterMode
    # counts with its own bmm formula: an independent check of the CPU attention formula.
    counter = torch_flops.FlopCounterMode(display=False)
    with counter:
        gpt2_meta(torch.zeros(1, T, dtype=torch.long, device="meta"))
    assert counter.get_total_flops() == gpt2_forward.total
    ops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert ops["aten.bmm"] == ATTENTION


def test_cpu_attention_formula_is_torchs_cuda_formula() -> None:
    # FlopCounterMode's formula for the CUDA flash/efficient kernels, same shapes.
    q = k = v = torch.empty(1, 12, T, 64, device="meta")
    per_layer = torch_flops.flop_registry[aten._scaled_dot_product_flash_attention](q, k, v)
    assert 12 * per_layer == ATTENTION
    qkv = (torch.empty(1, 12, T, 64) for _ in range(3))
    fused = count_flops(F.scaled_dot_product_attention, *qkv, fake=True)
    assert fused.by_operator == {"aten._scaled_dot_product_flash_attention_for_cpu": per_layer}


def test_gpt2_training_is_about_3x_forward(
    gpt2_training: FlopCount, gpt2_forward: FlopCount
) -> None:
    assert gpt2_training.forward == gpt2_forward.total
    # 3.035: fused attention's backward is 2.5x its forward (the scores are recomputed).
    assert gpt2_training.total / gpt2_training.forward == pytest.approx(3.0, rel=0.02)
    backward = gpt2_training.by_operator[
        "aten._scaled_dot_product_flash_attention_for_cpu_backward"
    ]
    assert backward == 5 * ATTENTION // 2


def test_gpt2_causal_option_halves_attention(
    gpt2_cpu: nn.Module, gpt2_tokens: torch.Tensor, gpt2_forward: FlopCount
) -> None:
    causal = count_flops(gpt2_cpu, gpt2_tokens, fake=True, causal=True)
    assert causal.total == gpt2_forward.total - ATTENTION // 2
    assert causal.executed == causal.total == gpt2_forward.executed
    assert any("causal=True" in n for n in causal.notes)
