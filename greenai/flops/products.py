"""FLOP formulas for the matrix products that ``FlopCounterMode`` (torch 2.13) counts as 0.

``FlopCounterMode`` has formulas for ``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``_scaled_mm``
and the convolutions. ``torch.matmul``, ``einsum``, ``tensordot``, ``inner``,
``chain_matmul`` and ``linalg.multi_dot`` reach it as those ops and are counted. These reach
it as ops of their own and counted 0 (a multiply-add is 2 FLOPs, as everywhere):

============================  =================================================
op (what calls it)            FLOPs
============================  =================================================
``aten.mv`` (``torch.mv``,    ``2·M·K`` for ``[M, K] @ [K]``
``matmul`` of a matrix and
a vector)
``aten.addmv``                ``2·M·K``
``aten.dot``, ``aten.vdot``   ``2·K``
(``matmul`` of two vectors)
``aten.addr``                 ``2·M·N`` (an ``[M, 1] @ [1, N]`` product)
``aten.addbmm``               ``2·B·M·N·K``, as ``baddbmm``
``aten._addmm_activation``    as ``addmm`` (Linear + ReLU/GELU, fused)
``aten._trilinear``           ``2·`` the size of the broadcast index space
(``nn.Bilinear``)             (``2·N·O·I·J`` for ``nn.Bilinear``)
``aten._euclidean_dist``,     ``2·B·P·R·M`` for ``P`` and ``R`` points of ``M``
``aten._cdist_forward``       coordinates (one multiply-add per coordinate pair)
(``torch.cdist``)
============================  =================================================

``torch.outer`` and ``torch.ger`` are not among them: torch turns them into an elementwise
broadcast multiply (``aten.mul``) before any dispatch mode sees them, and elementwise ops
count 0. The gradient of ``torch.mv`` with respect to the matrix is such an outer product,
and the gradient of ``torch.dot`` an elementwise product: both count 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import flop_counter as torch_flops

from greenai.flops.ledger import Formula, Ledger, numel, raw, shape

__all__ = ["product_formulas"]

aten: Any = torch.ops.aten

_NOTE = "matrix-vector and other products (mv, dot, addr, addbmm, …): 2 FLOPs per multiply-add"


def product_formulas(ledger: Ledger) -> dict[Any, Formula]:
    """The formulas of this module, keyed by op packet, each noting itself in ``ledger``."""

    def counted(packet: Any, flops_of: Formula) -> Formula:
        def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
            flops = int(flops_of(*args, **kwargs))
            ledger.record(packet, flops, flops, _NOTE)
            return flops

        return raw(formula)

    addmm = torch_flops.flop_registry[aten.addmm]

    def addmm_activation(bias: Any, a: Any, b: Any, *args: Any, **kwargs: Any) -> int:
        return int(addmm(shape(bias), shape(a), shape(b)))

    return {
        aten.mv: counted(aten.mv, lambda a, v, *_, **__: 2 * numel(shape(a))),
        aten.addmv: counted(aten.addmv, lambda _s, a, v, *_, **__: 2 * numel(shape(a))),
        aten.dot: counted(aten.dot, lambda a, b, *_, **__: 2 * numel(shape(a))),
        aten.vdot: counted(aten.vdot, lambda a, b, *_, **__: 2 * numel(shape(a))),
        aten.addr: counted(
            aten.addr, lambda _s, u, v, *_, **__: 2 * numel(shape(u)) * numel(shape(v))
        ),
        aten.addbmm: counted(aten.addbmm, _addbmm),
        aten._addmm_activation: counted(aten._addmm_activation, addmm_activation),
        aten._trilinear: counted(aten._trilinear, _trilinear),
        aten._euclidean_dist: counted(aten._euclidean_dist, _distances),
        aten._cdist_forward: counted(aten._cdist_forward, _distances),
    }


def _addbmm(_self: Any, a: Any, b: Any, *args: Any, **kwargs: Any) -> int:
    batch, m, k = shape(a)
    return 2 * batch * m * k * shape(b)[-1]


def _trilinear(
    i1: Any, i2: Any, i3: Any, expand1: Any, expand2: Any, expand3: Any, *args: Any, **kw: Any
) -> int:
    # Each input is unsqueezed at its expand dims; the product is summed over the broadcast
    # index space of the three (for nn.Bilinear: batch · out · in1 · in2).
    expanded = []
    for x, expand in ((i1, expand1), (i2, expand2), (i3, expand3)):
        dims = list(shape(x))
        for d in sorted(int(e) for e in expand):
            dims.insert(d, 1)
        expanded.append(dims)
    sizes = [max(d) for d in zip(*expanded, strict=True)]
    return 2 * numel(sizes)


def _distances(x1: Any, x2: Any, *args: Any, **kwargs: Any) -> int:
    # x1: [..., P, M], x2: [..., R, M]; the leading dims broadcast.
    s1, s2 = shape(x1), shape(x2)
    batch = max(numel(s1[:-2]), numel(s2[:-2]))
    return 2 * batch * s1[-2] * s2[-2] * s1[-1]
