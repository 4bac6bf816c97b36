"""Methods named by short strings, for the command line: ``l1:0.5``, ``structured:0.3``...

======================  ===============================================================
spec                    method
======================  ===============================================================
``l1:S``                L1 unstructured, per layer, sparsity S, masks removed
``l1-global:S``         L1 unstructured, global, masks removed
``l1-masked:S``         L1 unstructured, per layer, masks attached
``l1-global-masked:S``  L1 unstructured, global, masks attached
``structured:A``        structured L1, remove fraction A of the parameters (any model)
``structured-heads:A``  the same, removing whole attention heads instead of head dims
``int8-dynamic``        torch.ao dynamic int8 (CPU)
``torchao-int8wo``      torchao int8 weight-only (CUDA, needs torchao)
``torchao-fp8``         torchao float8 dynamic (CUDA >= 8.9, needs torchao)
``sparse24``            2:4 semi-structured sparsity (CUDA >= 8.0)
``int8wo``              int8 weight-only, optimum-quanto (CPU and CUDA)
``int4wo``              int4 weight-only, packed two per byte, optimum-quanto
``int2wo``              int2 weight-only, packed four per byte, optimum-quanto
``A+B+...``             a pipeline: A, then B on A's output (``structured:0.5+int4wo``)
======================  ===============================================================

``structured:A`` removes the fraction A of the parameters (Torch-Pruning, any architecture).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from greenai.compress.base import Method
from greenai.compress.lowbit import WeightOnly
from greenai.compress.pipeline import Pipeline
from greenai.compress.pruning import L1Unstructured
from greenai.compress.quantize import DynamicInt8, TorchaoFloat8Dynamic, TorchaoInt8WeightOnly
from greenai.compress.sparse24 import Sparse24
from greenai.compress.structured import StructuredL1
from greenai.errors import ConfigError

__all__ = ["CPU_METHODS", "DEFAULT_METHODS", "SPECS", "parse_method", "parse_methods"]

_WITH_VALUE: dict[str, Callable[[float], Method]] = {
    "l1": lambda s: L1Unstructured(s),
    "l1-global": lambda s: L1Unstructured(s, scope="global"),
    "l1-masked": lambda s: L1Unstructured(s, masks="attached"),
    "l1-global-masked": lambda s: L1Unstructured(s, scope="global", masks="attached"),
    "structured": lambda a: StructuredL1(a),
    "structured-heads": lambda a: StructuredL1(a, heads=True),
}
_PLAIN: dict[str, Callable[[], Method]] = {
    "int8-dynamic": DynamicInt8,
    "torchao-int8wo": TorchaoInt8WeightOnly,
    "torchao-fp8": TorchaoFloat8Dynamic,
    "sparse24": Sparse24,
    "int8wo": lambda: WeightOnly(8),
    "int4wo": lambda: WeightOnly(4),
    "int2wo": lambda: WeightOnly(2),
}
SPECS: tuple[str, ...] = (*(f"{k}:X" for k in _WITH_VALUE), *_PLAIN)
"""Every spec form :func:`parse_method` takes (``X`` is a fraction)."""

CPU_METHODS = (
    "l1:0.5,structured:0.5,int8-dynamic,int4wo,structured:0.5+int8-dynamic,structured:0.5+int4wo"
)
"""Baseline is always added: the CI sweep (pruning, structured, int8, int4, two pipelines)."""

DEFAULT_METHODS = (
    "l1:0.3,l1:0.5,l1:0.7,l1-global:0.5,l1-masked:0.5,structured:0.5,"
    "int8-dynamic,int8wo,int4wo,int2wo,structured:0.5+int8-dynamic,structured:0.5+int4wo,"
    "l1:0.7+int4wo,torchao-int8wo,torchao-fp8,sparse24"
)
"""Everything, at a few settings; methods that cannot run here come out as skipped rows."""


def parse_method(spec: str) -> Method:
    """One :class:`Method` from a spec string (see the module doc); ``+`` makes a pipeline.

    Raises:
        ConfigError: Unknown name (with the closest known one), missing or bad value.
    """
    if "+" in spec:
        parts = spec.split("+")
        if any(not p.strip() for p in parts):
            raise ConfigError(f"empty step in pipeline {spec!r} (write 'structured:0.5+int4wo')")
        return Pipeline([_one(p) for p in parts])
    return _one(spec)


def _one(spec: str) -> Method:
    name, _, value = spec.strip().partition(":")
    if name in _PLAIN:
        if value:
            raise ConfigError(f"method {name!r} takes no value, got {spec!r}")
        return _PLAIN[name]()
    if name in _WITH_VALUE:
        try:
            fraction = float(value)
        except ValueError:
            raise ConfigError(
                f"method {name!r} needs a fraction, e.g. '{name}:0.5', got {spec!r}"
            ) from None
        return _WITH_VALUE[name](fraction)
    close = difflib.get_close_matches(name, [*_WITH_VALUE, *_PLAIN], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown method {spec!r}{hint}; known: {', '.join(SPECS)}")


def parse_methods(specs: str | Iterable[str]) -> list[Method]:
    """Methods from a comma-separated string or a list of specs (``baseline`` is skipped)."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    return [parse_method(s) for s in items if s.strip() and s.strip() != "baseline"]
