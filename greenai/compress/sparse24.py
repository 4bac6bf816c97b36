"""2:4 semi-structured sparsity on CUDA (``torch.sparse.to_sparse_semi_structured``).

In every group of 4 consecutive weights along a Linear's input dimension, the 2 smallest
in magnitude are zeroed (50% sparsity) and the weight is stored compressed: the kept values
plus 2-bit position metadata. Sparse tensor cores (compute capability >= 8.0) then do half
the multiply-adds. Layers whose shape or dtype the kernels do not take stay dense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from greenai.compress.base import Method
from greenai.compress.quantize import cuda_capability
from greenai.errors import ConfigError

__all__ = ["Sparse24", "mask_2_4"]


def mask_2_4(weight: torch.Tensor) -> torch.Tensor:
    """Boolean mask keeping the 2 largest-magnitude weights of every 4 along the last dim.

    Raises:
        ConfigError: The last dimension is not a multiple of 4.
    """
    rows, cols = weight.shape[0], weight.shape[-1]
    if cols % 4:
        raise ConfigError(f"2:4 sparsity needs an input size that is a multiple of 4, got {cols}")
    groups = weight.detach().float().abs().reshape(rows, cols // 4, 4)
    top = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
    return mask.reshape(weight.shape)


def _to_sparse_semi_structured(weight: torch.Tensor) -> torch.Tensor:
    from torch.sparse import to_sparse_semi_structured

    out: torch.Tensor = to_sparse_semi_structured(weight)
    return out


class Sparse24(Method):
    """Magnitude 2:4 pruning of Linear weights, stored and run as semi-structured sparse.

    ``converter`` turns a 2:4-pruned dense weight into the compressed tensor; tests replace
    it (and ``capability``) to check the plumbing on machines without CUDA.

    Raises:
        ConfigError: At apply, no Linear layer the kernels accept.
    """

    name = "sparse-2:4"
    kernel = "2:4 semi-structured sparse matmul (cuSPARSELt/CUTLASS)"
    converter: Callable[[torch.Tensor], torch.Tensor] = staticmethod(_to_sparse_semi_structured)
    capability: Callable[[torch.device | str], tuple[int, int] | None] = staticmethod(
        cuda_capability
    )

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """Needs a CUDA device of compute capability >= 8.0 (sparse tensor cores)."""
        capability = self.capability(device)
        if capability is None:
            return False, "needs CUDA (2:4 sparse kernels are GPU-only)"
        if capability < (8, 0):
            return False, f"needs compute capability >= 8.0, this GPU has {capability}"
        return True, ""

    def _apply(self, model: nn.Module) -> nn.Module:
        refused: list[str] = []
        converted = 0
        with torch.no_grad():
            for name, module in model.named_modules():
                if not isinstance(module, nn.Linear):
                    continue
                weight = module.weight
                try:
                    pruned = weight * mask_2_4(weight).to(weight.dtype)
                    sparse: Any = self.converter(pruned.contiguous())
                except (RuntimeError, ConfigError) as exc:
                    refused.append(f"{name or 'model'}: {str(exc).splitlines()[0]}")
                    continue
                module.weight = nn.Parameter(sparse, requires_grad=False)
                converted += 1
        if not converted:
            detail = "; ".join(refused) if refused else "the model has no Linear layer"
            raise ConfigError(f"no Linear layer could be made 2:4 sparse ({detail})")
        self.notes.extend(f"kept dense: {r}" for r in refused)
        return model
