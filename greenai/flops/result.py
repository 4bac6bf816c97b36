"""FlopCount: the immutable result of counting the FLOPs of one call.

One multiply-add is 2 FLOPs throughout (the convention of ``torch.utils.flop_counter``).
Two totals are always kept:

* **nominal** — the dense floating-point FLOPs of the shapes that ran. A quantized or 2:4
  sparse model has the same nominal count as its dense parent, so J/TFLOP compares them on
  the same work.
* **executed** — what the kernels that ran did: an int8 matmul counts its int8 operations
  (as many as the dense float matmul of the same shape), a 2:4 semi-structured sparse matmul
  half of the dense one, a fused causal attention kernel half of the dense attention (it
  skips the masked half). Masked unstructured pruning still runs dense kernels, so there
  executed == nominal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from greenai.errors import ConfigError

__all__ = ["FlopCount"]


def _frozen(name: str, values: Mapping[str, int]) -> Mapping[str, int]:
    for key, value in values.items():
        _check_count(f"{name}[{key!r}]", value)
    return MappingProxyType(dict(values))


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int number of FLOPs, got {value!r}")
    if value < 0:
        raise ConfigError(f"{name} must be >= 0 FLOPs, got {value}")


def _merge(a: Mapping[str, int], b: Mapping[str, int], k: int = 1) -> dict[str, int]:
    out = {key: v * k for key, v in a.items()}
    for key, v in b.items():
        out[key] = out.get(key, 0) + v * k
    return out


def _unique(notes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(notes))


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one call (forward, or forward + backward). Units: FLOPs, 1 multiply-add = 2.

    Attributes:
        nominal: Dense floating-point FLOPs of the shapes that ran (see the module doc).
        executed: FLOPs (or int ops) the kernels that ran actually performed.
        forward: Nominal FLOPs of the forward pass.
        backward: Nominal FLOPs of the backward pass (0 when it was not run).
        by_module: Nominal FLOPs per module, named as ``FlopCounterMode`` names them (root
            class name, then the dotted child path: ``"GPT.blocks.0.attn"``); a parent
            includes its children, so these do not sum to the total.
        by_operator: Nominal FLOPs per operator (``"aten.mm"``, ``"quantized.linear_dynamic"``);
            these sum to ``nominal``.
        executed_by_operator: Executed FLOPs per operator; these sum to ``executed``.
        uncounted: Calls per op that does matrix work but has no FLOP formula (its FLOPs
            are not in any total); each also has a note ``"uncounted: aten.X ×N"``. See
            :mod:`greenai.flops.guard`.
        notes: What was counted beyond ``FlopCounterMode``'s own formulas, and how, and
            what was not counted.

    Raises:
        ConfigError: A count is negative or not an int, or ``forward + backward`` differs
            from ``nominal``.
    """

    nominal: int
    executed: int
    forward: int
    backward: int = 0
    by_module: Mapping[str, int] = field(default_factory=dict, hash=False)
    by_operator: Mapping[str, int] = field(default_factory=dict, hash=False)
    executed_by_operator: Mapping[str, int] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()
    uncounted: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("nominal", "executed", "forward", "backward"):
            _check_count(name, getattr(self, name))
        if self.forward + self.backward != self.nominal:
            raise ConfigError(
                f"forward ({self.forward}) + backward ({self.backward}) must equal "
                f"nominal ({self.nominal}) FLOPs"
            )
        for name in ("by_module", "by_operator", "executed_by_operator", "uncounted"):
            object.__setattr__(self, name, _frozen(name, getattr(self, name)))
        object.__setattr__(self, "notes", _unique(self.notes))

    @property
    def total(self) -> int:
        """The headline count: the same as :attr:`nominal`. Units: FLOPs."""
        return self.nominal

    def scaled(self, k: int) -> FlopCount:
        """This count repeated ``k`` times (for ``k`` steps of the same shape).

        Raises:
            ConfigError: ``k`` is not an int >= 0.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError(f"scaled(k) needs an int k >= 0, got {k!r}")
        return FlopCount(
            nominal=self.nominal * k,
            executed=self.executed * k,
            forward=self.forward * k,
            backward=self.backward * k,
            by_module=_merge(self.by_module, {}, k),
            by_operator=_merge(self.by_operator, {}, k),
            executed_by_operator=_merge(self.executed_by_operator, {}, k),
            notes=self.notes,
            uncounted=_merge(self.uncounted, {}, k),
        )

    def __add__(self, other: object) -> FlopCount:
        if not isinstance(other, FlopCount):
            return NotImplemented
        return FlopCount(
            nominal=self.nominal + other.nominal,
            executed=self.executed + other.executed,
            forward=self.forward + other.forward,
            backward=self.backward + other.backward,
            by_module=_merge(self.by_module, other.by_module),
            by_operator=_merge(self.by_operator, other.by_operator),
            executed_by_operator=_merge(self.executed_by_operator, other.executed_by_operator),
            notes=self.notes + other.notes,
            uncounted=_merge(self.uncounted, other.uncounted),
        )

    def __radd__(self, other: object) -> FlopCount:
        # sum() starts from 0.
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields (``total`` included)."""
        return {
            "total": self.total,
            "nominal": self.nominal,
            "executed": self.executed,
            "forward": self.forward,
            "backward": self.backward,
            "by_module": dict(self.by_module),
            "by_operator": dict(self.by_operator),
            "executed_by_operator": dict(self.executed_by_operator),
            "notes": list(self.notes),
            "uncounted": dict(self.uncounted),
        }
