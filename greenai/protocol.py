"""Measuring regions shorter than a GPU sensor's update period: shifted starts, repeats.

A GPU's power sensor refreshes about every 100 ms and, on A100 and H100, averages only
about 25 ms of each update; which part it sees cannot be chosen (Yang, Adámek and Armour,
"Accurate and Convenient Energy Measurements for GPUs", SC'24; preprint arXiv:2312.02741).
A region shorter than one update is then seen at one phase of the sensor. Their mitigation,
used by the pytest plugin, ``greenai bench`` and the compression sweep whenever they repeat
such a region: start the repeats at :data:`SHIFTS` evenly spaced offsets across the update
period, each with a random delay inside its slot (their 8 offsets and randomly delayed
trials in one schedule), and report the spread across offsets in the uncertainty
(:func:`greenai.windows.across_offsets`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

__all__ = ["SHIFTS", "needs_shifts", "sensor_period_s", "shift_s"]

SHIFTS = 8
"""Start offsets spread across one update period (Yang, Adámek and Armour use 8)."""


def sensor_period_s(devices: Iterable[Any]) -> float | None:
    """The longest update period (s) of the GPUs among ``devices``; None without one.

    Only GPUs: their sensors update every ~100 ms and may sample part-time; CPU counters
    (RAPL) update every millisecond and integrate fully.
    """
    periods = [
        float(getattr(d, "update_period_s", 0.0) or 0.0)
        for d in devices
        if getattr(d, "kind", None) == "gpu" and getattr(d, "method", None) != "model"
    ]
    periods = [p for p in periods if p > 0]
    return max(periods) if periods else None


def needs_shifts(region_s: float, period_s: float | None) -> bool:
    """Whether a region of ``region_s`` seconds must be repeated at shifted offsets."""
    return period_s is not None and 0 <= region_s < period_s


def shift_s(i: int, period_s: float, rng: random.Random | None = None) -> float:
    """The delay (s) before repeat ``i``: slot ``i mod SHIFTS`` of the update period.

    Each delay lies at a random point of its slot, so repeats are both evenly spread over
    the sensor's phases and randomly delayed.
    """
    r = (rng or random).random()
    return (i % SHIFTS + r) * period_s / SHIFTS
