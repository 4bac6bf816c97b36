"""Unstructured L1 (magnitude) pruning, per layer or global, with masks removed or attached.

Unstructured pruning zeroes individual weights but keeps every tensor its dense shape, so
the dense kernels do the same work: on its own it saves neither time nor energy. With the
masks *attached* (``torch.nn.utils.prune`` before ``prune.remove``) the model is worse on
both counts: it stores each weight twice (``weight_orig`` and ``weight_mask``) and
recomputes ``weight = weight_orig * weight_mask`` before every forward.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

from greenai.compress.base import Method, prunable_layers
from greenai.errors import ConfigError

__all__ = ["L1Unstructured"]

_SCOPES = ("layer", "global")


class L1Unstructured(Method):
    """Zero the ``sparsity`` fraction of smallest-magnitude weights of every Linear/Conv.

    Args:
        sparsity: Fraction of weights to zero, in [0, 1).
        scope: ``"layer"``: that fraction in each layer; ``"global"``: that fraction of all
            of them together, smallest first, wherever they are.
        masks: ``"removed"`` (``prune.remove``: plain weights with zeros) or ``"attached"``
            (mask buffers kept, applied by a hook on every forward).

    Raises:
        ConfigError: A value out of range.
    """

    name = "l1-unstructured"

    def __init__(self, sparsity: float, scope: str = "layer", masks: str = "removed") -> None:
        if not isinstance(sparsity, int | float) or not 0 <= sparsity < 1:
            raise ConfigError(f"sparsity must be a fraction in [0, 1), got {sparsity!r}")
        if scope not in _SCOPES:
            raise ConfigError(f"scope must be one of {_SCOPES}, got {scope!r}")
        if masks not in ("removed", "attached"):
            raise ConfigError(f"masks must be 'removed' or 'attached', got {masks!r}")
        super().__init__(sparsity=float(sparsity), scope=scope, masks=masks)

    @property
    def label(self) -> str:
        """``"l1-layer 50%"``, ``"l1-global 50%"``, ``"l1-layer 50% +masks"``."""
        p = self.params
        masks = " +masks" if p["masks"] == "attached" else ""
        return f"l1-{p['scope']} {p['sparsity']:.0%}{masks}"

    def _apply(self, model: nn.Module) -> nn.Module:
        layers = prunable_layers(model)
        if not layers:
            raise ConfigError("the model has no Linear or Conv layer to prune")
        amount = self.params["sparsity"]
        if self.params["scope"] == "global":
            prune.global_unstructured(
                [(m, "weight") for _, m in layers],
                pruning_method=prune.L1Unstructured,
                amount=amount,
            )
        else:
            for _, module in layers:
                prune.l1_unstructured(module, "weight", amount=amount)  # type: ignore[no-untyped-call]
        if self.params["masks"] == "removed":
            for _, module in layers:
                prune.remove(module, "weight")  # type: ignore[no-untyped-call]
        return model
