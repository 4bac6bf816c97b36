from __future__ import annotations

import pytest
from torch import nn

from greenai.errors import ConfigError
from greenai.flops import (
    FlopCount,
    transformer_forward_flops,
    transformer_inference_flops,
    transformer_training_flops,
)

# GPT-2 small: 12 layers, d_model 768, vocab 50257, context 1024, tied head; T = 512.
LAYERS, D, VOCAB, T = 12, 768, 50257, 512


def matmul_params(model: nn.Module) -> int:
    """Parameters used in a matmul per token: all but the position embeddings (head tied)."""
    return sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()


def test_formulas() -> None:
    assert transformer_forward_flops(1e9, 1000) == 2 * 10**12
    assert transformer_training_flops(1e9, 1000) == 6 * 10**12
    assert transformer_forward_flops(100, 10, 2, 8, 4) == 2 * 100 * 10 + 4 * 2 * 8 * 4 * 10
    assert transformer_forward_flops(100, 10, 2, 8, 4, causal=True) == 2000 + 2 * 2 * 8 * 4 * 10
    assert transformer_inference_flops(100, 10) == 2000
    assert transformer_inference_flops(100, 10, 2, 8, 4) == 2000 + 4 * 2 * 8 * 4 * 10


def test_error_against_the_counter_on_gpt2_small(
    gpt2_meta: nn.Module, gpt2_forward: FlopCount, gpt2_training: FlopCount
) -> None:
    # The numbers quoted in greenai/flops/analytic.py's docstring.
    n = matmul_params(gpt2_meta)
    assert n == 123_653_376
    forward = transformer_forward_flops(n, T, LAYERS, T, D)
    assert forward == 136_284_733_440
    assert forward / gpt2_forward.total - 1 == pytest.approx(0.0009, abs=0.0001)
    causal = transformer_forward_flops(n, T, LAYERS, T, D, causal=True)
    assert causal / gpt2_forward.executed - 1 == pytest.approx(0.0009, abs=0.0001)
    everything = sum(p.numel() for p in gpt2_meta.parameters())
    total_n = transformer_forward_flops(everything, T, LAYERS, T, D)
    assert total_n / gpt2_forward.total - 1 == pytest.approx(0.0068, abs=0.0001)
    no_attention = transformer_forward_flops(n, T)
    assert no_attention / gpt2_forward.total - 1 == pytest.approx(-0.070, abs=0.001)
    training = transformer_training_flops(n, T, LAYERS, T, D)
    assert training / gpt2_training.total - 1 == pytest.approx(-0.0108, abs=0.0001)


@pytest.mark.parametrize(
    "args",
    [(-1, 10), (10, -1), (float("nan"), 10), ("1e9", 10), (True, 10), (10, 10, 2), (10, 10, 2, 8)],
)
def test_invalid_arguments(args: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError):
        transformer_forward_flops(*args)  # type: ignore[arg-type]


def test_attention_arguments_must_be_non_negative() -> None:
    with pytest.raises(ConfigError, match="seq_len"):
        transformer_forward_flops(10, 10, 2, -8, 4)
    with pytest.raises(ConfigError, match="context_len"):
        transformer_inference_flops(10, 10, 2, None, 4)
    with pytest.raises(ConfigError, match="causal"):
        transformer_forward_flops(10, 10, causal="yes")  # type: ignore[arg-type]
