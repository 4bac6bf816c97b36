"""Guard readings where they enter: counters that go backwards or jump impossibly.

Every device's counter values pass through a :class:`CounterGuard` before a timeline keeps
them, whichever loop read them (Python, native) and whoever wrote the device. A cumulative
energy counter must never go backwards, yet real ones do:

* a **reset** (driver reload, GPU reset, a wrap the device did not undo) — the counter
  restarts near zero and counts on. The guard stitches it: later values are offset so the
  curve continues, and the energy across the reset is filled in from power (or the last
  rate) and reported as filled in (the result is ``partial`` and says so);
* a **corrupt read** — one huge value that comes back down, or one low value between two
  normal ones. A value implying more than :data:`MAX_POWER_W` since the last one is
  rejected; a value below the last one is held back until the next read says whether the
  counter really restarted (it continues from the low value) or the low value was a glitch.

Rejected values become "not read" (NaN): the reading's power, if any, is still used. Power
values are checked too (:meth:`CounterGuard.check_power`): an infinite, negative or
impossibly high one is rejected the same way.
"""

from __future__ import annotations

import math

__all__ = ["MAX_POWER_W", "CounterGuard"]

MAX_POWER_W = 50_000.0
"""No single device draws this much (an 8-GPU HGX node is about 10 kW); a counter step
implying more is a corrupt value."""


class CounterGuard:
    """Stitches resets and rejects corrupt values of one device's energy counter.

    Args:
        name: The device, for notes.
        max_power_w: Counter steps implying more power than this are rejected.
    """

    def __init__(self, name: str, max_power_w: float = MAX_POWER_W) -> None:
        self.name = name
        self.max_power_w = max_power_w
        self.offset_j = 0.0
        self.filled_j = 0.0
        self.resets = 0
        self.rejected = 0
        self.rejected_power = 0
        self._last: tuple[float, float] | None = None  # (t, raw) of the last accepted value
        self._rate_w = 0.0
        self._held: tuple[float, float, float] | None = None  # (t, raw, power) below last

    def check(self, t: float, raw: float, power_w: float = math.nan) -> float:
        """The stitched counter value (J) to keep for a read at ``t``, or NaN to drop it."""
        if math.isnan(raw):
            return raw
        if not math.isfinite(raw) or raw < 0:
            self.rejected += 1
            return math.nan
        if self._last is None:
            self._last = (t, raw)
            return raw + self.offset_j
        last_t, last_raw = self._last
        if self._held is not None:
            held_t, held_raw, held_p = self._held
            self._held = None
            if raw < last_raw and raw >= held_raw:  # it really restarted: stitch
                fill = self._fill(held_t - last_t, held_p)
                self.offset_j += last_raw - held_raw + fill
                self.filled_j += fill
                self.resets += 1
                last_t, last_raw = held_t, held_raw
                self._last = (held_t, held_raw)
            else:  # the low value was a glitch
                self.rejected += 1
        if raw < last_raw:
            self._held = (t, raw, power_w)
            return math.nan
        dt = max(t - last_t, 1e-3)
        if (raw - last_raw) / dt > self.max_power_w:
            self.rejected += 1
            return math.nan
        if t > last_t:
            self._rate_w = (raw - last_raw) / (t - last_t)
        self._last = (t, raw)
        return raw + self.offset_j

    def check_power(self, power_w: float) -> float:
        """The power value (W) to keep, or NaN for one no device can draw (NaN stays NaN).

        Infinite, negative, or above :attr:`max_power_w` values are rejected and counted.
        """
        if math.isnan(power_w):
            return power_w
        if not math.isfinite(power_w) or power_w < 0 or power_w > self.max_power_w:
            self.rejected_power += 1
            return math.nan
        return power_w

    def _fill(self, dt: float, power_w: float) -> float:
        """Energy (J) assumed across a reset: the read's power, else the last rate."""
        watts = power_w if math.isfinite(power_w) and power_w >= 0 else self._rate_w
        return max(dt, 0.0) * watts

    def notes(self) -> list[str]:
        """One line per kind of problem seen, for the result's notes."""
        out = []
        if self.resets:
            out.append(
                f"{self.name}: the energy counter went backwards {self.resets} time(s) (a reset"
                f" or an undone wrap); stitched, with {self.filled_j:.3g} J filled in from power"
            )
        if self.rejected:
            out.append(
                f"{self.name}: {self.rejected} corrupt energy-counter value(s) rejected"
                " (a jump beyond any real power, or a value below its neighbours)"
            )
        if self.rejected_power:
            out.append(
                f"{self.name}: {self.rejected_power} impossible power value(s) rejected"
                f" (negative, infinite or above {self.max_power_w:g} W)"
            )
        return out
