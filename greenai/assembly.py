"""Measurement assembly: a settling pass of a job's ledger turned into a :class:`Measurement`.

:func:`measure` reads what a running job holds (:class:`JobState`: its timeline, ledger,
sampler, marks and work tally) and a pass whose curves are final past ``t1``; it returns the
immutable record, with a note for everything that could not be computed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Protocol

import numpy as np

from greenai.carbon.accounting import Accounting, account
from greenai.errors import MeasurementWarning
from greenai.ledger import OTHER_PHASE, Ledger, OpenPhase, Point, point_at
from greenai.measurement import DeviceEnergy, Measurement, PhaseEnergy, StepEnergy
from greenai.timeline import Pass, Timeline
from greenai.windows import Spans, linear, sum_devices

if TYPE_CHECKING:
    from greenai.sampling.sampler import Sampler
    from greenai.work import WorkTally

__all__ = ["UNSETTLED_PHASE", "JobState", "fallback", "measure"]

UNSETTLED_PHASE = "(not yet attributed)"
"""In a running snapshot: the job's last seconds, not yet settled into phases."""


class JobState(Protocol):
    """What :func:`measure` reads of a running job."""

    name: str
    accounting: Accounting
    timeline: Timeline
    ledger: Ledger
    sampler: Sampler
    work: WorkTally
    t0: float
    t_baseline: float
    started_at: str
    open_phases: list[OpenPhase]
    last_live: dict[str, float]

    @property
    def steps(self) -> int:
        """``step()`` calls so far."""
        ...


def measure(
    job: JobState, p: Pass, t1: float, status: str, notes: list[str], *, live: bool
) -> Measurement:
    """The job over ``[t0, t1]`` from pass ``p`` (``live``: a running snapshot)."""
    ledger, timeline = job.ledger, job.timeline
    t0, duration = job.t0, t1 - job.t0
    start = ledger.t0_point or (point_at(p, t0) if p.curves else {})
    devices = _devices(job, p, start, t1, live)
    _device_notes(job, {d.name for d in devices}, notes)
    guard_notes = timeline.guard_notes()
    notes.extend(guard_notes)
    if not live:  # one warning per problem, on the caller's thread
        for message in guard_notes:
            warnings.warn(message, MeasurementWarning, stacklevel=6)
    if not p.curves:
        notes.append("no energy source was measured; only time is reported")
    energy: float | None = math.fsum(d.energy_j for d in devices) if devices else None
    unc = _total_uncertainty(ledger, devices) if devices else None
    work = job.work.efficiency(job.steps, duration, job.sampler.devices, notes)
    _sensor_notes(job, duration, notes, live)
    idle_all = [d.idle_power_w for d in devices if d.idle_power_w is not None]
    idle_w = math.fsum(idle_all) if idle_all and len(idle_all) == len(devices) else None
    above = energy - idle_w * duration if energy is not None and idle_w is not None else None
    # The baseline's own error, scaled to the job: it shares the edge at the start with
    # the job's figure (what one reads too high the other reads too low), so they add.
    idle_u = linear(d.idle_power_uncertainty_w or 0.0 for d in devices)
    above_u = unc + idle_u * duration if above is not None and unc is not None else None
    return Measurement(
        name=job.name,
        status=status,  # type: ignore[arg-type]
        started_at=job.started_at,
        duration_s=duration,
        energy_j=energy,
        uncertainty_j=unc,
        avg_power_w=energy / duration if energy is not None and duration > 0 else None,
        peak_power_w=timeline.peak_total_power_w() if devices else None,
        devices=tuple(devices),
        phases=tuple(_phase_energy(job, bool(p.curves), live, energy, unc, t1)),
        steps=_step_energy(job, start, live, bool(p.curves)),
        period_s=job.sampler.period_s,
        idle_power_w=idle_w,
        energy_above_idle_j=above,
        energy_above_idle_uncertainty_j=above_u,
        partial=bool(job.sampler.failed) or timeline.guard_filled(),
        notes=tuple(notes),
        carbon=account(energy, job.accounting) if energy is not None else None,
        **work,
    )


def _total_uncertainty(ledger: Ledger, devices: list[DeviceEnergy]) -> float:
    """The devices' uncertainties over the job, summed (J).

    Shared parts linearly, the others as far as the devices err together
    (:meth:`Ledger.correlation`).
    """
    rho = ledger.correlation([d.name for d in devices], since_start=True)
    if bool(np.all(rho >= 1.0)):  # the usual case: one device, or phases not told
        return linear(d.uncertainty_j for d in devices)
    parts = (
        (
            np.array([d.energy_j]),
            np.array([d.uncertainty_j - d.shared_uncertainty_j]),
            np.array([d.shared_uncertainty_j]),
        )
        for d in devices
    )
    return float(sum_devices(parts, 1, rho).uncertainty_j[0])


def fallback(job: JobState, t1: float, status: str, notes: list[str]) -> Measurement:
    """What is kept when the figures cannot be computed: the time, and why."""
    return Measurement(
        name=job.name,
        status=status,  # type: ignore[arg-type]
        started_at=job.started_at,
        duration_s=t1 - job.t0,
        energy_j=None,
        uncertainty_j=None,
        avg_power_w=None,
        peak_power_w=None,
        partial=True,
        notes=tuple(notes),
    )


def _devices(job: JobState, p: Pass, start: Point, t1: float, live: bool) -> list[DeviceEnergy]:
    """Each device's energy over ``[t0, t1]``; a live figure never goes down."""
    ledger, timeline, t0 = job.ledger, job.timeline, job.t0
    end = point_at(p, t1) if p.curves else {}
    if not end:
        return []
    per_device = ledger.parts_by_device([start], [end], [t0], [t1])
    idle = _idle_power_w(job, p, start)
    failed = job.sampler.failed
    scopes = {d.name: d.scope for d in job.sampler.devices}
    duration = t1 - t0
    out = []
    for name, parts in per_device.items():
        track = timeline.tracks[name]
        dev_j = float(parts.energy_j[0])
        if live:  # Prometheus reads a drop as a counter reset
            dev_j = max(dev_j, job.last_live.get(name, 0.0))
            job.last_live[name] = dev_j
        out.append(
            DeviceEnergy(
                name=name,
                kind=track.spec.kind,
                method=p.curves[name].method if name in p.curves else track.method,
                fallback=(
                    f"{track.spec.method}→{p.curves[name].method}"
                    if name in p.curves and p.curves[name].method != track.spec.method
                    else None
                ),
                energy_j=dev_j,
                uncertainty_j=float(parts.uncertainty_j[0]),
                shared_uncertainty_j=float(parts.shared_j[0]),
                avg_power_w=dev_j / duration if duration > 0 else 0.0,
                peak_power_w=track.peak_power_w(t0, p.curves.get(name)),
                samples=track.samples_in_job(),
                partial=failed.get(name) is not None or track.guard.filled_j > 0,
                error=failed.get(name),
                idle_power_w=idle[name][0] if name in idle else None,
                idle_power_uncertainty_w=idle[name][1] if name in idle else None,
                last_power_w=track.last_power_w(),
                scope=scopes.get(name, "machine"),
            )
        )
    return out


def _idle_power_w(job: JobState, p: Pass, start: Point) -> dict[str, tuple[float, float]]:
    """Per device, the baseline's idle power before the job and its uncertainty (W, W).

    Empty without a baseline.
    """
    ledger, t0, tb = job.ledger, job.t0, job.t_baseline
    if not (ledger.baseline and t0 > tb):
        return {}
    base = ledger.baseline_point or point_at(p, tb)
    parts = ledger.parts_by_device([base], [start], [tb], [t0])
    return {
        name: (float(part.energy_j[0]) / (t0 - tb), float(part.uncertainty_j[0]) / (t0 - tb))
        for name, part in parts.items()
    }


def _device_notes(job: JobState, measured: set[str], notes: list[str]) -> None:
    failed = job.sampler.failed
    for name, error in failed.items():
        if name not in measured:
            notes.append(f"{name} gave no reading: {error}")
        else:
            notes.append(f"{name} failed during the job ({error}); its gap is interpolated")
    for name in job.timeline.tracks:
        if name not in measured and name not in failed:
            notes.append(
                f"{name} gave no usable reading (every value was missing or rejected);"
                " it is left out of the figures"
            )


def _sensor_notes(job: JobState, duration: float, notes: list[str], live: bool) -> None:
    from greenai.sensing import result_notes, sensor_notes

    for message in sensor_notes(job.ledger, job.timeline.tracks, duration):
        notes.append(message)
        if not live:  # once per job: the final figures
            warnings.warn(message, MeasurementWarning, stacklevel=7)
    notes.extend(result_notes(job.ledger, job.timeline.tracks))


def _phase_energy(
    job: JobState,
    measured: bool,
    live: bool,
    total_j: float | None,
    total_u: float | None,
    t1: float,
) -> list[PhaseEnergy]:
    ledger = job.ledger
    if not ledger.phases and not (live and job.open_phases):
        return []
    out = [_phase(name, spans, measured) for name, spans in ledger.phases.items()]
    out.append(_phase(OTHER_PHASE, ledger.other, measured))
    if live:  # the last seconds are not attributed yet: say so, so the parts add up
        top = [ph for ph in out if "/" not in ph.name]
        done_s = math.fsum(ph.duration_s for ph in top)
        done_j = math.fsum(ph.energy_j or 0.0 for ph in top)
        out.append(
            PhaseEnergy(
                name=UNSETTLED_PHASE,
                count=1,
                duration_s=max(t1 - job.t0 - done_s, 0.0),
                energy_j=max(total_j - done_j, 0.0) if total_j is not None else None,
                uncertainty_j=total_u,
            )
        )
    return out


def _step_energy(job: JobState, start: Point, live: bool, measured: bool) -> StepEnergy:
    ledger, work = job.ledger, job.work
    count = job.steps
    if not count:
        return StepEnergy()
    totals = StepEnergy(
        count=count,
        samples=work.samples if work.counted[0] else None,
        tokens=work.tokens if work.counted[1] else None,
        flops=work.step_flops(count),
    )
    done = ledger.steps_done
    last = ledger.last_step_point()
    if measured and done and last is not None and start:
        # Steps tile [t0, last step] less the spans of phases kept out of steps: their sum
        # is that window's energy less those spans', with the window's own uncertainty.
        t_last, point = last
        whole = ledger.parts([start], [point], [job.t0], [t_last])
        totals = dataclasses.replace(
            totals,
            measured_count=done,
            measured_energy_j=float(whole.energy_j[0]) - ledger.apart_spans.energy_j,
            measured_uncertainty_j=float(whole.uncertainty_j[0]),
        )
    if ledger.apart_paths:
        totals = dataclasses.replace(totals, apart_phases=tuple(sorted(ledger.apart_paths)))
    if live:
        return totals
    return dataclasses.replace(
        totals,
        duration_s=tuple(ledger.step_duration_s),
        energy_j=tuple(ledger.step_energy_j) if measured else (),
        uncertainty_j=tuple(ledger.step_uncertainty_j) if measured else (),
    )


def _phase(name: str, spans: Spans, measured: bool) -> PhaseEnergy:
    return PhaseEnergy(
        name=name,
        count=spans.count,
        duration_s=spans.duration_s,
        energy_j=spans.energy_j if measured else None,
        uncertainty_j=spans.uncertainty_j if measured else None,
    )
