"""Composed compression: methods applied one after another (``structured:0.5+int4wo``).

Each step works on the previous step's output (the first on a copy of the model), so
pruning before quantization compounds: 2× fewer parameters, each stored in 4 bits instead
of 32, weighs about 2 × 7 = 14× less. :attr:`Pipeline.steps_report` keeps, per step, its
time and the size and parameter count it left; the notes say each step's contribution.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from greenai.compress.base import Method
from greenai.compress.stats import model_size_bytes, parameter_count
from greenai.errors import ConfigError

__all__ = ["Pipeline", "StepReport"]


@dataclass(frozen=True)
class StepReport:
    """What one step of a pipeline did.

    Attributes:
        label: The step's method label.
        duration_s: Wall time of the step, in seconds.
        size_bytes: Model size after the step, in bytes.
        params: Parameter count after the step.
    """

    label: str
    duration_s: float
    size_bytes: int
    params: int


class Pipeline(Method):
    """Apply ``steps`` in order; the row is the model the last step leaves.

    Args:
        steps: Two or more methods (a pipeline of one is that method).

    Raises:
        ConfigError: Fewer than two steps, or a step that is not a :class:`Method`.
    """

    name = "pipeline"

    def __init__(self, steps: Sequence[Method]) -> None:
        steps = list(steps)
        if len(steps) < 2 or not all(isinstance(s, Method) for s in steps):
            raise ConfigError(f"a pipeline needs two or more methods, got {steps!r}")
        super().__init__(steps="+".join(s.label for s in steps))
        self.steps = steps
        self.needs_inputs = any(s.needs_inputs for s in steps)
        self.kernel = "; ".join(s.kernel for s in steps if s.kernel) or None
        self.steps_report: list[StepReport] = []

    @property
    def label(self) -> str:
        """``"structured 50% + int4 weight-only"``."""
        return " + ".join(s.label for s in self.steps)

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """Available when every step is; otherwise the first step's reason."""
        for step in self.steps:
            ok, why = step.available(device)
            if not ok:
                return False, f"{step.label}: {why}"
        return True, ""

    def _apply(self, model: nn.Module) -> nn.Module:
        self.steps_report = []
        size = model_size_bytes(model)
        first = size
        parts: list[str] = []
        for step in self.steps:
            t0 = time.perf_counter()
            try:
                model = step.apply(model, self.inputs, in_place=True)
            except ConfigError as exc:
                raise ConfigError(f"step {step.label!r}: {exc}") from exc
            duration_s = time.perf_counter() - t0
            after = model_size_bytes(model)
            report = StepReport(step.label, duration_s, after, parameter_count(model))
            self.steps_report.append(report)
            parts.append(f"{step.label}: {size / after:.2f}× size in {duration_s:.2f} s")
            self.notes.extend(f"{step.label}: {n}" for n in step.notes)
            size = after
        self.notes.insert(0, "steps: " + "; ".join(parts) + f" (total {first / size:.2f}×)")
        return model
