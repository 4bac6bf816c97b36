"""The guard: ops that do matrix work but have no FLOP formula are named, never dropped.

``FlopCounterMode`` counts 0 for any op it has no formula for. For elementwise ops that is
the convention; for an op that multiplies matrices it is a silent hole in the count (as
``nn.LSTM`` on CPU and the transformer fast paths were). :class:`UncountedOps` sits under
the counter and sees every op it lets run; an op without a formula that
:func:`does_matrix_work` is tallied, and :func:`greenai.flops.count_flops` reports the tally
as ``FlopCount.uncounted`` and as a note ``"uncounted: aten.X ×N"``.

An op does matrix work if it is in :data:`MATRIX_OPS` (linear algebra and FFTs, kept by
hand) or if a part of its name says so: ``mm``/``mv`` endings (``bmm``, ``_int_mm``),
``matmul``, ``dot``, ``linear``, ``conv…``, ``rnn``, ``lstm``, ``gru``, ``attention``,
``transformer``, ``einsum``… — so that an op added to a later torch is caught by its name.
:data:`NOT_MATRIX_OPS` lists the names that match but do no matrix work (weight packing,
the pointwise halves of fused RNN cells).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "MATRIX_OPS",
    "NOT_MATRIX_OPS",
    "ConventionalZeroOps",
    "UncountedOps",
    "conventional_zero_note",
    "does_matrix_work",
    "is_zero_by_convention",
    "uncounted_note",
]

_ZERO_BY_CONVENTION = (
    "batch_norm",
    "group_norm",
    "layer_norm",
    "upsample",
    "adaptive_",
    "avg_pool",
    "max_pool",
)
"""Name parts of ops that ``FlopCounterMode`` counts as 0 FLOPs by convention (normalisation
-- batch, instance, group, layer --, upsampling, pooling: work linear in the elements, not
matrix work). fvcore instead estimates some of them (1 to 8 FLOPs per element). They are
named in a note whenever they run, so a count is never silently missing them."""


def is_zero_by_convention(op: str) -> bool:
    """Whether ``op`` (``"aten.native_batch_norm"``) counts 0 FLOPs by convention."""
    return any(part in op for part in _ZERO_BY_CONVENTION)


def conventional_zero_note(calls: Mapping[str, int]) -> str | None:
    """The note naming ops counted as 0 by convention, or None when none ran."""
    if not calls:
        return None
    ops = ", ".join(f"{op} ×{n}" for op, n in sorted(calls.items()))
    return (
        f"counted as 0 FLOPs by convention (normalisation, upsampling, pooling: work linear "
        f"in the elements, as torch's FlopCounterMode counts it; fvcore estimates some of "
        f"these at 1-8 FLOPs per element): {ops}"
    )


MATRIX_OPS: frozenset[str] = frozenset(
    {
        # Factorisations and solvers (torch.linalg): O(n³) work, no agreed FLOP formula.
        "aten._linalg_det",
        "aten._linalg_eigh",
        "aten._linalg_slogdet",
        "aten._linalg_solve_ex",
        "aten._linalg_svd",
        "aten.cholesky_inverse",
        "aten.cholesky_solve",
        "aten.geqrf",
        "aten.linalg_cholesky_ex",
        "aten.linalg_eig",
        "aten.linalg_householder_product",
        "aten.linalg_inv_ex",
        "aten.linalg_ldl_factor_ex",
        "aten.linalg_ldl_solve",
        "aten.linalg_lstsq",
        "aten.linalg_lu",
        "aten.linalg_lu_factor_ex",
        "aten.linalg_lu_solve",
        "aten.linalg_matrix_exp",
        "aten.linalg_pinv",
        "aten.linalg_qr",
        "aten.linalg_solve_triangular",
        "aten.ormqr",
        "aten.triangular_solve",
        # Fourier transforms (torch.fft, torch.stft): O(n log n) per transform.
        "aten._fft_c2c",
        "aten._fft_c2r",
        "aten._fft_r2c",
        # Sparse products.
        "aten._sparse_addmm",
        "aten._sparse_mm",
        "aten.hspmm",
        "aten.sspaddmm",
    }
)

NOT_MATRIX_OPS: frozenset[str] = frozenset(
    {
        # The elementwise gate arithmetic of fused LSTM/GRU cells (their matmuls run apart).
        "aten._thnn_fused_gru_cell",
        "aten._thnn_fused_gru_cell_backward",
        "aten._thnn_fused_lstm_cell",
        "aten._thnn_fused_lstm_cell_backward",
        "aten._thnn_fused_lstm_cell_backward_impl",
        "aten._thnn_differentiable_gru_cell_backward",
        "aten._thnn_differentiable_lstm_cell_backward",
    }
)

# Name parts (between underscores) that mean matrix work, and ones that mean bookkeeping.
_MATRIX_PART = re.compile(
    r"\w*mm|\w*mv|matmul|dot|vdot|ger|addr|einsum|tensordot|linear|bilinear"
    r"|trilinear|conv|conv\d\w*|convolution|rnn|lstm|gru|attention|transformer|cdist"
    r"|euclidean|qlinear|qconv\d\w*"
)
_BOOKKEEPING_PART = re.compile(
    r"pack|prepack|unpack|quantize|reorder|flatten|stride|padding|dilation|groups"
)


def uncounted_note(uncounted: Mapping[str, int]) -> str | None:
    """The note that names uncounted ops: ``"uncounted: aten.X ×N, aten.Y ×M"``.

    Args:
        uncounted: Calls per uncounted op (``FlopCount.uncounted``).

    Returns:
        The note, ops in name order; None when ``uncounted`` is empty.
    """
    if not uncounted:
        return None
    return "uncounted: " + ", ".join(f"{op} ×{n}" for op, n in sorted(uncounted.items()))


def does_matrix_work(op: str) -> bool:
    """Whether the op named ``op`` (``"aten.mkldnn_rnn_layer"``) multiplies matrices.

    Args:
        op: The op's name as ``FlopCounterMode`` writes it: namespace, dot, name.

    Returns:
        True for the ops of :data:`MATRIX_OPS` and for names with a part that means matrix
        work; False for :data:`NOT_MATRIX_OPS` and names with a bookkeeping part (weight
        packing).
    """
    if op in MATRIX_OPS:
        return True
    if op in NOT_MATRIX_OPS:
        return False
    parts = [p for p in op.rpartition(".")[2].split("_") if p]
    if any(_BOOKKEEPING_PART.fullmatch(p) for p in parts):
        return False
    return any(_MATRIX_PART.fullmatch(p) for p in parts)


class UncountedOps(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """A dispatch mode that tallies the ops without a formula that do matrix work.

    Enter it *before* ``FlopCounterMode``, so that it sits under the counter and sees the
    ops the counter lets run (after the counter's own decompositions).

    Args:
        counted: The op packets that have a formula (``FlopCounterMode.flop_registry``).

    Attributes:
        calls: Calls per uncounted op name (``"aten.linalg_qr"``).
    """

    supports_higher_order_operators = True

    def __init__(self, counted: Collection[Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._counted = {str(op) for op in counted}
        self._verdicts: dict[str, bool] = {}
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = str(getattr(func, "_overloadpacket", func))  # a HigherOrderOperator has none
        uncounted = self._verdicts.get(name)
        if uncounted is None:
            uncounted = name not in self._counted and does_matrix_work(name)
            self._verdicts[name] = uncounted
        if uncounted:
            self.calls[name] += 1
        return func(*args, **kwargs)


class ConventionalZeroOps(TorchDispatchMode):
    """Tallies the ops counted as 0 by convention (:func:`is_zero_by_convention`).

    It sits *above* the counter: ``FlopCounterMode`` decomposes upsampling into index ops
    before anything below it sees the op.

    Attributes:
        calls: Calls per op name (``"aten.native_batch_norm"``).
    """

    supports_higher_order_operators = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._verdicts: dict[str, bool] = {}
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        name = str(getattr(func, "_overloadpacket", func))
        zero = self._verdicts.get(name)
        if zero is None:
            zero = self._verdicts[name] = is_zero_by_convention(name)
        if zero:
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))
