"""Grouped GEMMs of Mixture-of-Experts layers are counted exactly (issue 23)."""

from __future__ import annotations

import pytest
import torch

from greenai.flops import count_flops
from greenai.flops.grouped import grouped_mm_flops


def _eager_experts(x: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """What a grouped GEMM computes, as one matmul per group."""
    out, start = [], 0
    for g, end in enumerate(offs.tolist()):
        out.append(x[start:end] @ w[g])
        start = end
    return torch.cat(out)


def test_grouped_mm_counts_what_eager_experts_count() -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 16)
    w = torch.randn(4, 32, 16).transpose(-2, -1)  # [G, K, N] with 16-byte strides
    offs = torch.tensor([3, 3, 9, 12], dtype=torch.int32)  # one empty group
    grouped = count_flops(lambda: torch._grouped_mm(x, w, offs=offs))
    eager = count_flops(lambda: _eager_experts(x, w, offs))
    assert grouped.nominal == eager.nominal == 2 * 12 * 16 * 32
    assert grouped.uncounted == {}
    assert torch.allclose(torch._grouped_mm(x, w, offs=offs), _eager_experts(x, w, offs), atol=1e-5)


def test_grouped_mm_backward_counts_both_gradients() -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 16, requires_grad=True)
    w = torch.randn(4, 32, 16).transpose(-2, -1).requires_grad_()
    offs = torch.tensor([3, 6, 9, 12], dtype=torch.int32)
    scale = torch.randn(12, 32)  # a dense gradient (the CPU kernel refuses a broadcast one)
    grouped = count_flops(lambda: torch._grouped_mm(x, w, offs=offs) * scale, backward=True)
    eager = count_flops(lambda: _eager_experts(x, w, offs) * scale, backward=True)
    assert grouped.forward == eager.forward
    assert grouped.nominal == eager.nominal == 3 * 2 * 12 * 16 * 32


@pytest.mark.parametrize(
    ("a", "b", "out", "flops"),
    [
        ((12, 16), (4, 16, 32), (12, 32), 2 * 12 * 16 * 32),  # rows split by offs
        ((4, 3, 16), (4, 16, 32), (4, 3, 32), 2 * 4 * 3 * 16 * 32),  # batched
        ((3, 16), (16, 40), (3, 40), 2 * 3 * 16 * 40),  # columns split by offs
        ((3, 20), (20, 8), (4, 3, 8), 2 * 3 * 8 * 20),  # K split by offs (weight grad)
    ],
)
def test_grouped_mm_formula_for_every_layout(
    a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...], flops: int
) -> None:
    assert grouped_mm_flops(a, b, out) == flops


def _mixtral(experts: str | None) -> tuple[torch.nn.Module, torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    config = transformers.MixtralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=64,
    )
    kwargs = {} if experts is None else {"experts_implementation": experts}
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM._from_config(config, **kwargs).eval()
    return model, torch.randint(0, 64, (2, 8))


def test_mixtral_default_experts_count_the_same_flops_as_eager() -> None:
    """transformers' default MoE path (grouped_mm) used to read a third of the FLOPs."""
    default, ids = _mixtral(None)
    eager, _ = _mixtral("eager")
    assert default.config._experts_implementation != "eager"
    with torch.no_grad():
        a, b = count_flops(default, ids), count_flops(eager, ids)
        assert torch.allclose(default(ids).logits, eager(ids).logits, atol=1e-4)
    assert a.uncounted == {} and b.uncounted == {}
    assert a.nominal == b.nominal
    assert any("grouped GEMM" in n for n in a.notes)
