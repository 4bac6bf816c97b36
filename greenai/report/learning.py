"""A stored run's learning rows (``meta["learning"]``) with the energy each one cost.

The callbacks store, per epoch or evaluation, the optimizer step it was reached at
(:mod:`greenai.integrations.learning`); the energy of a row is that of the steps since the
previous row's, from the run's own step energies (so evaluation and FLOP counting, kept out
of steps, are not in it). Its uncertainty carries the steps' total relative uncertainty.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from greenai.measurement import Measurement

__all__ = ["learning_rows"]


def learning_rows(meta: Mapping[str, Any], m: Measurement | None) -> list[dict[str, Any]]:
    """The rows ``render_html(learning=)`` draws: ``epoch``, ``loss``, ``accuracy``, energy.

    Returns an empty list when the run has no learning rows. A row's ``energy_j`` is None
    when the run has no step energies (no device, or not that many steps measured).
    """
    stored = meta.get("learning")
    if not isinstance(stored, list):
        return []
    steps = m.steps if m is not None else None
    energies = list(steps.energy_j) if steps is not None else []
    cum = [0.0, *itertools.accumulate(energies)]
    rel = 0.0
    if steps is not None and steps.measured_energy_j and steps.measured_uncertainty_j:
        rel = steps.measured_uncertainty_j / steps.measured_energy_j
    out, prev = [], 0
    for row in stored:
        if not isinstance(row, Mapping) or not isinstance(row.get("step"), int):
            continue
        step = row["step"]
        energy = None
        if energies and prev <= step <= len(energies):
            energy = cum[step] - cum[prev]
            energy = energy if math.isfinite(energy) else None
        out.append(
            {
                "epoch": row.get("epoch", step),
                "loss": row.get("loss"),
                "accuracy": row.get("accuracy"),
                "eval_loss": row.get("eval_loss"),
                "energy_j": energy,
                "uncertainty_j": None if energy is None else abs(energy) * rel,
            }
        )
        prev = max(prev, step)
    return out
