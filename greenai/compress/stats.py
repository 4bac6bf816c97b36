"""What a compressed model weighs and how sparse it is; repeat statistics; the Pareto front.

Size is the bytes of the tensors the model stores (its ``state_dict``): packed int8 weights
count one byte per element plus their scales, a 2:4 sparse weight its packed values plus
its metadata, and pruning masks left attached count in full (that is why masked pruning
makes a model *bigger*).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from greenai.compress.base import PRUNABLE
from greenai.windows import t_quantile_975

__all__ = [
    "dense_weights",
    "model_size_bytes",
    "parameter_count",
    "pareto_front",
    "sparsity",
    "t_quantile_975",
    "tensor_bytes",
]


def tensor_bytes(value: Any, dense_counted: list[str] | None = None) -> int:
    """Bytes a stored value takes: tensors (plain, quantized, wrapper subclasses), tuples.

    Wrapper subclasses (2:4 sparse, torchao quantized) count the inner tensors they
    flatten to; a quantized tensor counts its integer values plus per-channel scales and
    zero points. A subclass whose ``__tensor_flatten__`` lists no inner tensor hides its
    storage: it counts at its dense size (elements × element size of its dtype), and its
    type name is appended to ``dense_counted`` when given. Other values (dtypes, ints)
    count 0.

    Args:
        value: A ``state_dict`` value (tensor, tuple or list of them, or anything else).
        dense_counted: Collects the type names of subclasses counted at their dense size.

    Returns:
        Bytes.
    """
    if isinstance(value, tuple | list):
        return sum(tensor_bytes(v, dense_counted) for v in value)
    if not isinstance(value, torch.Tensor):
        return 0
    flatten = getattr(value, "__tensor_flatten__", None)
    if flatten is not None:
        names, _ = flatten()
        inner = [getattr(value, n, None) for n in names]
        if any(_holds_tensor(x) for x in inner):
            return sum(tensor_bytes(x, dense_counted) for x in inner)
        if dense_counted is not None:
            dense_counted.append(type(value).__name__)
        return value.numel() * value.element_size()
    if value.is_quantized:
        extra = 16  # one scale (float64) and zero point (int64)
        if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            extra = value.q_per_channel_scales().numel() * 8
            extra += value.q_per_channel_zero_points().numel() * 8
        return value.numel() * value.element_size() + extra
    return value.numel() * value.element_size()


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, tuple | list):
        return any(_holds_tensor(v) for v in value)
    return isinstance(value, torch.Tensor)


def model_size_bytes(model: nn.Module, notes: list[str] | None = None) -> int:
    """Bytes of every tensor in ``model.state_dict()`` (shared tensors counted once).

    Args:
        model: The model to weigh.
        notes: Gets one line when some tensor-subclass weights could only be counted at
            their dense size (their format does not list the tensors it stores).

    Returns:
        Bytes.
    """
    seen: set[tuple[int, int]] = set()
    dense: list[str] = []
    total = 0
    for value in model.state_dict(keep_vars=True).values():
        if isinstance(value, torch.Tensor) and _is_plain(value):
            key = (value.data_ptr(), value.numel())
            if value.numel() and key in seen:
                continue
            seen.add(key)
        total += tensor_bytes(value, dense)
    if dense and notes is not None:
        kinds = ", ".join(sorted(set(dense)))
        notes.append(
            f"size_bytes counts {len(dense)} tensor(s) of {kinds} at their dense size "
            "(the format lists no inner tensors)"
        )
    return total


def _is_plain(t: torch.Tensor) -> bool:
    return getattr(t, "__tensor_flatten__", None) is None and not t.is_quantized


def _to_dense(w: torch.Tensor) -> torch.Tensor:
    if w.is_quantized:
        return w.dequantize()
    if getattr(w, "__tensor_flatten__", None) is not None:
        for convert in ("to_dense", "dequantize"):
            fn = getattr(w, convert, None)
            try:
                out = fn() if callable(fn) else None
            except Exception:  # a subclass that does not implement this conversion
                continue
            if isinstance(out, torch.Tensor) and getattr(out, "__tensor_flatten__", None) is None:
                return out
        raise ValueError(f"cannot read the values of a {type(w).__name__} weight")
    return w


def dense_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The effective weight of every Linear/Conv layer, as a dense float tensor.

    Covers plain layers (with pruning masks applied), dynamic int8 Linear layers (their
    packed weight, dequantized) and tensor-subclass weights (2:4 sparse, torchao).

    Raises:
        ValueError: A tensor-subclass weight converts neither ``to_dense`` nor ``dequantize``.
    """
    for name, module in model.named_modules():
        weight: Any = None
        if isinstance(module, PRUNABLE):
            weight = getattr(module, "weight", None)
        elif hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
            weight = module.weight()
        if isinstance(weight, torch.Tensor):
            yield name, _to_dense(weight.detach())


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights over the Linear/Conv layers (0 when there are none)."""
    zeros = total = 0
    for _, weight in dense_weights(model):
        zeros += int((weight == 0).sum().item())
        total += weight.numel()
    return zeros / total if total else 0.0


def parameter_count(model: nn.Module) -> int:
    """Logical number of parameters (weights and biases), whatever their storage.

    A pruned weight still counts every element (zero or not, masked or not); a dynamic
    int8 Linear counts its packed weight and bias; masks are buffers and do not count.
    """
    count = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        packed: Any = module
        if hasattr(packed, "_packed_params") and callable(getattr(packed, "weight", None)):
            count += packed.weight().numel()
            bias = packed.bias() if callable(getattr(packed, "bias", None)) else None
            count += bias.numel() if isinstance(bias, torch.Tensor) else 0
    return count


def pareto_front(energy: Sequence[float], accuracy: Sequence[float]) -> list[bool]:
    """Which rows no other row dominates.

    A row dominates another when its energy is lower or equal and its accuracy higher or
    equal, one of the two strictly.

    Rows without energy (NaN) are never on the front. Without any accuracy (all NaN), every
    row counts as equally accurate, so only the lowest energy is on the front; a row whose
    accuracy alone is missing counts as the least accurate.
    """
    e = np.asarray(energy, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if e.shape != a.shape:
        raise ValueError("energy and accuracy must have the same length")
    a = np.zeros_like(a) if np.isnan(a).all() else np.where(np.isnan(a), -np.inf, a)
    out = []
    for i in range(len(e)):
        if np.isnan(e[i]):
            out.append(False)
            continue
        ok = ~np.isnan(e)
        better_or_equal = ok & (e <= e[i]) & (a >= a[i])
        strictly = (e < e[i]) | (a > a[i])
        out.append(not bool((better_or_equal & strictly).any()))
    return out
