"""Compression experiments: pruning and quantization, measured, with a Pareto front.

Each method is measured for accuracy, size, FLOPs, latency and energy, the same way.

``sweep(model, methods, example_inputs, eval_fn=..., finetune_fn=...)`` returns one row
per method, setting or pipeline (``"structured:0.5+int4wo"``); methods that cannot run
here are rows marked ``skipped`` with the reason. See
docs/compression.md for what each column means.
"""

from greenai.compress.base import Baseline, Method
from greenai.compress.breakeven import BreakEven, break_even
from greenai.compress.lowbit import WeightOnly
from greenai.compress.pipeline import Pipeline
from greenai.compress.pruning import L1Unstructured
from greenai.compress.quantize import DynamicInt8, TorchaoFloat8Dynamic, TorchaoInt8WeightOnly
from greenai.compress.sparse24 import Sparse24
from greenai.compress.spec import CPU_METHODS, DEFAULT_METHODS, parse_method, parse_methods
from greenai.compress.stats import model_size_bytes, parameter_count, pareto_front, sparsity
from greenai.compress.structured import StructuredL1
from greenai.compress.sweep import COLUMNS, SweepInterrupted, sweep

__all__ = [
    "COLUMNS",
    "CPU_METHODS",
    "DEFAULT_METHODS",
    "Baseline",
    "BreakEven",
    "DynamicInt8",
    "L1Unstructured",
    "Method",
    "Pipeline",
    "Sparse24",
    "StructuredL1",
    "SweepInterrupted",
    "TorchaoFloat8Dynamic",
    "TorchaoInt8WeightOnly",
    "WeightOnly",
    "break_even",
    "model_size_bytes",
    "parameter_count",
    "pareto_front",
    "parse_method",
    "parse_methods",
    "sparsity",
    "sweep",
]
