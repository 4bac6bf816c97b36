"""The tracker's hook into a distributed job: ownership at start, the gather at stop.

:func:`open_session` returns None for a single process, so a plain tracker pays nothing.
A failure here never stops the user's job: the gather degrades to this rank's own result,
with a warning and a note saying why.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from greenai.devices.base import Device
from greenai.distributed.aggregate import aggregate, rank_view
from greenai.distributed.identity import RankInfo, is_initialized, rank_info
from greenai.distributed.ownership import device_id, own_devices
from greenai.distributed.payload import RankPayload
from greenai.distributed.transport import StoreGather, gather_timeout_s
from greenai.errors import ConfigError, MeasurementWarning
from greenai.measurement import Measurement

if TYPE_CHECKING:
    from greenai.tracker import Tracker

__all__ = ["DistributedSession", "open_session", "rank_payload"]

log = logging.getLogger("greenai")


def open_session(tracker: Tracker) -> DistributedSession | None:
    """Join the tracker to the job when ``distributed`` asks for it (None: if one is up).

    On ranks other than 0 the tracker's run store is dropped (rank 0 records the job), and
    on rank 0 the job's size, backend and SLURM facts join the run's ``meta``.

    Raises:
        ConfigError: ``distributed=True`` without an initialised process group.
    """
    option = tracker._options.get("distributed")
    if option is False:
        return None
    if not is_initialized():
        if option:
            raise ConfigError(
                "distributed=True needs a torch.distributed process group: call "
                "torch.distributed.init_process_group() before the tracker starts "
                "(torchrun or SLURM sets the variables it reads)"
            )
        return None
    dist = sys.modules["torch.distributed"]
    info = rank_info(dist=dist)
    try:
        store = dist.distributed_c10d._get_default_store()
        gather = StoreGather(store, info.rank, info.world_size, timeout_s=gather_timeout_s())
        gather.begin()
    except ConfigError:
        raise
    except Exception as exc:  # no store reachable: measure this rank alone
        message = f"cannot reach the process group's store ({exc}); rank {info.rank} measured alone"
        warnings.warn(message, MeasurementWarning, stacklevel=3)
        return None
    session = DistributedSession(info, gather)
    if info.rank != 0:
        tracker._store = None
    else:
        tracker._options["meta"] = {**(tracker._options["meta"] or {}), **session.meta()}
    return session


class DistributedSession:
    """One rank's part in one tracked distributed job.

    Args:
        info: This rank's identity.
        gather: The store-based gather of this job (see :mod:`greenai.distributed.transport`).
    """

    def __init__(self, info: RankInfo, gather: StoreGather) -> None:
        self.info = info
        self.gather = gather

    def meta(self) -> dict[str, Any]:
        """Facts recorded with rank 0's run: world size, backend, SLURM job."""
        slurm = self.info.slurm
        return {
            "distributed": {
                "world_size": self.info.world_size,
                "backend": self.info.backend,
                "host": self.info.host,
                "slurm": None if slurm is None else dataclasses.asdict(slurm),
            }
        }

    def own(self, devices: Sequence[Device]) -> list[Device]:
        """The discovered devices this rank measures (see :mod:`~greenai.distributed.ownership`)."""
        return own_devices(devices, self.info)

    def finish(self, tracker: Tracker, result: Measurement) -> Measurement:
        """Send this rank's result to rank 0, or (on rank 0) gather and assemble the job."""
        try:
            payload = rank_payload(tracker, result, self.info)
            if self.info.rank != 0:
                self.gather.send(payload.to_bytes())
                return dataclasses.replace(result, job=rank_view(payload))
            t0 = time.perf_counter()
            received, missing = self.gather.collect()
            payloads = [payload]
            for rank, raw in received.items():
                try:
                    payloads.append(RankPayload.from_bytes(raw))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("greenai: rank %d sent an unreadable payload: %s", rank, exc)
            if missing:
                message = (
                    f"rank(s) {list(missing)} did not report within {self.gather.timeout_s:g} s"
                    f" ($GREENAI_GATHER_TIMEOUT_S); the job record lacks them (to track on"
                    " some ranks only, pass distributed=False there)"
                )
                warnings.warn(message, MeasurementWarning, stacklevel=3)
            size = len(payload.to_bytes()) + sum(len(raw) for raw in received.values())
            return aggregate(
                payloads,
                world_size=self.info.world_size,
                name=tracker.name,
                accounting=tracker._accounting,
                gather_s=time.perf_counter() - t0,
                payload_bytes=size,
            )
        except Exception as exc:  # the gather must never cost the user their result
            message = f"distributed gather failed on rank {self.info.rank}: {exc}"
            warnings.warn(message, MeasurementWarning, stacklevel=3)
            return dataclasses.replace(result, notes=(*result.notes, message))


def rank_payload(tracker: Tracker, result: Measurement, info: RankInfo) -> RankPayload:
    """The payload of a stopped tracker: its result, device identities, per-device phases."""
    sampler, timeline = tracker._sampler, tracker._timeline
    ids = {} if sampler is None else {d.name: device_id(d) for d in sampler.devices}
    phases: dict[str, dict[str, list[float]]] = {}
    if timeline is not None and result.phases:
        t0 = tracker._t0
        t1 = t0 + result.duration_s
        for name, curve in timeline.curves().items():
            phases[name] = {
                p.name: [p.energy_j or 0.0, p.uncertainty_j or 0.0]
                for p in tracker._phase_energy([curve], t0, t1)
            }
    return RankPayload.build(info, result, ids, phases)
