"""Measurement: the immutable result of a tracked job.

All quantities are SI (joules, watts, seconds); ``energy_kwh`` is derived for reporting.
Every energy figure carries the ``method`` that produced it and an ``uncertainty_j``
(about 95% coverage, relative to the device's own sensor; see docs/accuracy.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from greenai.errors import ConfigError
from greenai.jobrecord import JobRecord
from greenai.parts import DeviceEnergy, PhaseEnergy, StepEnergy
from greenai.units import FLOP_PER_TFLOP, J_PER_KWH

if TYPE_CHECKING:
    import pandas as pd

    from greenai.carbon.accounting import CarbonFigures

__all__ = [
    "FLOP_COUNT_PHASE",
    "J_PER_KWH",
    "DeviceEnergy",
    "Measurement",
    "PhaseEnergy",
    "StepEnergy",
]

Status = Literal["running", "completed", "failed", "interrupted"]

FLOP_COUNT_PHASE = "flop-count"
"""The phase FLOPs are counted in (by the callbacks): its energy is left out of J/TFLOP."""

_DERIVED = (
    "energy_kwh",
    "facility_energy_kwh",
    "co2e_kg",
    "co2e_market_kg",
    "water_l",
    "tflop",
    "flop_count_energy_j",
    "j_per_tflop",
    "kwh_per_tflop",
    "kwh_per_tflop_pue",
    "tflops_per_s",
)


@dataclass(frozen=True)
class Measurement:
    """What a tracked job drew. Immutable; build it with :class:`greenai.Tracker`.

    Attributes:
        energy_j: Total energy of all devices (J), or None when no device could be measured
            (the job's time is still recorded).
        uncertainty_j: About 95% uncertainty of ``energy_j`` (J): the sum of the devices'.
        methods: The methods behind ``energy_j``; more than one means a mix of measured and
            modelled figures.
        partial: True when a device failed during the job.
        idle_power_w: Total idle power from the baseline (``baseline_s``), if one was taken.
        energy_above_idle_j: ``energy_j`` less idle power × duration, if a baseline was taken.
        energy_above_idle_uncertainty_j: About 95% uncertainty of ``energy_above_idle_j`` (J):
            ``uncertainty_j`` plus the idle power's uncertainty × duration (the baseline and
            the job share the edge at the start, so their errors add).
        carbon: Facility energy (PUE), CO2e (location- and market-based) and water, each with
            its factor and source; None when nothing was measured.
        flops: Nominal (dense-equivalent) FLOPs done (1 multiply-add = 2 FLOPs), from
            ``count_flops``, ``add_flops`` or ``flops_per_step``; None when not given.
        flops_executed: FLOPs the kernels executed (differs for quantized or sparse models).
        peak_flops_per_s: Datasheet dense peak of the measured GPUs for the dtype.
        mfu: Model FLOPs utilisation: achieved nominal FLOP/s / ``peak_flops_per_s``.
        job: For a distributed job, the per-rank, per-node and per-device breakdown
            (:class:`greenai.distributed.JobRecord`); on rank 0 the other fields are then the
            job's totals. None for a single process.
        co2e_series_kg: Location-based CO2e charged hour by hour (or step by step) of the
            ``carbon_intensity_series`` given, on the power timeline (facility energy × the
            intensity when it was drawn), kg; None without a series (a note says why when
            one was given but could not be applied).
        co2e_series_source: The series' source and the convention used.
        embodied_co2e_kg: Manufacturing (embodied, Scope 3) CO2e of the GPUs used and their
            servers' share, amortised over their service life and charged by device-hours
            (:func:`greenai.carbon.embodied.gpu_job_embodied_co2e`), kg. Reported beside
            operational CO2e, never added to it. None without GPUs.
        embodied_source: The figures used, their publications (and whether each is a class
            estimate) and the amortisation basis.
    """

    name: str
    status: Status
    started_at: str
    duration_s: float
    energy_j: float | None
    uncertainty_j: float | None
    avg_power_w: float | None
    peak_power_w: float | None
    devices: tuple[DeviceEnergy, ...] = ()
    phases: tuple[PhaseEnergy, ...] = ()
    steps: StepEnergy = field(default_factory=StepEnergy)
    period_s: float | None = None
    idle_power_w: float | None = None
    energy_above_idle_j: float | None = None
    energy_above_idle_uncertainty_j: float | None = None
    partial: bool = False
    notes: tuple[str, ...] = ()
    carbon: CarbonFigures | None = None
    flops: float | None = None
    flops_executed: float | None = None
    peak_flops_per_s: float | None = None
    mfu: float | None = None
    job: JobRecord | None = None
    co2e_series_kg: float | None = None
    co2e_series_source: str | None = None
    embodied_co2e_kg: float | None = None
    embodied_source: str | None = None

    @property
    def tflop(self) -> float | None:
        """Nominal (dense-equivalent) work done, in trillions of FLOPs."""
        return None if self.flops is None else self.flops / FLOP_PER_TFLOP

    @property
    def flop_count_energy_j(self) -> float | None:
        """Energy (J) spent counting FLOPs: the phases named :data:`FLOP_COUNT_PHASE`.

        It is part of :attr:`energy_j` (the job drew it) and left out of the per-TFLOP
        figures (counting is not the work counted). None when no such phase was measured.
        """
        spent = [
            p.energy_j
            for p in self.phases
            if p.name.rsplit("/", 1)[-1] == FLOP_COUNT_PHASE and p.energy_j is not None
        ]
        return math.fsum(spent) if spent else None

    @property
    def j_per_tflop(self) -> float | None:
        """IT energy per trillion nominal FLOPs (J/TFLOP), less the FLOP counting's.

        The energy spent counting FLOPs (:attr:`flop_count_energy_j`) is not the work's:
        it is subtracted here, and stays in :attr:`energy_j` and in its own phase.
        """
        if self.energy_j is None or not self.flops:
            return None
        work_j = self.energy_j - (self.flop_count_energy_j or 0.0)
        return work_j / (self.flops / FLOP_PER_TFLOP)

    @property
    def kwh_per_tflop(self) -> float | None:
        """IT energy per trillion nominal FLOPs (kWh/TFLOP)."""
        j = self.j_per_tflop
        return None if j is None else j / J_PER_KWH

    @property
    def kwh_per_tflop_pue(self) -> float | None:
        """Facility (PUE-weighted) energy per trillion nominal FLOPs (kWh/TFLOP)."""
        kwh = self.kwh_per_tflop
        pue = 1.0 if self.carbon is None else self.carbon.pue
        return None if kwh is None else kwh * pue

    @property
    def tflops_per_s(self) -> float | None:
        """Achieved throughput (TFLOP/s) over the whole job."""
        if self.flops is None or self.duration_s <= 0:
            return None
        return self.flops / FLOP_PER_TFLOP / self.duration_s

    @property
    def energy_kwh(self) -> float | None:
        """Total energy in kWh."""
        return None if self.energy_j is None else self.energy_j / J_PER_KWH

    @property
    def facility_energy_kwh(self) -> float | None:
        """Energy at the facility meter: IT energy × PUE (kWh)."""
        return None if self.carbon is None else self.carbon.facility_energy_kwh

    @property
    def co2e_kg(self) -> float | None:
        """Location-based emissions (kg CO2e), None without a grid intensity."""
        return None if self.carbon is None else self.carbon.co2e_kg

    @property
    def co2e_market_kg(self) -> float | None:
        """Market-based emissions (kg CO2e), None without ``renewable_share``."""
        return None if self.carbon is None else self.carbon.co2e_market_kg

    @property
    def water_l(self) -> float | None:
        """Site water (litres), None without ``wue_l_per_kwh``."""
        return None if self.carbon is None else self.carbon.water_l

    @property
    def methods(self) -> tuple[str, ...]:
        """Distinct methods behind the total, strongest first."""
        order = {"counter": 0, "power": 1, "model": 2}
        return tuple(sorted({d.method for d in self.devices}, key=lambda m: order.get(m, 9)))

    def device(self, name: str) -> DeviceEnergy:
        """The figures of device ``name``. Raises KeyError listing the known names."""
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(f"no device {name!r}; this measurement has {[d.name for d in self.devices]}")

    def phase(self, name: str) -> PhaseEnergy:
        """The figures of phase ``name`` (a ``/``-joined path for nested phases)."""
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(f"no phase {name!r}; this measurement has {[p.name for p in self.phases]}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, plus ``energy_kwh`` and ``methods``."""
        # asdict deep-copies every element: 400,000 per-step floats took seconds. Fields
        # hold plain values (numbers, strings, dataclasses, tuples): copied shallowly, and
        # the per-step tuples of floats as lists.
        data: dict[str, Any] = _plain(dataclasses.replace(self, steps=StepEnergy()))
        data["steps"] = {
            f.name: list(v) if isinstance(v := getattr(self.steps, f.name), tuple) else v
            for f in dataclasses.fields(StepEnergy)
        }
        for name in _DERIVED:
            data[name] = getattr(self, name)
        data["methods"] = list(self.methods)
        data["steps"]["energy_per_sample_j"] = self.steps.energy_per_sample_j
        data["steps"]["energy_per_token_j"] = self.steps.energy_per_token_j
        data["steps"]["j_per_tflop"] = self.steps.j_per_tflop
        data["steps"]["mean_energy_j"] = self.steps.mean_energy_j
        data["steps"]["mean_energy_uncertainty_j"] = self.steps.mean_energy_uncertainty_j
        data["steps"]["energy_per_sample_uncertainty_j"] = (
            self.steps.energy_per_sample_uncertainty_j
        )
        data["steps"]["energy_per_token_uncertainty_j"] = self.steps.energy_per_token_uncertainty_j
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """Rebuild a Measurement from :meth:`to_dict` output (derived keys are ignored)."""
        from greenai.carbon.accounting import CarbonFigures

        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["devices"] = tuple(DeviceEnergy(**d) for d in data.get("devices", ()))
        kwargs["phases"] = tuple(PhaseEnergy(**p) for p in data.get("phases", ()))
        step_names = {f.name for f in dataclasses.fields(StepEnergy)}
        steps = {k: v for k, v in data.get("steps", {}).items() if k in step_names}
        for key in ("duration_s", "energy_j", "uncertainty_j", "apart_phases"):
            steps[key] = tuple(steps.get(key, ()))
        if "measured_energy_j" not in steps and steps.get("energy_j"):  # older records
            steps["measured_count"] = len(steps["energy_j"])
            steps["measured_energy_j"] = math.fsum(steps["energy_j"])
        kwargs["steps"] = StepEnergy(**steps)
        kwargs["notes"] = tuple(data.get("notes", ()))
        carbon = data.get("carbon")
        if carbon is not None:
            carbon_names = {f.name for f in dataclasses.fields(CarbonFigures)}
            kwargs["carbon"] = CarbonFigures(
                **{k: v for k, v in carbon.items() if k in carbon_names}
            )
        if data.get("job") is not None:
            kwargs["job"] = JobRecord.from_dict(data["job"])
        return cls(**kwargs)

    def to_json(self, **kwargs: Any) -> str:
        """The :meth:`to_dict` record as JSON text (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_frame(
        self, what: Literal["summary", "devices", "phases", "steps"] = "summary"
    ) -> pd.DataFrame:
        """A pandas DataFrame: one row for the job, or one per device, phase or step."""
        import pandas as pd

        frame: pd.DataFrame
        if what == "summary":
            row = {
                k: v
                for k, v in self.to_dict().items()
                if k not in ("devices", "phases", "steps", "notes", "carbon", "job")
            }
            row["methods"] = ",".join(self.methods)
            row["steps"] = self.steps.count
            frame = pd.DataFrame([row])
            return frame
        if what == "devices":
            frame = pd.DataFrame([dataclasses.asdict(d) for d in self.devices])
            return frame
        if what == "phases":
            frame = pd.DataFrame([dataclasses.asdict(p) for p in self.phases])
            return frame
        if what == "steps":
            s = self.steps
            frame = pd.DataFrame(
                {
                    "step": range(1, s.count + 1),
                    "duration_s": s.duration_s or [math.nan] * s.count,
                    "energy_j": s.energy_j or [math.nan] * s.count,
                    "uncertainty_j": s.uncertainty_j or [math.nan] * s.count,
                }
            )
            return frame
        raise ConfigError(f"what must be summary, devices, phases or steps; got {what!r}")


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for plain values, without its deep copies.

    Dataclasses become dicts and tuples and lists become lists; every other value is kept
    as it is (numbers, strings, None).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
