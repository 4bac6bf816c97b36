"""What a compression method is: a name, its settings, ``apply`` and ``available``.

A method never changes the model it is given: ``apply`` works on a deep copy and returns
it. ``available(device)`` says, before anything runs, whether the method can run on that
device here (and why not), so a sweep can mark it skipped instead of failing.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

__all__ = ["PRUNABLE", "Baseline", "Method", "device_of", "prunable_layers"]

PRUNABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Layer types whose ``weight`` the pruning methods and the sparsity column consider."""


class Method(ABC):
    """One compression method at one setting.

    Attributes:
        name: Short name of the method (``"l1-unstructured"``), the same for every setting.
        params: Its settings (``{"sparsity": 0.5, "scope": "layer"}``), JSON-friendly.
        notes: What the last :meth:`apply` left out or changed beyond the obvious (layers
            kept dense, ...), one line each.
    """

    name: str = "method"
    kernel: str | None = None
    """The sparse or low-bit kernel that runs the compressed layers in place of the dense
    one (``"int8 dynamic (fbgemm/qnnpack)"``), or None when the dense kernels still run:
    then a saving beyond the noise with dense FLOPs and size unchanged is implausible
    (:func:`greenai.paired.implausible_saving`)."""
    needs_inputs: bool = False
    """Whether :meth:`apply` traces the model and so needs ``example_inputs``."""

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)
        self.notes: list[str] = []
        self.inputs: tuple[Any, ...] | None = None

    @property
    def setting(self) -> str:
        """The settings as one short string (``"sparsity=0.5 scope=layer"``)."""
        return " ".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def label(self) -> str:
        """Name and settings, unique within a sweep (``"l1-unstructured(sparsity=0.5)"``)."""
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.params.items())})"

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """Whether the method can run on ``device`` here; the reason when it cannot."""
        return True, ""

    def apply(
        self, model: nn.Module, example_inputs: Any = None, *, in_place: bool = False
    ) -> nn.Module:
        """Return a compressed deep copy of ``model`` (``model`` itself is left as it was).

        Args:
            model: The model to compress.
            example_inputs: One call's positional inputs (a tensor or a tuple), on the
                model's device; needed by methods that trace the model (``needs_inputs``).
            in_place: Compress ``model`` itself, without a copy (a pipeline's later steps:
                some quantized tensors cannot be deep-copied).

        Raises:
            ConfigError: The model has nothing this method can compress, or inputs are
                needed and missing.
        """
        self.notes = []
        if example_inputs is None:
            self.inputs = None
        elif isinstance(example_inputs, tuple | list):
            self.inputs = tuple(example_inputs)
        else:
            self.inputs = (example_inputs,)
        out = model if in_place else copy.deepcopy(model)
        out.eval()
        return self._apply(out)

    @abstractmethod
    def _apply(self, model: nn.Module) -> nn.Module:
        """Compress ``model`` (already a private copy) and return it."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class Baseline(Method):
    """The model as given: the row every ratio and change is relative to."""

    name = "baseline"

    def _apply(self, model: nn.Module) -> nn.Module:
        return model


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for an empty model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every Linear/Conv layer with a weight, in order."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, PRUNABLE) and getattr(m, "weight", None) is not None
    ]
