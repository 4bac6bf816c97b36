"""Quantization: dynamic int8 on CPU (torch.ao), int8 weight-only and float8 on GPU (torchao).

``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao and warns on
every call; the adapter here silences exactly those warnings and reports the method
unavailable (rather than failing) on a torch that no longer has it. torchao is an optional
extra (``pip install 'greenai[torchao]'``); without it the torchao methods say so.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from greenai.compress.base import Method
from greenai.errors import ConfigError

__all__ = [
    "DynamicInt8",
    "TorchaoFloat8Dynamic",
    "TorchaoInt8WeightOnly",
    "cuda_capability",
    "load_quantize_dynamic",
]

_DEPRECATIONS = (
    r"(?s).*torch\.ao\.quantization is deprecated",
    r"(?s).*quantized tensor creation functions",
    r"(?s).*torch\.quantization is deprecated",
)


def load_quantize_dynamic() -> tuple[Callable[..., Any] | None, str]:
    """Torch's ``quantize_dynamic`` (``torch.ao`` first, then ``torch.quantization``).

    Returns:
        The function and ``""``, or None and why it is not there.
    """
    for module in ("torch.ao.quantization", "torch.quantization"):
        try:
            with _quiet():
                found = getattr(importlib.import_module(module), "quantize_dynamic", None)
        except ImportError:
            continue
        if callable(found):
            return found, ""
    return None, f"this torch ({torch.__version__}) has no quantize_dynamic (use torchao)"


class _quiet(warnings.catch_warnings):
    """Ignore only torch's deprecation warnings about eager-mode quantization."""

    def __enter__(self) -> None:
        super().__enter__()
        for pattern in _DEPRECATIONS:
            warnings.filterwarnings("ignore", message=pattern)


def _engine_reason() -> str:
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    return "" if engines else "this torch build has no quantized CPU engine (fbgemm/qnnpack)"


class DynamicInt8(Method):
    """Linear weights stored as int8; activations quantized on the fly at each call (CPU).

    Raises:
        ConfigError: At apply, a model whose Linear layers are not float32.
    """

    name = "int8-dynamic"
    kernel = "int8 dynamic-quantized Linear (fbgemm/qnnpack)"

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """CPU only, and only where torch still ships ``quantize_dynamic`` and an engine."""
        if torch.device(device).type != "cpu":
            return False, "dynamic int8 (torch.ao quantize_dynamic) runs on CPU only"
        fn, why = load_quantize_dynamic()
        if fn is None:
            return False, why
        why = _engine_reason()
        return (not why), why

    def _apply(self, model: nn.Module) -> nn.Module:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError("dynamic int8 quantizes Linear layers; the model has none")
        dtypes = {m.weight.dtype for m in linears}
        if dtypes != {torch.float32}:
            raise ConfigError(
                f"dynamic int8 needs float32 Linear layers, got {sorted(map(str, dtypes))}"
            )
        fn, why = load_quantize_dynamic()
        if fn is None:
            raise ConfigError(why)
        with _quiet():
            out: nn.Module = fn(model, {nn.Linear}, dtype=torch.qint8)
        return out


def cuda_capability(device: torch.device | str) -> tuple[int, int] | None:
    """Compute capability of a CUDA ``device``, or None when it is not a usable CUDA device."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(dev)
    return int(major), int(minor)


def _torchao_config(new: str, old: str) -> Any:
    quantization = importlib.import_module("torchao.quantization")
    factory = getattr(quantization, new, None) or getattr(quantization, old, None)
    if factory is None:
        raise ConfigError(f"this torchao has neither {new} nor {old}: upgrade torchao")
    return factory()


class _Torchao(Method):
    """A torchao ``quantize_`` config applied to the Linear layers (CUDA)."""

    min_capability: tuple[int, int] = (8, 0)
    config_names: tuple[str, str] = ("", "")

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """Needs torchao installed and a CUDA device of at least ``min_capability``."""
        if importlib.util.find_spec("torchao") is None:
            return False, "torchao not installed (pip install 'greenai[torchao]')"
        capability = cuda_capability(device)
        if capability is None:
            return False, "needs CUDA"
        if capability < self.min_capability:
            want = ".".join(map(str, self.min_capability))
            return False, f"needs compute capability >= {want}, this GPU has {capability}"
        return True, ""

    def _apply(self, model: nn.Module) -> nn.Module:
        quantize_ = importlib.import_module("torchao.quantization").quantize_
        quantize_(model, _torchao_config(*self.config_names))
        return model


class TorchaoInt8WeightOnly(_Torchao):
    """torchao int8 weight-only: int8 weights dequantized in the matmul (GPU)."""

    name = "torchao-int8-weight-only"
    kernel = "torchao int8 weight-only matmul"
    config_names = ("Int8WeightOnlyConfig", "int8_weight_only")


class TorchaoFloat8Dynamic(_Torchao):
    """torchao float8 dynamic activations and weights (GPU, compute capability >= 8.9)."""

    name = "torchao-float8-dynamic"
    kernel = "torchao float8 scaled matmul"
    min_capability = (8, 9)
    config_names = (
        "Float8DynamicActivationFloat8WeightConfig",
        "float8_dynamic_activation_float8_weight",
    )
