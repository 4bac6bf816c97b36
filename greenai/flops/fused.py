"""FLOP formulas for fused RNN and transformer ops that ``FlopCounterMode`` counts as 0.

* **RNNs.** ``nn.LSTM`` on CPU runs one ``aten.mkldnn_rnn_layer`` per layer and direction
  (and ``aten.mkldnn_rnn_layer_backward``); on CUDA every ``nn.LSTM``, ``nn.GRU`` and
  ``nn.RNN`` runs the whole stack as one ``aten._cudnn_rnn`` (``aten.miopen_rnn`` on ROCm).
  At every time step each layer and direction multiplies its input by ``W_ih`` and its
  hidden state by ``W_hh`` (and, with ``proj_size``, the new hidden state by ``W_hr``), so
  a layer costs ``2·tokens·(numel(W_ih) + numel(W_hh) [+ numel(W_hr)])`` FLOPs, where
  ``tokens`` is ``seq_len·batch`` (or the packed length of a ``PackedSequence``). For an
  LSTM ``W_ih`` is ``[4H, I]`` and ``W_hh`` is ``[4H, H]``: ``8·H·(I + H)`` per token, as the
  unfused path (``addmm``/``mm``, which ``FlopCounterMode`` counts) gives. Bias adds and the
  gates' elementwise work count 0, as everywhere. The backward computes the gradients of
  the data (as many FLOPs as the forward) and of the weights (as many again).
* **Transformer fast paths.** In eval mode with gradients off, ``nn.MultiheadAttention``
  (self-attention) runs as ``aten._native_multi_head_attention`` and each
  ``nn.TransformerEncoderLayer`` as ``aten._transformer_encoder_layer_fwd``. They count as
  the same layers do in training mode: the q, k, v and output projections (``2·E²`` per
  token each), ``QKᵀ`` and ``AV`` (``4·L·S·E`` per sequence), and the feed-forward
  (``4·E·F`` per token). On nested tensors (an encoder given a ``src_key_padding_mask``),
  each sequence counts at its own length.
"""

from __future__ import annotations

from typing import Any

import torch

from greenai.flops.ledger import Formula, Ledger, numel, raw, shape

__all__ = ["fused_formulas"]

aten: Any = torch.ops.aten

_RNN_NOTE = (
    "fused RNN ({op}): 2·tokens·(W_ih + W_hh [+ W_hr]) per layer and direction; "
    "backward twice that (was 0)"
)
_TRANSFORMER_NOTE = (
    "transformer fast path ({op}): projections, QKᵀ, AV and feed-forward, "
    "as the same layer counts in training mode (was 0)"
)


def fused_formulas(ledger: Ledger) -> dict[Any, Formula]:
    """The formulas of this module, keyed by op packet, each noting itself in ``ledger``."""

    def counted(packet: Any, flops_of: Formula, note: str) -> Formula:
        def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
            flops = int(flops_of(*args, **kwargs))
            ledger.record(packet, flops, flops, note.format(op=packet))
            return flops

        return raw(formula)

    mapping: dict[Any, Formula] = {
        aten.mkldnn_rnn_layer: counted(aten.mkldnn_rnn_layer, _mkldnn_layer, _RNN_NOTE),
        aten.mkldnn_rnn_layer_backward: counted(
            aten.mkldnn_rnn_layer_backward, _mkldnn_layer_backward, _RNN_NOTE
        ),
        aten._native_multi_head_attention: counted(
            aten._native_multi_head_attention, _native_mha, _TRANSFORMER_NOTE
        ),
        aten._transformer_encoder_layer_fwd: counted(
            aten._transformer_encoder_layer_fwd, _encoder_layer, _TRANSFORMER_NOTE
        ),
    }
    for name in ("_cudnn_rnn", "miopen_rnn"):
        packet = getattr(aten, name)
        mapping[packet] = counted(packet, _stacked_rnn, _RNN_NOTE)
        backward = getattr(aten, name + "_backward")
        mapping[backward] = counted(backward, _stacked_rnn_backward, _RNN_NOTE)
    return mapping


def _tokens(x: Any) -> int:
    """Time steps × batch of an RNN input ``[T, B, I]``, ``[B, T, I]`` or packed ``[N, I]``."""
    dims = shape(x)
    return numel(dims[:-1])


def _matrices(weights: Any) -> int:
    """Elements of the weight matrices in ``weights`` (biases, being 1-D, left out)."""
    return sum(numel(shape(w)) for w in weights if w is not None and w.dim() == 2)


def rnn_flops(tokens: int, weights: Any) -> int:
    """Forward FLOPs of RNN layers run over ``tokens`` steps × batch elements.

    Args:
        tokens: Time steps × batch (a packed sequence's total length).
        weights: The layers' parameters (``W_ih``, ``W_hh``, biases, ``W_hr``); only the
            2-D ones count.

    Returns:
        ``2·tokens·`` the number of elements of the weight matrices.
    """
    return 2 * tokens * _matrices(weights)


def _mkldnn_layer(x: Any, w_ih: Any, w_hh: Any, *args: Any, **kwargs: Any) -> int:
    return rnn_flops(_tokens(x), (w_ih, w_hh))


def _mkldnn_layer_backward(x: Any, w_ih: Any, w_hh: Any, *args: Any, **kwargs: Any) -> int:
    return 2 * rnn_flops(_tokens(x), (w_ih, w_hh))


def _stacked_rnn(x: Any, weights: Any, *args: Any, **kwargs: Any) -> int:
    # Every layer of the stack sees the same number of tokens.
    return rnn_flops(_tokens(x), weights)


def _stacked_rnn_backward(x: Any, weights: Any, *args: Any, **kwargs: Any) -> int:
    mask = kwargs.get("output_mask", args[-1] if args else None)
    weight_grads = bool(mask[3]) if mask is not None and len(mask) > 3 else True
    return (1 + int(weight_grads)) * rnn_flops(_tokens(x), weights)


def _lengths(x: Any) -> list[int]:
    """The sequence length of each batch element of ``[B, L, E]``, ``[L, E]`` or nested."""
    if getattr(x, "is_nested", False):
        return [int(n) for n in x._nested_tensor_size()[:, 0].tolist()]
    dims = shape(x)
    return [dims[-2]] * numel(dims[:-2])


def _native_mha(
    query: Any, key: Any, value: Any, embed_dim: int, num_head: int, qkv_weight: Any,
    qkv_bias: Any, proj_weight: Any, *args: Any, **kwargs: Any,
) -> int:  # fmt: skip
    e = int(embed_dim)
    flops = 0
    for length_q, length_kv in zip(_lengths(query), _lengths(key), strict=True):
        projections = 2 * e * e * (2 * length_q + 2 * length_kv)  # q and out; k and v
        flops += projections + 4 * length_q * length_kv * e
    return flops


def _encoder_layer(
    src: Any, embed_dim: int, num_heads: int, qkv_weight: Any, qkv_bias: Any,
    proj_weight: Any, proj_bias: Any, use_gelu: bool, norm_first: bool, eps: float,
    norm_weight_1: Any, norm_bias_1: Any, norm_weight_2: Any, norm_bias_2: Any,
    ffn_weight_1: Any, ffn_bias_1: Any, ffn_weight_2: Any, *args: Any, **kwargs: Any,
) -> int:  # fmt: skip
    per_token = 2 * _matrices((qkv_weight, proj_weight, ffn_weight_1, ffn_weight_2))
    return sum(
        length * per_token + 4 * length * length * int(embed_dim) for length in _lengths(src)
    )
