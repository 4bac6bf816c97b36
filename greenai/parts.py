"""The parts of a Measurement: one device's energy, one phase's, the steps'.

:class:`~greenai.measurement.Measurement` holds them; the distributed job record
(:mod:`greenai.jobrecord`) uses them too, so they live below both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from greenai.units import FLOP_PER_TFLOP

__all__ = ["DeviceEnergy", "PhaseEnergy", "StepEnergy"]


@dataclass(frozen=True)
class DeviceEnergy:
    """Energy of one device over the job.

    Attributes:
        method: ``counter``, ``power`` or ``model`` (see :data:`greenai.devices.base.Method`).
        uncertainty_j: About 95% uncertainty of ``energy_j`` in joules.
        partial: True when the device failed during the job (the gap was interpolated).
        idle_power_w: Idle power from the baseline, when ``baseline_s`` was given.
        idle_power_uncertainty_w: About 95% uncertainty of ``idle_power_w`` (W): the
            baseline window's energy uncertainty over its length.
        last_power_w: The latest power reading (W), for live views.
        scope: ``"machine"`` (what the hardware drew) or ``"process"`` (the tracked
            process tree's attributed share, :mod:`greenai.devices.attribution`).
        shared_uncertainty_j: The part of ``uncertainty_j`` that is a scale error shared by
            every figure of this device (a model's or a power sensor's), J: it cancels
            when two runs on the same device are compared
            (:func:`greenai.windows.compare_with_uncertainty`).
        fallback: ``"counter→power"`` when a counter device's figure fell back to its power
            values (its counter did not change during the job); None otherwise. The
            result's notes say so too.
    """

    name: str
    kind: str
    method: str
    energy_j: float
    uncertainty_j: float
    avg_power_w: float
    peak_power_w: float
    samples: int
    partial: bool = False
    error: str | None = None
    idle_power_w: float | None = None
    last_power_w: float | None = None
    scope: str = "machine"
    shared_uncertainty_j: float = 0.0
    fallback: str | None = None
    idle_power_uncertainty_w: float | None = None


@dataclass(frozen=True)
class PhaseEnergy:
    """Energy of a phase, summed over every time it was entered.

    ``name`` is the path of nested phases joined by ``/`` (``"train/forward"``). The phase
    ``"(other)"`` holds the job's time outside every top-level phase, so top-level phases
    plus ``(other)`` sum exactly to the job total.
    """

    name: str
    count: int
    duration_s: float
    energy_j: float | None
    uncertainty_j: float | None


@dataclass(frozen=True)
class StepEnergy:
    """Per-step figures. Step ``k`` runs from the previous ``step()`` (or the start) to its own.

    Attributes:
        count: ``step()`` calls.
        duration_s: Each step's length (s); empty in a running snapshot.
        energy_j: Each step's energy (J); empty in a running snapshot or without devices.
        uncertainty_j: Each step's own ~95% uncertainty (J).
        samples: Samples counted with ``step(samples=...)``; None if never given.
        tokens: Tokens counted with ``step(tokens=...)``; None if never given.
        flops: FLOPs of all steps, when FLOPs per step are known.
        measured_count: Steps whose energy is settled (all of them once stopped).
        measured_energy_j: Energy of those steps together (J). Steps tile the job from its
            start, so this is one window's energy and ``measured_uncertainty_j`` that
            window's own uncertainty: per-step figures derive from it, not from a sum of
            per-step uncertainties (:func:`greenai.windows.per_unit`).
        measured_uncertainty_j: About 95% uncertainty of ``measured_energy_j`` (J).
        apart_phases: Phases opened with ``in_steps=False`` (an evaluation pass, FLOP
            counting): their energy is in no step, only in the phase.
    """

    count: int = 0
    duration_s: tuple[float, ...] = ()
    energy_j: tuple[float, ...] = ()
    uncertainty_j: tuple[float, ...] = ()
    samples: int | None = None
    tokens: int | None = None
    flops: float | None = None
    measured_count: int = 0
    measured_energy_j: float | None = None
    measured_uncertainty_j: float | None = None
    apart_phases: tuple[str, ...] = ()

    @property
    def total_energy_j(self) -> float:
        """Energy of all measured steps together (J); 0 without any."""
        if self.measured_energy_j is not None:
            return self.measured_energy_j
        return math.fsum(self.energy_j)

    def _share(self, amount: int | None) -> float | None:
        """``amount`` scaled to the measured steps (samples or tokens, FLOPs)."""
        if not amount or not self.count or not self.measured_count:
            return None
        return amount * self.measured_count / self.count

    def _per(self, amount: float | None) -> tuple[float | None, float | None]:
        from greenai.windows import per_unit

        if self.measured_energy_j is None and not self.energy_j:
            return None, None
        return per_unit(self.total_energy_j, self.measured_uncertainty_j, amount)

    @property
    def j_per_tflop(self) -> float | None:
        """Step energy per trillion FLOPs (J/TFLOP), when FLOPs per step are known."""
        flops = None if self.flops is None else self._share(int(self.flops))
        return self._per(None if flops is None else flops / FLOP_PER_TFLOP)[0]

    @property
    def j_per_tflop_uncertainty_j(self) -> float | None:
        """About 95% uncertainty of :attr:`j_per_tflop` (J/TFLOP)."""
        flops = None if self.flops is None else self._share(int(self.flops))
        return self._per(None if flops is None else flops / FLOP_PER_TFLOP)[1]

    @property
    def mean_energy_j(self) -> float | None:
        """Mean energy per step (J), None without steps or energy."""
        return self._per(self.measured_count or None)[0]

    @property
    def mean_energy_uncertainty_j(self) -> float | None:
        """About 95% uncertainty of :attr:`mean_energy_j` (J)."""
        return self._per(self.measured_count or None)[1]

    @property
    def energy_per_sample_j(self) -> float | None:
        """Step energy per sample counted with ``step(samples=...)`` (J)."""
        return self._per(self._share(self.samples))[0]

    @property
    def energy_per_sample_uncertainty_j(self) -> float | None:
        """About 95% uncertainty of :attr:`energy_per_sample_j` (J)."""
        return self._per(self._share(self.samples))[1]

    @property
    def energy_per_token_j(self) -> float | None:
        """Step energy per token counted with ``step(tokens=...)`` (J)."""
        return self._per(self._share(self.tokens))[0]

    @property
    def energy_per_token_uncertainty_j(self) -> float | None:
        """About 95% uncertainty of :attr:`energy_per_token_j` (J)."""
        return self._per(self._share(self.tokens))[1]
