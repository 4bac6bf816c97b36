"""FLOP formulas that ``FlopCounterMode`` lacks, given to it through ``custom_mapping``.

``FlopCounterMode`` (torch 2.13) counts 0 for:

* attention on CPU: ``F.scaled_dot_product_attention`` runs
  ``aten._scaled_dot_product_flash_attention_for_cpu`` (and its ``_backward``), which has no
  registered formula — the same model counts less on CPU than on CUDA;
* int8 and quantized matmuls: ``aten._int_mm``, ``aten._weight_int8pack_mm`` and the
  ``quantized::linear*`` ops that ``torch.ao.quantization.quantize_dynamic`` Linear layers
  run (``quantized.linear_dynamic`` on CPU);
* 2:4 semi-structured sparse matmuls (``aten._sparse_semi_structured_*``,
  ``aten._cslt_sparse_mm``);
* matrix-vector and other products (``aten.mv``, ``aten.dot``, ``aten.addr``, …): see
  :mod:`greenai.flops.products`;
* grouped GEMMs of Mixture-of-Experts layers (``aten._grouped_mm``,
  ``aten._scaled_grouped_mm``, transformers' ``grouped_mm_fallback``): see
  :mod:`greenai.flops.grouped`;
* fused RNNs (``aten.mkldnn_rnn_layer``, ``aten._cudnn_rnn``) and the transformer inference
  fast paths (``aten._native_multi_head_attention``,
  ``aten._transformer_encoder_layer_fwd``): see :mod:`greenai.flops.fused`.

Ops that do matrix work and still have no formula are reported, never dropped silently:
see :mod:`greenai.flops.guard`.

Shape formulas are torch's own where one exists (``sdpa_flop``/``sdpa_backward_flop`` for
CPU attention, ``mm_flop`` for int8). Each formula returns the *nominal* FLOPs to
``FlopCounterMode`` and reports the *executed* FLOPs, when they differ, to a
:class:`Ledger` (see :mod:`greenai.flops.result` for the two definitions).

Causal attention: with ``causal=True`` every fused attention op counts half, in nominal and
executed. Without it, attention counts dense in nominal (as ``FlopCounterMode`` does on
CUDA), but where the op was called causal (``is_causal=True``, or a causal
``custom_mask_type``) executed counts half, since those kernels skip the masked blocks.
Attention written with plain matmuls, or SDPA's math fallback (meta device, some masks), runs
as ``bmm``: it cannot be recognised and always counts dense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter as torch_flops

from greenai.flops import fused, grouped, products
from greenai.flops.ledger import Formula, Ledger, numel, raw, shape

__all__ = ["Ledger", "custom_mapping"]  # Ledger lives in greenai.flops.ledger

aten: Any = torch.ops.aten

_CPU_ATTENTION = "CPU attention (aten._scaled_dot_product_flash_attention_for_cpu[_backward])"


def _causal_flag(packet: Any) -> Callable[[tuple[Any, ...], dict[str, Any]], bool]:
    """Read ``is_causal`` (or a non-zero ``custom_mask_type``) from a call, by schema name."""
    for i, arg in enumerate(packet.default._schema.arguments):
        if arg.name in ("is_causal", "custom_mask_type"):
            default = arg.default_value if arg.has_default_value() else 0
            return _flag_reader(arg.name, -1 if arg.kwarg_only else i, default)
    return lambda args, kwargs: False


def _flag_reader(
    name: str, position: int, default: Any
) -> Callable[[tuple[Any, ...], dict[str, Any]], bool]:
    def flag(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if name in kwargs:
            return bool(kwargs[name])
        return bool(args[position] if 0 <= position < len(args) else default)

    return flag


def _attention(
    packet: Any, dense: Formula, causal: bool, ledger: Ledger, note: str | None
) -> Formula:
    is_causal = _causal_flag(packet)

    def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        flops = int(dense(*args, out_val=out_val, **kwargs))
        masked = is_causal(args, kwargs)
        ledger.attention_calls += 1
        nominal = flops // 2 if causal else flops
        executed = flops // 2 if causal or masked else flops
        ledger.record(packet, nominal, executed, note)
        if causal:
            ledger.note("causal=True: fused attention counted at half, nominal and executed")
        elif masked:
            ledger.note("is_causal attention: executed counted at half (masked blocks skipped)")
        return nominal

    return raw(formula)


def _attention_formulas(causal: bool, ledger: Ledger) -> dict[Any, Formula]:
    registry = torch_flops.flop_registry
    added = {
        aten._scaled_dot_product_flash_attention_for_cpu: registry[
            aten._scaled_dot_product_flash_attention
        ],
        aten._scaled_dot_product_flash_attention_for_cpu_backward: registry[
            aten._scaled_dot_product_flash_attention_backward
        ],
    }
    mapping = {
        packet: _attention(
            packet, dense, causal, ledger, f"{_CPU_ATTENTION}: torch's sdpa formulas (was 0)"
        )
        for packet, dense in added.items()
    }
    # torch's own attention formulas: same counts, plus the causal handling above.
    for packet in (
        aten._scaled_dot_product_efficient_attention,
        aten._scaled_dot_product_flash_attention,
        aten._scaled_dot_product_cudnn_attention,
        aten._scaled_dot_product_efficient_attention_backward,
        aten._scaled_dot_product_flash_attention_backward,
        aten._scaled_dot_product_cudnn_attention_backward,
        aten._flash_attention_forward,
        aten._flash_attention_backward,
        aten._efficient_attention_forward,
        aten._efficient_attention_backward,
    ):
        if packet in registry:
            mapping[packet] = _attention(packet, registry[packet], causal, ledger, note=None)
    return mapping


def _int_formulas(ledger: Ledger) -> dict[Any, Formula]:
    mm = torch_flops.flop_registry[aten.mm]

    def int_mm(a: Any, b: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
        flops = int(mm(a, b))
        ledger.record(aten._int_mm, flops, flops, "aten._int_mm: int8 GEMM, 2·M·N·K int ops")
        return flops

    def weight_int8pack_mm(x: Any, w: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
        # x: [M, K], w: [N, K] int8 (dequantised in the kernel, float arithmetic)
        m, k = shape(x)
        flops = 2 * m * k * shape(w)[0]
        ledger.record(aten._weight_int8pack_mm, flops, flops, "aten._weight_int8pack_mm: 2·M·N·K")
        return flops

    mapping: dict[Any, Formula] = {
        aten._int_mm: raw(int_mm),
        aten._weight_int8pack_mm: raw(weight_int8pack_mm),
    }
    quantized = torch.ops.quantized
    for name in (
        "linear_dynamic",
        "linear_relu_dynamic",
        "linear_dynamic_fp16",
        "linear_relu_dynamic_fp16",
        "linear",
        "linear_relu",
    ):
        try:
            packet = getattr(quantized, name)
        except (AttributeError, RuntimeError):  # not built into this torch
            continue
        mapping[packet] = raw(_quantized_linear(packet, ledger))
    mapping.update(_quanto_formulas(ledger))
    return mapping


def _quanto_formulas(ledger: Ledger) -> dict[Any, Formula]:
    """optimum-quanto's int8 weight-only matmul, once quanto has registered its ops."""
    try:
        packet = torch.ops.quanto.qbytes_mm
    except (AttributeError, RuntimeError):  # quanto not imported (or not installed)
        return {}
    note = "quanto.qbytes_mm: int8 weight-only matmul, 2·M·N·K (weights dequantized in the kernel)"

    def qbytes_mm(a: Any, b: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
        # a: [..., K] activations; the output [..., N] gives M·N
        flops = 2 * numel(shape(out_val)) * int(shape(a)[-1])
        ledger.record(packet, flops, flops, note)
        return flops

    return {packet: raw(qbytes_mm)}


def _quantized_linear(packet: Any, ledger: Ledger) -> Formula:
    note = (
        f"{packet}: 2·M·N·K, fp16 arithmetic"
        if "fp16" in str(packet)
        else f"{packet}: int8 GEMM, 2·M·N·K int ops (executed == dense nominal)"
    )

    def formula(x: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
        # x: [..., K] -> out: [..., N]; the packed weight is opaque, the output gives N.
        flops = 2 * numel(shape(x)) * int(shape(out_val)[-1])
        ledger.record(packet, flops, flops, note)
        return flops

    return formula


def _sparse_formulas(ledger: Ledger) -> dict[Any, Formula]:
    note = "2:4 semi-structured sparse matmul: executed = half of the dense nominal"
    try:
        from torch.sparse import SparseSemiStructuredTensor
    except ImportError:  # pragma: no cover - torch without 2:4 support
        return {}

    def dense_matmul(packet: Any) -> Formula:
        dense = torch_flops.flop_registry[packet]

        def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
            flops = int(dense(*args, out_val=out_val, **kwargs))
            if any(isinstance(a, SparseSemiStructuredTensor) for a in args):
                ledger.record(packet, flops, flops // 2, note)
            return flops

        return raw(formula)

    def compressed(packet: Any, k_of: Callable[[tuple[Any, ...]], int]) -> Formula:
        # The compressed operand hides K; the dense operand and the output give M·N·K.
        def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
            flops = 2 * numel(shape(out_val)) * k_of(args)
            ledger.record(packet, flops, flops // 2, note)
            return flops

        return raw(formula)

    return {
        aten.mm: dense_matmul(aten.mm),
        aten.addmm: dense_matmul(aten.addmm),
        aten._sparse_semi_structured_linear: compressed(
            aten._sparse_semi_structured_linear, lambda a: int(shape(a[0])[-1])
        ),
        aten._sparse_semi_structured_mm: compressed(
            aten._sparse_semi_structured_mm, lambda a: int(shape(a[2])[0])
        ),
        aten._sparse_semi_structured_addmm: compressed(
            aten._sparse_semi_structured_addmm, lambda a: int(shape(a[3])[0])
        ),
        aten._cslt_sparse_mm: compressed(aten._cslt_sparse_mm, lambda a: int(shape(a[1])[0])),
    }


def custom_mapping(*, causal: bool, ledger: Ledger) -> dict[Any, Formula]:
    """The ``custom_mapping`` for ``FlopCounterMode``: every formula added or wrapped here."""
    return {
        **_attention_formulas(causal, ledger),
        **_int_formulas(ledger),
        **_sparse_formulas(ledger),
        **products.product_formulas(ledger),
        **fused.fused_formulas(ledger),
        **grouped.grouped_formulas(ledger),
    }
