"""Assemble the ranks' payloads into one job: devices counted once, totals, breakdowns.

Dedupe rule: a device is (host id, device id) — the GPU's UUID, or the kind and name of a
host-wide device (``cpu:cpu0-package``, ``dram:memory-model``). When several ranks of one
host read the same device, the reading of the lowest rank is counted and the others are
listed as ``duplicates``; the job's energy is the sum over unique devices. Each reading
covers its own rank's window (they differ by the ranks' start/stop skew, usually
milliseconds after a synchronising collective).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from greenai.carbon.accounting import account
from greenai.distributed.payload import RankPayload
from greenai.distributed.record import JobDevice, JobRecord, NodeEnergy, RankEnergy
from greenai.measurement import DeviceEnergy, Measurement, PhaseEnergy, Status, StepEnergy
from greenai.windows import linear  # devices and ranks: their errors add linearly

if TYPE_CHECKING:
    from greenai.carbon.accounting import Accounting

__all__ = ["aggregate", "host_clashes", "rank_view"]

_SEVERITY = {"completed": 0, "running": 1, "interrupted": 2, "failed": 3}


def aggregate(
    payloads: Sequence[RankPayload],
    *,
    world_size: int,
    name: str | None = None,
    accounting: Accounting | None = None,
    gather_s: float | None = None,
    payload_bytes: int | None = None,
) -> Measurement:
    """The job's Measurement, with its :class:`JobRecord` in ``job``.

    Args:
        payloads: What the ranks sent (rank 0's own included), in any order.
        world_size: Ranks in the job; those with no payload are listed as missing.
        name: The job's name (default: the lowest rank's).
        accounting: Carbon accounting settings for the job's total (rank 0's tracker's).
        gather_s: Seconds the gather took, recorded on the job.
        payload_bytes: Bytes gathered, recorded on the job.
    """
    by_rank: dict[int, RankPayload] = {}
    for p in sorted(payloads, key=lambda p: p.rank):
        by_rank.setdefault(p.rank, p)
    ranks = list(by_rank.values())
    missing = tuple(sorted(set(range(world_size)) - set(by_rank)))
    devices, dropped = _unique_devices(ranks)
    energy_by_rank = _credited_energy(ranks, devices)
    job_devices = [d for d, _, _ in devices.values()]
    energies = [e for _, e, _ in devices.values()]
    energy = math.fsum(d.energy_j for d in energies) if energies else None
    unc = linear(u for _, u, _ in energy_by_rank.values() if u is not None) if energies else None
    start, duration = _window(ranks)
    notes = [*_notes(ranks), *host_clashes(ranks)]
    if missing:
        notes.insert(0, f"rank(s) {list(missing)} of {world_size} never reported: not counted")
    steps = _steps(ranks, dropped, notes)
    flops = _sum_or_none([p.measurement.flops for p in ranks])
    executed = _sum_or_none([p.measurement.flops_executed for p in ranks])
    peaks = [p.measurement.peak_flops_per_s for p in ranks]
    peak = math.fsum(x for x in peaks if x is not None) if peaks and None not in peaks else None
    idle = [d.idle_power_w for d in energies]
    idle_w = math.fsum(x for x in idle if x is not None) if idle and None not in idle else None
    first = ranks[0].measurement if ranks else None
    record = JobRecord(
        scope="job",
        world_size=world_size,
        rank=ranks[0].rank if ranks else 0,
        ranks=tuple(_rank_energy(p, energy_by_rank.get(p.rank)) for p in ranks),
        nodes=_nodes(ranks, job_devices),
        devices=tuple(job_devices),
        missing_ranks=missing,
        backend=ranks[0].backend if ranks else None,
        slurm=ranks[0].slurm if ranks else None,
        gather_s=gather_s,
        payload_bytes=payload_bytes,
    )
    status: Status = max(
        (p.measurement.status for p in ranks), key=_SEVERITY.__getitem__, default="failed"
    )
    return Measurement(
        name=name or (first.name if first else "job"),
        status=status,
        started_at=start,
        duration_s=duration,
        energy_j=energy,
        uncertainty_j=unc,
        avg_power_w=energy / duration if energy is not None and duration > 0 else None,
        peak_power_w=None,  # ranks' peaks need not coincide: their sum would overstate it
        devices=tuple(energies),
        phases=_phases(ranks, devices),
        steps=steps,
        period_s=first.period_s if first else None,
        idle_power_w=idle_w,
        energy_above_idle_j=(
            math.fsum(
                d.energy_j - (d.idle_power_w or 0.0) * by_rank[j.rank].measurement.duration_s
                for j, d, _ in devices.values()
            )
            if idle_w is not None
            else None
        ),
        energy_above_idle_uncertainty_j=(
            linear(
                d.uncertainty_j
                + (d.idle_power_uncertainty_w or 0.0) * by_rank[j.rank].measurement.duration_s
                for j, d, _ in devices.values()
            )
            if idle_w is not None
            else None
        ),
        partial=bool(missing) or any(p.measurement.partial for p in ranks),
        notes=tuple(notes),
        carbon=account(energy, accounting) if energy is not None and accounting else None,
        flops=flops,
        flops_executed=executed,
        peak_flops_per_s=peak,
        mfu=flops / duration / peak if flops and peak and duration > 0 else None,
        job=record,
    )


def rank_view(payload: RankPayload) -> JobRecord:
    """The record a rank other than 0 keeps: itself alone, every device it read credited."""
    m = payload.measurement
    names = tuple(f"{payload.host}/{d.name}" for d in m.devices)
    return JobRecord(
        scope="rank",
        world_size=payload.world_size,
        rank=payload.rank,
        ranks=(_rank_energy(payload, (m.energy_j, m.uncertainty_j, names)),),
        backend=payload.backend,
        slurm=payload.slurm,
    )


# -- pieces --------------------------------------------------------------------------------

_Devices = dict[tuple[str, str], tuple[JobDevice, DeviceEnergy, str]]
"""(host, device id) → the job's device, its figures, and its name on its rank."""


def _unique_devices(ranks: list[RankPayload]) -> tuple[_Devices, set[int]]:
    """Unique devices (the lowest rank's reading wins), and the ranks that had duplicates."""
    devices: _Devices = {}
    dropped: set[int] = set()
    used: set[str] = set()
    for p in ranks:
        for d in p.measurement.devices:
            key = (p.host, p.device_ids.get(d.name) or f"{d.kind}:{d.name}")
            if key in devices:
                job, energy, local = devices[key]
                job = dataclasses.replace(job, duplicates=(*job.duplicates, p.rank))
                devices[key] = (job, energy, local)
                dropped.add(p.rank)
                continue
            name = f"{p.host}/{d.name}"
            if name in used:  # two devices of one host share a name (explicit devices=)
                name = f"{name}@r{p.rank}"
            used.add(name)
            devices[key] = (
                JobDevice(
                    name=name,
                    host=p.host,
                    device_id=key[1],
                    rank=p.rank,
                    kind=d.kind,
                    method=d.method,
                    energy_j=d.energy_j,
                    uncertainty_j=d.uncertainty_j,
                ),
                dataclasses.replace(d, name=name),
                d.name,
            )
    return devices, dropped


def _credited_energy(
    ranks: list[RankPayload], devices: _Devices
) -> dict[int, tuple[float | None, float | None, tuple[str, ...]]]:
    """Per rank: the energy (J), ± (J) and names of the devices it is credited with.

    A rank credited with every device it read keeps its own ±, which combines its devices
    by how far their counters' update phases lie apart (:func:`greenai.windows.sum_devices`):
    a one-rank job reads as its tracker did. Where some of its devices are counted on
    another rank, its credited ones add linearly (the safe rule). Ranks add linearly.
    """
    mine: dict[int, list[JobDevice]] = {p.rank: [] for p in ranks}
    for job, _, _ in devices.values():
        mine[job.rank].append(job)
    out: dict[int, tuple[float | None, float | None, tuple[str, ...]]] = {}
    for p in ranks:
        jobs = mine[p.rank]
        if not jobs:
            out[p.rank] = (None, None, ())
            continue
        unc = linear(j.uncertainty_j for j in jobs)
        own = p.measurement.uncertainty_j
        if own is not None and len(jobs) == len(p.measurement.devices):
            unc = min(unc, own)  # all its devices: its own sum (never wider than linear)
        out[p.rank] = (math.fsum(j.energy_j for j in jobs), unc, tuple(j.name for j in jobs))
    return out


def _rank_energy(
    p: RankPayload, credited: tuple[float | None, float | None, tuple[str, ...]] | None
) -> RankEnergy:
    m = p.measurement
    energy, unc, names = credited or (None, None, ())
    return RankEnergy(
        rank=p.rank,
        local_rank=p.local_rank,
        host=p.host,
        status=m.status,
        started_at=m.started_at,
        duration_s=m.duration_s,
        energy_j=energy,
        uncertainty_j=unc,
        measured_energy_j=m.energy_j,
        devices=names,
        phases=m.phases,
        steps=m.steps.count,
        samples=m.steps.samples,
        tokens=m.steps.tokens,
        flops=m.flops,
        notes=m.notes,
    )


def _nodes(ranks: list[RankPayload], devices: list[JobDevice]) -> tuple[NodeEnergy, ...]:
    on: dict[str, tuple[list[int], list[JobDevice]]] = {}
    for p in ranks:
        on.setdefault(p.host, ([], []))[0].append(p.rank)
    for d in devices:
        on.setdefault(d.host, ([], []))[1].append(d)
    return tuple(
        NodeEnergy(
            host=host,
            ranks=tuple(rs),
            energy_j=math.fsum(d.energy_j for d in ds),
            uncertainty_j=linear(d.uncertainty_j for d in ds),
            devices=tuple(d.name for d in ds),
        )
        for host, (rs, ds) in on.items()
    )


def _phases(ranks: list[RankPayload], devices: _Devices) -> tuple[PhaseEnergy, ...]:
    """Job phases: each unique device's phase energy, from the rank credited with it.

    Uncertainty is combined as on one process: devices (and ranks, which run their phases
    at the same time) add linearly, a phase's spans in root-sum-square. A rank credited
    with every device it read gives its own phase uncertainty, exactly the single-process
    figure; a rank some of whose devices were counted on another rank gives the linear sum
    of its credited devices' figures (each root-sum-square over the spans: an upper bound).
    """
    by_rank = {p.rank: p for p in ranks}
    credited: dict[int, list[str]] = {p.rank: [] for p in ranks}
    for job, _, local in devices.values():
        credited[job.rank].append(local)
    energy: dict[str, list[float]] = {}
    unc: dict[str, list[float]] = {}
    for rank, locals_ in credited.items():
        p = by_rank[rank]
        own = {ph.name: ph.uncertainty_j for ph in p.measurement.phases}
        whole = sorted(locals_) == sorted(d.name for d in p.measurement.devices)
        per_phase: dict[str, list[tuple[float, float]]] = {}
        for local in locals_:
            for phase, (e, u) in p.device_phases.get(local, {}).items():
                per_phase.setdefault(phase, []).append((e, u))
        for phase, figures in per_phase.items():
            energy.setdefault(phase, []).extend(e for e, _ in figures)
            exact = own.get(phase) if whole else None
            unc.setdefault(phase, []).append(
                exact if exact is not None else linear(u for _, u in figures)
            )
    names = list(dict.fromkeys(ph.name for p in ranks for ph in p.measurement.phases))
    names.sort(key=lambda n: n == "(other)")  # stable: (other) last, as on one process
    out = []
    for phase in names:
        seen = [ph for p in ranks for ph in p.measurement.phases if ph.name == phase]
        has = phase in energy
        out.append(
            PhaseEnergy(
                name=phase,
                count=max(ph.count for ph in seen),
                duration_s=max(ph.duration_s for ph in seen),  # the longest rank's
                energy_j=math.fsum(energy[phase]) if has else None,
                uncertainty_j=linear(unc[phase]) if has else None,
            )
        )
    return tuple(out)


def _steps(ranks: list[RankPayload], dropped: set[int], notes: list[str]) -> StepEnergy:
    steps = [p.measurement.steps for p in ranks]
    if not steps or not any(s.count for s in steps):
        return StepEnergy()
    total = StepEnergy(
        count=max(s.count for s in steps),
        samples=_count_or_none([s.samples for s in steps]),
        tokens=_count_or_none([s.tokens for s in steps]),
        flops=_sum_or_none([s.flops for s in steps]),
        apart_phases=tuple(sorted({name for s in steps for name in s.apart_phases})),
    )
    count = total.count
    aligned = all(s.count == count and len(s.energy_j) == count for s in steps)
    if not aligned or dropped:
        why = "ranks counted different steps" if not aligned else "ranks shared devices"
        notes.append(f"per-step energy not summed across ranks ({why}); step totals are")
        return total
    return StepEnergy(
        count=count,
        duration_s=tuple(max(col) for col in zip(*(s.duration_s for s in steps), strict=True)),
        energy_j=tuple(math.fsum(col) for col in zip(*(s.energy_j for s in steps), strict=True)),
        uncertainty_j=tuple(
            linear(col) for col in zip(*(s.uncertainty_j for s in steps), strict=True)
        ),
        measured_count=count,
        measured_energy_j=_sum_or_none([s.measured_energy_j for s in steps]),
        measured_uncertainty_j=(
            None
            if any(s.measured_uncertainty_j is None for s in steps)
            else linear(s.measured_uncertainty_j or 0.0 for s in steps)
        ),
        samples=total.samples,
        tokens=total.tokens,
        flops=total.flops,
        apart_phases=total.apart_phases,
    )


def _window(ranks: list[RankPayload]) -> tuple[str, float]:
    """The job's start (earliest rank) and length (to the latest rank's stop)."""
    if not ranks:
        return "", 0.0
    spans = []
    for p in ranks:
        try:
            t0 = datetime.fromisoformat(p.measurement.started_at).timestamp()
        except ValueError:
            return ranks[0].measurement.started_at, max(r.measurement.duration_s for r in ranks)
        spans.append((t0, t0 + p.measurement.duration_s, p.measurement.started_at))
    first = min(spans)
    return first[2], max(b for _, b, _ in spans) - first[0]


def _notes(ranks: list[RankPayload]) -> list[str]:
    """Each distinct note once, prefixed by the ranks that gave it."""
    who: dict[str, list[int]] = {}
    for p in ranks:
        for n in p.measurement.notes:
            who.setdefault(n, []).append(p.rank)
    return [f"rank {r[0]}: {n}" if len(r) == 1 else f"ranks {r}: {n}" for n, r in who.items()]


def host_clashes(ranks: Sequence[RankPayload]) -> list[str]:
    """Messages for host identities that two local-rank-0 payloads both claim.

    Two local ranks 0 on one host mean two machines were taken for one, and the CPU and
    DRAM energy of all but one of them is dropped as a duplicate.
    """
    zeros: dict[str, list[int]] = {}
    for p in ranks:
        if p.local_rank == 0:
            zeros.setdefault(p.host, []).append(p.rank)
    return [
        f"ranks {rs} are each local rank 0 of host {host!r}: two machines share a host id,"
        " and the job counts the host-wide devices (CPU, DRAM) of one of them only; set"
        " GREENAI_HOST_ID to a distinct name on each machine"
        for host, rs in zeros.items()
        if len(rs) > 1
    ]


def _count_or_none(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _sum_or_none(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None
