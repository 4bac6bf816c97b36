"""Analytic FLOP models for transformers, for when the model cannot be run to be counted.

One multiply-add is 2 FLOPs, as in :func:`greenai.flops.count_flops`. The models:

* forward ``= 2·N·T + A`` (Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
  Table 1; Chinchilla, Hoffmann et al. 2022, Appendix F), where
  ``N`` is the number of parameters that take part in a matmul for every token — the
  non-embedding parameters plus the output head (``vocab·d_model``; with tied embeddings,
  that is the total minus the position embeddings); ``T`` the tokens processed; and ``A``
  the attention scores and weighted sum, ``A = 4·n_layers·T·seq_len·d_model`` (dense), or
  half of it, ``2·n_layers·T·seq_len·d_model``, with ``causal=True`` (Kaplan's
  ``2·n_layer·n_ctx·d_attn`` per token is this causal form);
* training ``= 3 × forward`` (the backward costs twice the forward);
* inference (decoding with a KV cache) ``= 2·N`` per generated token, plus
  ``4·n_layers·context_len·d_model`` per token for attention over the cached context.

Error against :func:`count_flops`, measured on a GPT-2-small-shaped model (12 layers,
d_model 768, 12 heads, vocab 50257, tied head, one sequence of T = 512, 124,439,808
parameters of which N = 123,653,376 take part in matmuls; ``tests/flops/test_flops_analytic.py``):

* forward, dense attention: analytic 136.28 GFLOP vs counted 136.16 GFLOP (+0.09%: ``N``
  includes biases and LayerNorm weights, whose adds the counter does not count);
  causal: 131.45 vs 131.33 (+0.09%);
* forward with ``N`` = all 124.4 M parameters: 137.09 GFLOP (+0.68%);
* forward without the attention term: 126.62 GFLOP (-7.0%);
* training: analytic 408.8 GFLOP vs counted 413.3 (-1.1%): the counter charges fused
  attention's backward 2.5× its forward (the scores are recomputed), not 2×.
"""

from __future__ import annotations

import math

from greenai.errors import ConfigError

__all__ = [
    "transformer_forward_flops",
    "transformer_inference_flops",
    "transformer_training_flops",
]


def _count(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _attention_per_token(n_layers: object, length: object, d_model: object, name: str) -> float:
    given = [v is not None for v in (n_layers, length, d_model)]
    if not any(given):
        return 0.0
    if not all(given):
        raise ConfigError(
            f"the attention term needs n_layers, {name} and d_model together; "
            f"got n_layers={n_layers!r}, {name}={length!r}, d_model={d_model!r}"
        )
    return 4.0 * _count("n_layers", n_layers) * _count(name, length) * _count("d_model", d_model)


def transformer_forward_flops(
    n_params: float,
    tokens: float,
    n_layers: int | None = None,
    seq_len: int | None = None,
    d_model: int | None = None,
    causal: bool = False,
) -> int:
    """Forward FLOPs of a transformer over ``tokens`` tokens: ``2·N·T + A``.

    Args:
        n_params: ``N``, parameters used in a matmul per token (non-embedding parameters
            plus the output head; see the module doc).
        tokens: ``T``, tokens processed (batch size × sequence length).
        n_layers: Transformer layers, for the attention term.
        seq_len: Keys each token attends to (the sequence length), for the attention term.
        d_model: Model width (heads × head size), for the attention term.
        causal: Count the attention term at half (the masked half of a causal model).

    Returns:
        FLOPs (1 multiply-add = 2), rounded to an int. Without ``n_layers``, ``seq_len``
        and ``d_model``, the attention term is left out (``2·N·T``).

    Raises:
        ConfigError: A negative or non-numeric value, or only some of the three attention
            arguments.
    """
    attention = _attention_per_token(n_layers, seq_len, d_model, "seq_len")
    if not isinstance(causal, bool):
        raise ConfigError(f"causal must be True or False, got {causal!r}")
    if causal:
        attention /= 2
    t = _count("tokens", tokens)
    return round(2.0 * _count("n_params", n_params) * t + attention * t)


def transformer_training_flops(
    n_params: float,
    tokens: float,
    n_layers: int | None = None,
    seq_len: int | None = None,
    d_model: int | None = None,
    causal: bool = False,
) -> int:
    """Training FLOPs (forward + backward) over ``tokens`` tokens: 3 × the forward.

    With the attention term left out this is the familiar ``6·N·T``. Arguments as
    :func:`transformer_forward_flops`.

    Raises:
        ConfigError: As :func:`transformer_forward_flops`.
    """
    return 3 * transformer_forward_flops(n_params, tokens, n_layers, seq_len, d_model, causal)


def transformer_inference_flops(
    n_params: float,
    tokens: float,
    n_layers: int | None = None,
    context_len: float | None = None,
    d_model: int | None = None,
) -> int:
    """FLOPs of generating ``tokens`` tokens with a KV cache: ``2·N`` per token + attention.

    Each new token's query attends to ``context_len`` cached keys: ``4·n_layers·
    context_len·d_model`` FLOPs per token. The causal mask removes nothing from a single
    query row, so there is no halving. For a generation, pass the mean context length.

    Args:
        n_params: ``N``, as for :func:`transformer_forward_flops`.
        tokens: Tokens generated.
        n_layers: Transformer layers, for the attention term.
        context_len: Keys each new token attends to, for the attention term.
        d_model: Model width, for the attention term.

    Returns:
        FLOPs (1 multiply-add = 2), rounded to an int.

    Raises:
        ConfigError: A negative or non-numeric value, or only some of the three attention
            arguments.
    """
    attention = _attention_per_token(n_layers, context_len, d_model, "context_len")
    t = _count("tokens", tokens)
    return round(2.0 * _count("n_params", n_params) * t + attention * t)
