"""What each rank sends to rank 0: its Measurement, device identities, per-device phases.

Payloads travel as compact JSON (no pickle: rank 0 never runs code another process sent).
Per-step arrays longer than :func:`max_payload_steps` are left out to keep a long job's
gather small; the job then reports step totals without per-step energy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from greenai.distributed.identity import RankInfo
from greenai.distributed.slurm import SlurmInfo
from greenai.measurement import Measurement, StepEnergy

__all__ = ["JOB_PAYLOAD_STEPS", "MAX_PAYLOAD_STEPS", "RankPayload", "max_payload_steps"]

MAX_PAYLOAD_STEPS = 10_000
"""Per-step arrays up to this many steps travel with a payload (jobs of up to 8 ranks)."""

JOB_PAYLOAD_STEPS = 80_000
"""Per-step values rank 0 receives at most, all ranks together (about 2 MB of JSON)."""


def max_payload_steps(world_size: int) -> int:
    """Steps whose per-step arrays a rank sends: :data:`MAX_PAYLOAD_STEPS`, less in big jobs.

    Rank 0 receives ``world_size`` payloads, so the per-rank limit shrinks as
    ``JOB_PAYLOAD_STEPS / world_size`` (never below 100) to keep the gather's size bounded.
    """
    return max(100, min(MAX_PAYLOAD_STEPS, JOB_PAYLOAD_STEPS // max(world_size, 1)))


@dataclass(frozen=True)
class RankPayload:
    """One rank's result as sent to rank 0.

    Attributes:
        measurement: The rank's own Measurement (every device it read).
        device_ids: Device name → identity on its host (:func:`~greenai.distributed.device_id`).
        device_phases: Device name → phase name → ``[energy_j, uncertainty_j]``, so rank 0
            can count a shared device's phases once.
        job: The job key the rank sent it under (tracker name and per-name number), which
            rank 0 checks against its own.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    host: str
    measurement: Measurement
    device_ids: dict[str, str] = field(default_factory=dict)
    device_phases: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    backend: str | None = None
    slurm: SlurmInfo | None = None
    job: str = ""

    @classmethod
    def build(
        cls,
        info: RankInfo,
        measurement: Measurement,
        device_ids: Mapping[str, str],
        device_phases: Mapping[str, Mapping[str, list[float]]] | None = None,
        job: str = "",
    ) -> RankPayload:
        """A payload for this rank (per-step arrays dropped beyond :func:`max_payload_steps`)."""
        if measurement.steps.count > max_payload_steps(info.world_size):
            s = measurement.steps
            measurement = dataclasses.replace(
                measurement,
                steps=StepEnergy(
                    count=s.count,
                    samples=s.samples,
                    tokens=s.tokens,
                    flops=s.flops,
                    apart_phases=s.apart_phases,
                ),
            )
        return cls(
            rank=info.rank,
            world_size=info.world_size,
            local_rank=info.local_rank,
            local_world_size=info.local_world_size,
            host=info.host,
            measurement=measurement,
            device_ids=dict(device_ids),
            device_phases={d: dict(p) for d, p in (device_phases or {}).items()},
            backend=info.backend,
            slurm=info.slurm,
            job=job,
        )

    def to_bytes(self) -> bytes:
        """Compact JSON (UTF-8)."""
        data: dict[str, Any] = {
            "rank": self.rank,
            "job": self.job,
            "world_size": self.world_size,
            "local_rank": self.local_rank,
            "local_world_size": self.local_world_size,
            "host": self.host,
            "backend": self.backend,
            "slurm": None if self.slurm is None else dataclasses.asdict(self.slurm),
            "device_ids": self.device_ids,
            "device_phases": self.device_phases,
            "measurement": _lean(self.measurement),
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> RankPayload:
        """Rebuild from :meth:`to_bytes` output."""
        data = json.loads(raw)
        slurm = data.get("slurm")
        return cls(
            rank=int(data["rank"]),
            world_size=int(data["world_size"]),
            local_rank=int(data["local_rank"]),
            local_world_size=int(data["local_world_size"]),
            host=str(data["host"]),
            measurement=Measurement.from_dict(data["measurement"]),
            device_ids=dict(data.get("device_ids", {})),
            device_phases=dict(data.get("device_phases", {})),
            backend=data.get("backend"),
            slurm=None if slurm is None else SlurmInfo.from_dict(slurm),
            job=str(data.get("job", "")),
        )


def _lean(m: Measurement) -> dict[str, Any]:
    """The Measurement's fields without derived values (rank 0 derives them again)."""
    data = dataclasses.asdict(dataclasses.replace(m, job=None))
    data.pop("job")
    return data
