"""Structured pruning that physically removes output rows/channels (real size and speed).

Inside each ``nn.Sequential``, a Linear followed by a Linear (or a ConvNd by a ConvNd of
the same kind) with only shape-preserving modules in between — activations, dropout,
identity, pooling between convolutions, and a BatchNorm of the right size, which is pruned
along — forms a *pair*. The first layer loses its lowest-L1-norm output rows/channels and
the second the matching input columns, so the Sequential's own inputs and outputs keep
their shapes. A layer whose output goes anywhere else (the model's output, a Flatten, a
LayerNorm, a custom module) is left whole, and so are the children of an ``nn.Sequential``
subclass with its own ``forward`` (it need not run its children one into the next).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from greenai.compress.base import Method
from greenai.errors import ConfigError

__all__ = ["StructuredL1", "prunable_pairs"]

_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Hardswish,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
)
_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_CONVS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

Pair = tuple[Any, list[Any], Any]


def _width(layer: Any, side: str) -> int:
    if isinstance(layer, nn.Linear):
        return int(layer.out_features if side == "out" else layer.in_features)
    return int(layer.out_channels if side == "out" else layer.in_channels)


def _is_prunable(layer: Any) -> bool:
    if isinstance(layer, nn.Linear):
        return True
    return isinstance(layer, _CONVS) and getattr(layer, "groups", 1) == 1


def _next_layer(first: nn.Module, rest: list[nn.Module]) -> tuple[list[nn.Module], nn.Module]:
    """The BatchNorms and the layer that consume ``first``'s output, or raise LookupError."""
    norms: list[nn.Module] = []
    width = _width(first, "out")
    for module in rest:
        if isinstance(module, _ELEMENTWISE):
            if isinstance(module, nn.Identity) or not list(module.parameters()):
                continue
            raise LookupError
        if isinstance(module, _POOLS) and isinstance(first, _CONVS):
            continue
        if isinstance(module, _NORMS) and module.num_features == width and not norms:
            norms.append(module)
            continue
        if _is_prunable(module) and type(module) is type(first) and _width(module, "in") == width:
            return norms, module
        raise LookupError
    raise LookupError


def prunable_pairs(model: nn.Module, untrusted: list[str] | None = None) -> list[Pair]:
    """``(layer, batchnorms between, next layer)`` for every pair structured pruning can cut.

    Only an ``nn.Sequential`` that runs ``nn.Sequential.forward`` is known to feed each child
    into the next: a subclass with its own ``forward`` may skip, reorder or reuse its
    children, so its children are never paired.

    Args:
        model: The model to search.
        untrusted: Gets ``"name (Type)"`` of each Sequential subclass skipped for its own
            ``forward``.
    """
    pairs: list[Pair] = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        if type(seq).forward is not nn.Sequential.forward:
            if untrusted is not None:
                untrusted.append(f"{name or '(model)'} ({type(seq).__name__})")
            continue
        children = list(seq.children())
        for i, layer in enumerate(children):
            if not _is_prunable(layer):
                continue
            try:
                norms, following = _next_layer(layer, children[i + 1 :])
            except LookupError:
                continue
            pairs.append((layer, norms, following))
    return pairs


def _keep(weight: torch.Tensor, amount: float) -> torch.Tensor:
    """Indices (ascending) of the output rows with the largest L1 norms."""
    rows = weight.shape[0]
    keep = max(1, round(rows * (1.0 - amount)))
    norms = weight.detach().float().abs().reshape(rows, -1).sum(dim=1)
    return torch.sort(torch.topk(norms, keep).indices).values


def _param(t: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(t.contiguous(), requires_grad=like.requires_grad)


def _cut_outputs(layer: Any, keep: torch.Tensor) -> None:
    layer.weight = _param(layer.weight[keep], layer.weight)
    if layer.bias is not None:
        layer.bias = _param(layer.bias[keep], layer.bias)
    if isinstance(layer, nn.Linear):
        layer.out_features = len(keep)
    else:
        layer.out_channels = len(keep)


def _cut_inputs(layer: Any, keep: torch.Tensor) -> None:
    layer.weight = _param(layer.weight[:, keep], layer.weight)
    if isinstance(layer, nn.Linear):
        layer.in_features = len(keep)
    else:
        layer.in_channels = len(keep)


def _cut_norm(norm: Any, keep: torch.Tensor) -> None:
    for name in ("weight", "bias"):
        p = getattr(norm, name)
        if p is not None:
            setattr(norm, name, _param(p[keep], p))
    for name in ("running_mean", "running_var"):
        buf = getattr(norm, name)
        if buf is not None:
            setattr(norm, name, buf[keep].clone())
    norm.num_features = len(keep)


class StructuredL1(Method):
    """Remove the ``amount`` fraction of lowest-L1-norm output rows/channels of each pair.

    Args:
        amount: Fraction of the rows (Linear) or channels (Conv) to remove, in [0, 1); at
            least one is always kept.

    Raises:
        ConfigError: ``amount`` out of range; at apply, no pair to cut (see the module doc).
    """

    name = "structured-l1"

    def __init__(self, amount: float) -> None:
        if not isinstance(amount, int | float) or not 0 <= amount < 1:
            raise ConfigError(f"amount must be a fraction in [0, 1), got {amount!r}")
        super().__init__(amount=float(amount))

    @property
    def label(self) -> str:
        """``"structured 50%"``."""
        return f"structured {self.params['amount']:.0%}"

    def _apply(self, model: nn.Module) -> nn.Module:
        untrusted: list[str] = []
        pairs = prunable_pairs(model, untrusted)
        custom = (
            f"left whole: {', '.join(untrusted)}: nn.Sequential subclasses with their own "
            "forward (their children need not run one into the next)"
        )
        if not pairs:
            raise ConfigError(
                "structured pruning found no Linear->Linear or Conv->Conv pair inside an "
                "nn.Sequential (only activations, dropout, pooling or one BatchNorm may sit "
                "between them)" + (f"; {custom}" if untrusted else "")
            )
        if untrusted:
            self.notes.append(custom)
        with torch.no_grad():
            for layer, norms, following in pairs:
                keep = _keep(layer.weight, self.params["amount"])
                _cut_outputs(layer, keep)
                for norm in norms:
                    _cut_norm(norm, keep)
                _cut_inputs(following, keep.to(following.weight.device))
        return model
