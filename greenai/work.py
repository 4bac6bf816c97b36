"""Work done in a job: samples, tokens and FLOPs as counted, and the MFU they give.

The tracker's marks and ``add_flops``/``count_flops`` feed a :class:`WorkTally`; the
Measurement's work figures come from it. ``greenai.flops`` (and so torch) is imported only
when FLOPs are counted or an MFU is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from greenai.checks import check_count, check_flops
from greenai.devices.base import Device
from greenai.errors import ConfigError

__all__ = ["WorkTally"]


class WorkTally:
    """Samples, tokens and FLOPs counted in one job.

    Args:
        flops_per_step: FLOPs of one step (multiplied by the number of steps), or None.
        dtype: The compute dtype, for the GPUs' peak (MFU); None until a model shows it.
    """

    def __init__(self, flops_per_step: float | None = None, dtype: Any = None) -> None:
        self.samples = 0
        self.tokens = 0
        self.counted = [False, False]  # samples, tokens given at least once
        self.dtype = dtype
        self._flops = [0.0, 0.0]  # nominal, executed: added or counted outside steps
        self._per_step: tuple[float, float] | None = (
            None if flops_per_step is None else (float(flops_per_step), float(flops_per_step))
        )
        self.caches: dict[tuple[bool, bool], Any] = {}
        """FLOP caches by ``(backward, causal)`` (:class:`greenai.flops.FlopCache`)."""
        self._uncounted: dict[str, int] = {}  # matrix ops the FLOP counter has no formula for

    @staticmethod
    def check_counts(samples: Any, tokens: Any) -> tuple[int | None, int | None]:
        """A step's samples and tokens, checked (both before either is added).

        Raises:
            ConfigError: ``samples`` or ``tokens`` is not a non-negative integer.
        """
        return (
            None if samples is None else check_count("samples", samples),
            None if tokens is None else check_count("tokens", tokens),
        )

    def add_counts(self, samples: int | None, tokens: int | None) -> None:
        """Add a step's checked samples and tokens (:meth:`check_counts`)."""
        if samples is not None:
            self.samples += samples
            self.counted[0] = True
        if tokens is not None:
            self.tokens += tokens
            self.counted[1] = True

    def add_flops(self, flops: float, executed: float | None = None) -> None:
        """Add FLOPs (``executed`` defaults to ``flops``, the nominal).

        Raises:
            ConfigError: A negative or non-finite count.
        """
        check_flops("flops", flops)
        if executed is not None:
            check_flops("executed", executed)
        self._flops[0] += float(flops)
        self._flops[1] += float(flops if executed is None else executed)

    def count_flops(
        self,
        model: Callable[..., Any],
        inputs: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        backward: bool,
        causal: bool,
        per_step: bool,
    ) -> Any:
        """Count ``model(*inputs, **kwargs)`` once per input shape; see ``Tracker.count_flops``."""
        from greenai.flops import FlopCache

        cache = self.caches.get((backward, causal))
        if cache is None:
            cache = self.caches[(backward, causal)] = FlopCache(backward=backward, causal=causal)
        count = cache(model, *inputs, **kwargs)
        for op, n in getattr(count, "uncounted", {}).items():
            self._uncounted[op] = max(self._uncounted.get(op, 0), n)
        if per_step:
            self._per_step = (float(count.nominal), float(count.executed))
        else:
            self._flops[0] += count.nominal
            self._flops[1] += count.executed
        if self.dtype is None:
            params = getattr(model, "parameters", None)
            first = next(iter(params()), None) if callable(params) else None
            self.dtype = getattr(first, "dtype", None)
        return count

    def step_flops(self, steps: int) -> float | None:
        """Nominal FLOPs of ``steps`` steps at ``flops_per_step``; None without it."""
        return None if self._per_step is None else self._per_step[0] * steps

    def totals(self, steps: int) -> tuple[float | None, float | None]:
        """Nominal and executed FLOPs of the job after ``steps`` steps; None when unknown."""
        nominal, executed = self._flops
        if self._per_step is not None:
            nominal += self._per_step[0] * steps
            executed += self._per_step[1] * steps
        if not nominal and not executed and self._per_step is None:
            return None, None
        return nominal, executed

    def efficiency(
        self, steps: int, duration_s: float, devices: Sequence[Device], notes: list[str]
    ) -> dict[str, Any]:
        """The Measurement's FLOP fields: ``flops``, ``flops_executed``, peak and MFU.

        What cannot be computed becomes a note in ``notes``.
        """
        flops, executed = self.totals(steps)
        peak = self._peak_flops_per_s(devices, notes) if flops else None
        mfu = flops / duration_s / peak if flops and peak and duration_s > 0 else None
        if mfu is not None or self._uncounted:  # greenai.flops imports torch: only if needed
            from greenai.flops import mfu_note, uncounted_note

            for note in (mfu_note(mfu), uncounted_note(self._uncounted)):
                if note is not None:
                    notes.append(note)
        return {"flops": flops, "flops_executed": executed, "peak_flops_per_s": peak, "mfu": mfu}

    def _peak_flops_per_s(self, devices: Sequence[Device], notes: list[str]) -> float | None:
        """Summed datasheet peak of the GPUs measured, for MFU; None (with a note) if unknown."""
        from greenai.flops import peak_flops_per_s

        gpus = [d for d in devices if d.kind == "gpu"]
        if not gpus or self.dtype is None:
            notes.append("MFU not computed: it needs a GPU and a known compute dtype (dtype=)")
            return None
        try:
            peaks = [
                peak_flops_per_s(str(getattr(g, "model", None) or ""), self.dtype) for g in gpus
            ]
        except ConfigError as exc:
            notes.append(f"MFU not computed: {exc}")
            return None
        if any(p is None for p in peaks):
            names = [getattr(g, "model", None) or g.name for g in gpus]
            notes.append(f"MFU not computed: no datasheet peak for {names} at {self.dtype}")
            return None
        return math.fsum(p for p in peaks if p is not None)
