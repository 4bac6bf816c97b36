"""FLOP formulas for grouped GEMMs: the MoE kernels ``FlopCounterMode`` (torch 2.13) counts as 0.

transformers runs Mixture-of-Experts layers through ``torch._grouped_mm`` by default
(``experts_implementation="grouped_mm"``; ``torch.nn.functional.grouped_mm`` dispatches to
the same op), or through its own ``transformers::grouped_mm_fallback`` custom op where the
torch kernel cannot run (strides, older torch). Uncounted, a default Mixtral read about a
third of its FLOPs (issue 23). Each group is an ordinary GEMM, so the count is exact:

* ``A`` 2-D ``[M, K]`` × ``B`` 3-D ``[G, K, N]`` (rows of ``A`` split into groups by
  ``offs``; the MoE forward): ``2·M·K·N`` — every row meets one group's matrix;
* ``A`` 3-D ``[G, M, K]`` × ``B`` 3-D ``[G, K, N]`` (batched): ``2·G·M·K·N``;
* ``A`` 3-D × ``B`` 2-D ``[K, N_total]`` (columns split by ``offs``): ``2·M·K·N_total``;
* ``A`` 2-D ``[M, K_total]`` × ``B`` 2-D ``[K_total, N]``, output ``[G, M, N]`` (the
  reduction dimension split by ``offs``; the weight gradient of the MoE backward):
  ``2·M·N·K_total``.

In general ``2 × output elements × K`` except in the last case, where the groups share the
output's ``M × N`` but each reduces over its own slice of ``K``. Rows beyond ``offs[-1]``,
if any, are counted (reading ``offs`` would synchronise a GPU); transformers' MoE path
fills every row. ``aten._scaled_grouped_mm`` (fp8 with scales) counts the same.
"""

from __future__ import annotations

from typing import Any

import torch

from greenai.flops.ledger import Formula, Ledger, numel, raw, shape

__all__ = ["grouped_formulas", "grouped_mm_flops"]

aten: Any = torch.ops.aten


def grouped_mm_flops(a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...]) -> int:
    """FLOPs of one grouped GEMM from the shapes of its operands and output (see above)."""
    if len(a) == 2 and len(b) == 2:  # K split into groups: out [G, M, N]
        return 2 * a[0] * b[-1] * a[1]
    return 2 * numel(out) * a[-1]


def _formula(packet: Any, ledger: Ledger) -> Formula:
    note = f"{packet}: grouped GEMM (MoE experts), 2·M·K·N summed over groups"

    def formula(a: Any, b: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
        flops = grouped_mm_flops(shape(a), shape(b), shape(out_val))
        ledger.record(packet, flops, flops, note)
        return flops

    return raw(formula)


def grouped_formulas(ledger: Ledger) -> dict[Any, Formula]:
    """Formulas for every grouped GEMM op this torch (and transformers, if loaded) has."""
    mapping: dict[Any, Formula] = {}
    for name in ("_grouped_mm", "_scaled_grouped_mm"):
        packet = getattr(aten, name, None)
        if packet is not None:
            mapping[packet] = _formula(packet, ledger)
    try:  # registered when transformers' MoE integration is imported
        fallback = torch.ops.transformers.grouped_mm_fallback
    except (AttributeError, RuntimeError):
        fallback = None
    if fallback is not None:
        mapping[fallback] = _formula(fallback, ledger)
    return mapping
