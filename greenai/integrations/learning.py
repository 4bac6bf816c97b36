"""What a training run learned, per epoch, kept beside its energy (the callbacks' part).

The Trainer and Lightning callbacks note, at each epoch's end and each evaluation, the
training loss and the evaluation's loss and accuracy, with the optimizer step they were
reached at. The rows go into the run's meta (``meta["learning"]``, via
:meth:`greenai.Tracker.update_meta`) before the job stops, so a stored run keeps them and
``greenai report`` draws them beside the energy (:func:`greenai.report.learning.learning_rows`
adds each row's energy from the run's step energies).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenai.tracker import Tracker

__all__ = ["LEARNING_KEY", "MAX_ROWS", "LearningLog"]

LEARNING_KEY = "learning"
"""The meta key the rows are stored under."""

MAX_ROWS = 256
"""Rows kept: past it, every other older row is dropped (the first and the latest stay), so
a run of 100,000 epochs stores a few hundred rows spread over all of it."""


def _number(value: Any) -> float | None:
    """``value`` as a finite float (a tensor's item too), else None."""
    try:
        out = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return out if math.isfinite(out) else None


class LearningLog:
    """Rows of ``step``, ``epoch``, ``loss``, ``eval_loss``, ``accuracy``, bounded.

    A row is keyed by its optimizer step: an evaluation and an epoch's end at the same step
    fill one row. Past :data:`MAX_ROWS` rows, every other kept row is dropped and only
    every other new row is kept from then on (the stride doubles), so the rows stay
    evenly spread over the run; the latest row is always kept.
    """

    def __init__(self) -> None:
        self._kept: list[dict[str, Any]] = []
        self._latest: dict[str, Any] | None = None
        self._count = 0
        self._stride = 1

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The kept rows, oldest first, the latest last."""
        latest = self._latest
        if latest is None or (self._kept and self._kept[-1] is latest):
            return list(self._kept)
        return [*self._kept, latest]

    def note(self, step: int, epoch: float | None, **figures: Any) -> None:
        """Note figures reached at optimizer step ``step`` (non-numbers are left out)."""
        values = {k: v for k, v in ((k, _number(v)) for k, v in figures.items()) if v is not None}
        if not values:
            return
        if self._latest is not None and self._latest["step"] == step:
            self._latest.update(values)
            return
        row: dict[str, Any] = {"step": int(step)}
        if epoch is not None and _number(epoch) is not None:
            row["epoch"] = round(float(epoch), 4)
        row.update(values)
        self._latest = row
        if self._count % self._stride == 0:
            self._kept.append(row)
            if len(self._kept) > MAX_ROWS:
                self._kept = self._kept[::2]
                self._stride *= 2
        self._count += 1

    def publish(self, job: Tracker | None) -> None:
        """Put the rows into ``job``'s meta (nothing without rows or a running job)."""
        if self.rows and job is not None and job.running:
            job.update_meta({LEARNING_KEY: [dict(r) for r in self.rows]})
