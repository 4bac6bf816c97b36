"""Low-bit weight-only quantization (int8, int4, int2) with packed storage, via optimum-quanto.

`optimum-quanto <https://github.com/huggingface/optimum-quanto>`_ stores int4 weights two
to a byte and int2 weights four to a byte (its ``PackedTensor``), with one float scale and
shift per group of 128 input features (per output row when a row is shorter), and runs on
CPU and CUDA. torchao 0.18 was tried first: on an x86 CPU its int4 weight-only formats
need CUDA, XPU or the ``mslk`` kernels, and ``IntxWeightOnlyConfig`` keeps int4/int2 values
one per int8 byte, so the size saving would not be real. The packed bytes are what the
sweep's ``size_bytes`` weighs (the model's ``state_dict`` lists the packed tensors).

Activations stay in floating point: each call unpacks and dequantizes the weights (on CPU
a low-bit model is usually *slower* than the float one, which the sweep shows).
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Any

import torch
from torch import nn

from greenai.compress.base import Method
from greenai.errors import ConfigError

__all__ = ["WeightOnly"]

_BITS = (8, 4, 2)
_FIRST_USE = [True]
"""Whether no model has been quantized in this process yet (quanto then loads its kernels)."""
_INSTALL = "optimum-quanto not installed (pip install 'greenai[quanto]')"


class WeightOnly(Method):
    """Linear and Conv2d weights stored as packed ``bits``-bit integers (optimum-quanto).

    Args:
        bits: 8, 4 or 2.

    Raises:
        ConfigError: Other ``bits``; at apply, optimum-quanto missing or a model without
            Linear/Conv2d layers.
    """

    name = "weight-only"
    kernel = "optimum-quanto packed weight-only matmul"

    def __init__(self, bits: int) -> None:
        if bits not in _BITS:
            raise ConfigError(f"bits must be one of {_BITS}, got {bits!r}")
        super().__init__(bits=int(bits))

    @property
    def label(self) -> str:
        """``"int4 weight-only"``."""
        return f"int{self.params['bits']} weight-only"

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """Needs optimum-quanto (CPU and CUDA)."""
        if importlib.util.find_spec("optimum") is None or (
            importlib.util.find_spec("optimum.quanto") is None
        ):
            return False, _INSTALL
        return True, ""

    def _apply(self, model: nn.Module) -> nn.Module:
        ok, why = self.available("cpu")
        if not ok:
            raise ConfigError(why)
        layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        if not layers:
            raise ConfigError("weight-only quantization needs Linear or Conv2d layers; none found")
        quanto: Any = importlib.import_module("optimum.quanto")
        qtype = {8: quanto.qint8, 4: quanto.qint4, 2: quanto.qint2}[self.params["bits"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            quanto.quantize(model, weights=qtype)
            quanto.freeze(model)
        if _FIRST_USE[0]:
            _FIRST_USE[0] = False
            self.notes.append(
                "first low-bit quantization in this process: its time includes loading "
                "(or, once per installation, compiling) optimum-quanto's kernels"
            )
        skipped = [
            m
            for m in model.modules()
            if isinstance(m, nn.Linear | nn.Conv2d) and not _is_quantized(m)
        ]
        if skipped:
            self.notes.append(f"{len(skipped)} layer(s) kept in float (quanto left them)")
        return model


def _is_quantized(layer: nn.Module) -> bool:
    weight = getattr(layer, "weight", None)
    return weight is not None and getattr(weight, "__tensor_flatten__", None) is not None
