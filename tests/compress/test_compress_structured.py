from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.compress import StructuredL1, parameter_count, parse_method
from greenai.compress.structured import attention_heads, output_layers
from greenai.errors import ConfigError
from greenai.flops import count_flops
from tests.compress.models import (
    ResidualCNN,
    ResidualMLP,
    TinyTransformer,
    torch_transformer,
)

pytest.importorskip("torch_pruning", reason="structured pruning needs greenai[prune]")


def _prune(model: nn.Module, x: torch.Tensor, amount: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    model.eval()
    method = StructuredL1(amount)
    pruned = method.apply(model, x)
    assert method.notes and "of parameters removed" in method.notes[0]
    return pruned


@pytest.mark.parametrize(
    ("build", "x"),
    [
        (ResidualMLP, torch.randn(4, 16)),
        (ResidualCNN, torch.randn(2, 3, 8, 8)),
        (TinyTransformer, torch.randn(2, 5, 8)),
        (torch_transformer, torch.randn(2, 5, 8)),
    ],
    ids=["residual-mlp", "residual-cnn", "attention", "nn-transformer"],
)
def test_half_the_parameters_and_a_third_of_the_flops_go(
    build: type[nn.Module], x: torch.Tensor
) -> None:
    torch.manual_seed(0)
    model = build().eval()
    before_params, before_flops = parameter_count(model), count_flops(model, x).nominal
    with torch.no_grad():
        reference = model(x)
    pruned = _prune(model, x)
    removed = 1 - parameter_count(pruned) / before_params
    assert removed == pytest.approx(0.5, abs=0.06)
    assert count_flops(pruned, x).nominal <= 0.7 * before_flops
    with torch.no_grad():
        assert pruned(x).shape == reference.shape
        torch.testing.assert_close(model(x), reference)  # the original is untouched
    assert parameter_count(model) == before_params


def test_residual_stream_and_bn_shrink_together_and_the_head_keeps_its_outputs() -> None:
    torch.manual_seed(0)
    model = ResidualCNN().eval()
    pruned = _prune(model, torch.randn(2, 3, 8, 8))
    stem, bn = pruned.stem[0], pruned.stem[1]
    assert stem.out_channels < 16 and bn.num_features == stem.out_channels
    for block in pruned.blocks:  # the residual additions force one width on the stream
        assert block[0].in_channels == block[3].out_channels == stem.out_channels
        assert block[1].num_features == block[0].out_channels
    assert pruned.head.in_features == stem.out_channels and pruned.head.out_features == 5


def test_attention_heads_are_kept_consistent() -> None:
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    assert set(attention_heads(model).values()) == {4}
    pruned = _prune(model, torch.randn(2, 5, 8))
    for layer in pruned.layers:
        attn = layer["attn"]
        assert attn.num_heads == 4
        assert attn.qkv.out_features % (3 * 4) == 0  # q, k and v keep whole heads each
        assert attn.qkv.out_features < 3 * 32


def test_output_layers_are_found_through_residuals_and_pooling() -> None:
    model = ResidualMLP().eval()
    assert output_layers(model, (torch.randn(2, 16),)) == [model.head]
    body = nn.Sequential(model.stem, model.blocks).eval()  # the residual stream is the output
    found = set(map(id, output_layers(body, (torch.randn(2, 16),))))
    assert found == {id(body[0]), *(id(b.b) for b in body[1])}


class _FrozenHeads(nn.Module):
    """Attention whose head count and size are hard-coded in the reshape (no attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(32, 96)
        self.proj = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, 4, 8).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, 32))


def test_a_model_that_breaks_when_pruned_is_refused_with_the_reason() -> None:
    model = nn.Sequential(nn.Linear(8, 32), _FrozenHeads(), nn.Linear(32, 3)).eval()
    with pytest.raises(ConfigError, match=r"cannot prune|no longer runs"):
        StructuredL1(0.5).apply(model, torch.randn(2, 5, 8))


def test_nothing_to_prune_and_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="nothing to prune"):
        StructuredL1(0.5).apply(nn.Linear(4, 2), torch.randn(1, 4))
    with pytest.raises(ConfigError, match="example inputs"):
        StructuredL1(0.5).apply(ResidualMLP())
    with pytest.raises(ConfigError, match="amount"):
        StructuredL1(1.0)
    assert StructuredL1(0.5).label == "structured 50%"


def test_bf16_model() -> None:
    torch.manual_seed(0)
    model = ResidualMLP().to(torch.bfloat16).eval()
    x = torch.randn(2, 16, dtype=torch.bfloat16)
    pruned = StructuredL1(0.5).apply(model, x)
    assert pruned.stem.weight.dtype == torch.bfloat16
    assert pruned(x).shape == (2, 4)


def test_whole_heads_can_go_instead_of_head_dimensions() -> None:
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    x = torch.randn(2, 5, 8)
    method = parse_method("structured-heads:0.5")
    assert method.label == "structured 50% heads"
    pruned = method.apply(model, x)
    for layer in pruned.layers:
        attn = layer["attn"]
        assert attn.num_heads < 4  # the attribute the forward reads follows the pruner
        assert attn.qkv.out_features == 3 * attn.num_heads * 8  # each kept head is whole
    assert pruned(x).shape == (2, 3)
    assert parameter_count(pruned) < 0.65 * parameter_count(model)
