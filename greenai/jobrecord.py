"""The job record: one distributed job's energy by rank, by node and by device.

Rank 0's :class:`~greenai.Measurement` carries it as ``measurement.job`` (``scope="job"``);
every other rank gets a record of itself alone (``scope="rank"``). It is part of
``Measurement.to_dict()``, so the run store keeps it with the run. It is a plain record:
:mod:`greenai.distributed` fills it in; the Measurement holds it without knowing how.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from greenai.parts import PhaseEnergy

__all__ = ["JobDevice", "JobRecord", "NodeEnergy", "RankEnergy", "SlurmInfo"]


@dataclass(frozen=True)
class SlurmInfo:
    """The SLURM job a task belongs to.

    Attributes:
        job_id: ``SLURM_JOB_ID`` (``SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID`` style ids stay
            as SLURM gives them).
        nodes: Host names of the job's nodes, expanded from ``SLURM_JOB_NODELIST``.
        tasks_per_node: Tasks on each node, in node order, from ``SLURM_TASKS_PER_NODE``.
        ntasks: ``SLURM_NTASKS``, the job step's task count, when set.
        procid, localid, nodeid: This task's global rank, rank on its node, and node index.
    """

    job_id: str
    job_name: str | None = None
    cluster: str | None = None
    step_id: str | None = None
    nodes: tuple[str, ...] = ()
    tasks_per_node: tuple[int, ...] = ()
    ntasks: int | None = None
    procid: int | None = None
    localid: int | None = None
    nodeid: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlurmInfo:
        """Rebuild from :func:`dataclasses.asdict` output."""
        kwargs = dict(data)
        kwargs["nodes"] = tuple(data.get("nodes") or ())
        kwargs["tasks_per_node"] = tuple(data.get("tasks_per_node") or ())
        return cls(**kwargs)


@dataclass(frozen=True)
class JobDevice:
    """One physical device of the job, counted once.

    Attributes:
        name: Its name in the job's Measurement: ``"{host}/{device}"``.
        device_id: GPU UUID, or ``"{kind}:{name}"`` for host-wide devices.
        rank: The rank whose reading is counted (the lowest that read it).
        duplicates: Other ranks that read the same device; their readings are not counted.
        energy_j, uncertainty_j: The counted reading (J) and its ~95% uncertainty (J).
    """

    name: str
    host: str
    device_id: str
    rank: int
    kind: str
    method: str
    energy_j: float
    uncertainty_j: float
    duplicates: tuple[int, ...] = ()


@dataclass(frozen=True)
class RankEnergy:
    """One rank's view, and what the job counts from it.

    Attributes:
        energy_j: Energy of the devices credited to this rank (J); None when it read none.
        measured_energy_j: Everything the rank read, shared devices included (J).
        devices: Job device names credited to this rank.
        phases: The rank's own phase energy (every device it read).
        steps, samples, tokens: Counted with ``job.step()`` on this rank.
        flops: Nominal FLOPs done on this rank.
    """

    rank: int
    local_rank: int
    host: str
    status: str
    started_at: str
    duration_s: float
    energy_j: float | None
    uncertainty_j: float | None
    measured_energy_j: float | None
    devices: tuple[str, ...] = ()
    phases: tuple[PhaseEnergy, ...] = ()
    steps: int = 0
    samples: int | None = None
    tokens: int | None = None
    flops: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeEnergy:
    """One host's share of the job: its unique devices and the ranks that ran there."""

    host: str
    ranks: tuple[int, ...]
    energy_j: float
    uncertainty_j: float
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobRecord:
    """A distributed job, as rank 0 assembled it (or one rank's view of itself).

    Attributes:
        scope: ``"job"`` on rank 0 (every rank that reported), ``"rank"`` on the others.
        rank: The rank holding this record.
        missing_ranks: Ranks that never reported (died, or did not stop their tracker
            before the gather deadline); their devices are not in the totals.
        gather_s: Seconds rank 0 waited for and assembled the other ranks' payloads.
        payload_bytes: Bytes of the payloads gathered (all ranks).
    """

    scope: Literal["job", "rank"]
    world_size: int
    rank: int
    ranks: tuple[RankEnergy, ...] = ()
    nodes: tuple[NodeEnergy, ...] = ()
    devices: tuple[JobDevice, ...] = ()
    missing_ranks: tuple[int, ...] = ()
    backend: str | None = None
    slurm: SlurmInfo | None = None
    gather_s: float | None = None
    payload_bytes: int | None = None

    @property
    def complete(self) -> bool:
        """Whether every rank of the job reported."""
        return not self.missing_ranks

    def rank_energy(self, rank: int) -> RankEnergy:
        """The entry of ``rank``. Raises KeyError (listing the ranks held) if it is absent."""
        for r in self.ranks:
            if r.rank == rank:
                return r
        raise KeyError(f"no rank {rank} in this record; it holds {[r.rank for r in self.ranks]}")

    def node(self, host: str) -> NodeEnergy:
        """The entry of ``host``. Raises KeyError (listing the hosts) if it is absent."""
        for n in self.nodes:
            if n.host == host:
                return n
        raise KeyError(f"no node {host!r} in this record; it has {[n.host for n in self.nodes]}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRecord:
        """Rebuild from :func:`dataclasses.asdict` output (``Measurement.to_dict()['job']``)."""
        ranks = tuple(
            RankEnergy(
                **{
                    **r,
                    "devices": tuple(r.get("devices", ())),
                    "phases": tuple(PhaseEnergy(**p) for p in r.get("phases", ())),
                    "notes": tuple(r.get("notes", ())),
                }
            )
            for r in data.get("ranks", ())
        )
        nodes = tuple(
            NodeEnergy(**{**n, "ranks": tuple(n["ranks"]), "devices": tuple(n.get("devices", ()))})
            for n in data.get("nodes", ())
        )
        devices = tuple(
            JobDevice(**{**d, "duplicates": tuple(d.get("duplicates", ()))})
            for d in data.get("devices", ())
        )
        slurm = data.get("slurm")
        return cls(
            scope=data["scope"],
            world_size=int(data["world_size"]),
            rank=int(data["rank"]),
            ranks=ranks,
            nodes=nodes,
            devices=devices,
            missing_ranks=tuple(data.get("missing_ranks", ())),
            backend=data.get("backend"),
            slurm=None if slurm is None else SlurmInfo.from_dict(slurm),
            gather_s=data.get("gather_s"),
            payload_bytes=data.get("payload_bytes"),
        )
