"""The Ledger the added FLOP formulas report to, and the helpers they share.

``FlopCounterMode`` calls each formula with the op's arguments and its output
(``out_val``); a formula marked :func:`raw` gets the tensors themselves rather than their
shapes. What a formula cannot tell ``FlopCounterMode`` (executed FLOPs that differ from the
nominal ones, a note on how it counted) goes to the :class:`Ledger` of that count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Formula", "Ledger", "numel", "raw", "shape"]

Formula = Callable[..., int]


class Ledger:
    """What the added formulas saw during one count.

    Attributes:
        executed_delta: Executed minus nominal FLOPs, per operator name.
        notes: One line per kind of formula that fired, in order of first use.
        attention_calls: How many fused attention ops were counted.
    """

    def __init__(self) -> None:
        self.executed_delta: defaultdict[str, int] = defaultdict(int)
        self.notes: dict[str, None] = {}
        self.attention_calls = 0

    def record(self, op: Any, nominal: int, executed: int, note: str | None = None) -> None:
        """Remember one call of an added formula."""
        if executed != nominal:
            self.executed_delta[str(op)] += executed - nominal
        if note is not None:
            self.note(note)

    def note(self, line: str) -> None:
        """Add a note (once)."""
        self.notes.setdefault(line, None)

    @property
    def executed_minus_nominal(self) -> int:
        """Executed minus nominal FLOPs so far, over all operators."""
        return sum(self.executed_delta.values())


def raw(formula: Formula) -> Formula:
    """Mark ``formula`` to receive the tensors themselves, not their shapes."""
    formula._get_raw = True  # type: ignore[attr-defined]
    return formula


def shape(x: Any) -> tuple[int, ...]:
    """The shape of a tensor as a tuple of ints."""
    return tuple(int(d) for d in x.shape)


def numel(dims: Iterable[int]) -> int:
    """The number of elements of a shape."""
    n = 1
    for d in dims:
        n *= int(d)
    return n
