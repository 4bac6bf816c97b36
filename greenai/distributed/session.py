"""The tracker's hook into a distributed job: ownership at start, the gather at stop.

:func:`open_session` returns None for a single process, so a plain tracker pays nothing.
A failure here never stops the user's job: the gather degrades to this rank's own result,
with a warning and a note saying why. Warnings raised at stop wait in
:attr:`DistributedSession.pending` until the tracker has stored its record
(:meth:`DistributedSession.close`), so ``-W error`` never loses the result.

While rank 0 waits for the others it holds SIGTERM (on the main thread only): a launcher
that kills the job because a rank died (torchrun sends SIGTERM, then SIGKILL 30 s later)
gets a record of the ranks that reported, with the missing ones named; the signal is then
passed on to the handler that was there before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from greenai.devices.base import Device
from greenai.distributed.aggregate import aggregate, host_clashes, rank_view
from greenai.distributed.identity import RankInfo, is_initialized, rank_info
from greenai.distributed.ownership import device_id, own_devices
from greenai.distributed.payload import RankPayload
from greenai.distributed.transport import StoreGather, gather_timeout_s
from greenai.errors import ConfigError, MeasurementWarning
from greenai.measurement import Measurement

if TYPE_CHECKING:
    from greenai.jobview import JobView

__all__ = ["DistributedSession", "no_local_rank_message", "open_session", "rank_payload"]

log = logging.getLogger("greenai")

_warned: set[str] = set()
"""Start-time warnings already given in this process (each is given once)."""


def open_session(
    name: str, distributed: bool | None, *, devices_given: bool
) -> DistributedSession | None:
    """Join job ``name`` to the distributed job when ``distributed`` asks for it.

    ``distributed``: None joins when a process group is up, True requires one, False never
    joins. ``devices_given``: the tracker was given its devices (else each rank should find
    its own: a warning says how when LOCAL_RANK is missing). The tracker then drops its run
    store on ranks other than 0 (rank 0 records the job), and on rank 0 adds
    :meth:`DistributedSession.meta` to the run's ``meta``.

    Raises:
        ConfigError: ``distributed=True`` without an initialised process group.
    """
    option = distributed
    if option is False:
        return None
    if not is_initialized():
        if option:
            raise ConfigError(
                "distributed=True needs a torch.distributed process group: call "
                "torch.distributed.init_process_group() before the tracker starts "
                "(torchrun or SLURM sets the variables it reads)"
            )
        _warn_once(_no_group_message(os.environ))
        return None
    dist = sys.modules["torch.distributed"]
    info = rank_info(dist=dist)
    if not devices_given:
        _warn_once(no_local_rank_message(os.environ, info))
    try:
        store = dist.distributed_c10d._get_default_store()
        gather = StoreGather(store, info.rank, info.world_size, timeout_s=gather_timeout_s())
        gather.begin(name)
    except ConfigError:
        raise
    except Exception as exc:  # no store reachable: measure this rank alone
        message = f"cannot reach the process group's store ({exc}); rank {info.rank} measured alone"
        warnings.warn(message, MeasurementWarning, stacklevel=3)
        return None
    return DistributedSession(info, gather)


class DistributedSession:
    """One rank's part in one tracked distributed job.

    Args:
        info: This rank's identity.
        gather: The store-based gather of this job (see :mod:`greenai.distributed.transport`).
    """

    def __init__(self, info: RankInfo, gather: StoreGather) -> None:
        self.info = info
        self.gather = gather
        self.pending: list[str] = []
        """Warnings of :meth:`finish`, given by :meth:`close` once the record is stored."""
        self.signalled = False
        """Whether rank 0 got SIGTERM while waiting (passed on by :meth:`close`)."""

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

    def own(self, devices: Sequence[Device], *, scope: str = "machine") -> list[Device]:
        """The discovered devices this rank measures (see :mod:`~greenai.distributed.ownership`)."""
        return own_devices(devices, self.info, scope=scope)

    def finish(self, tracker: JobView, result: Measurement) -> Measurement:
        """Send this rank's result to rank 0, or (on rank 0) gather and assemble the job.

        Never warns: messages go to :attr:`pending` (see :meth:`close`).
        """
        try:
            job = self.gather.job or ""
            payload = rank_payload(tracker, result, self.info, job=job)
            if self.info.rank != 0:
                self.gather.send(payload.to_bytes())
                return dataclasses.replace(result, job=rank_view(payload))
            t0 = time.perf_counter()
            with self._sigterm_ends_wait():
                received, missing = self.gather.collect()
            payloads, notes = [payload], []
            for rank, raw in received.items():
                try:
                    other = RankPayload.from_bytes(raw)
                except (ValueError, KeyError, TypeError) as exc:
                    notes.append(f"rank {rank} sent an unreadable payload ({exc}): not counted")
                    continue
                if other.job != job or other.rank != rank:
                    notes.append(
                        f"rank {rank}'s payload is of job {other.job!r} (rank {other.rank}), not"
                        f" {job!r}: not counted; the ranks started trackers of this name in"
                        " different numbers (track on some ranks only with distributed=False)"
                    )
                    continue
                payloads.append(other)
            if missing:
                why = (
                    "rank 0 got SIGTERM while waiting for them"
                    if self.signalled
                    else f"they did not report within {self.gather.timeout_s:g} s"
                    " ($GREENAI_GATHER_TIMEOUT_S)"
                )
                notes.append(
                    f"rank(s) {list(missing)}: {why}; the job record lacks them (to track on"
                    " some ranks only, pass distributed=False there)"
                )
            size = len(payload.to_bytes()) + sum(len(raw) for raw in received.values())
            out = aggregate(
                payloads,
                world_size=self.info.world_size,
                name=tracker.name,
                accounting=tracker.accounting,
                gather_s=time.perf_counter() - t0,
                payload_bytes=size,
            )
            self.pending += [*notes, *host_clashes(payloads)]
            return dataclasses.replace(out, notes=(*out.notes, *notes))
        except Exception as exc:  # the gather must never cost the user their result
            message = f"distributed gather failed on rank {self.info.rank}: {exc}"
            self.pending.append(message)
            return dataclasses.replace(result, notes=(*result.notes, message))

    def close(self) -> None:
        """Once the record is stored: give the pending warnings, then pass on a held SIGTERM."""
        pending, self.pending = self.pending, []
        try:
            for message in pending:
                warnings.warn(message, MeasurementWarning, stacklevel=3)
        finally:
            if self.signalled:
                self.signalled = False
                signal.raise_signal(signal.SIGTERM)

    @contextlib.contextmanager
    def _sigterm_ends_wait(self) -> Iterator[None]:
        """Hold SIGTERM while rank 0 waits (main thread only); restore the old handler after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def held(signum: int, frame: object) -> None:
            self.signalled = True

        try:
            previous = signal.signal(signal.SIGTERM, held)
        except (ValueError, OSError):  # no signals here (embedded interpreter)
            yield
            return
        self.gather.stop_waiting = lambda: self.signalled
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _warn_once(message: str | None) -> None:
    if message and message not in _warned:
        _warned.add(message)
        warnings.warn(message, MeasurementWarning, stacklevel=4)


def _no_group_message(env: Mapping[str, str]) -> str | None:
    """Why a launched job gets no job record: WORLD_SIZE > 1 but no process group (or None)."""
    try:
        world = int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        return None
    if world <= 1:
        return None
    return (
        f"WORLD_SIZE={world} but no torch.distributed process group is initialised: each rank"
        " is measured alone and no job record is made; call"
        " torch.distributed.init_process_group() before the tracker starts, or pass"
        " distributed=False to measure each rank on its own"
    )


def no_local_rank_message(env: Mapping[str, str], info: RankInfo) -> str | None:
    """Why ranks cannot tell which devices are theirs, or None when they can.

    A rank finds its own devices by its local rank: ``LOCAL_RANK`` (torchrun),
    ``SLURM_LOCALID``, or its rank modulo the ranks per host where ``LOCAL_WORLD_SIZE`` or
    the process group tells it. ``mp.spawn`` sets none of these; then every rank measures
    every discovered device, which :func:`open_session` warns about once with this text.

    Args:
        env: The environment to read (``os.environ``).
        info: This rank's identity.
    """
    if info.world_size <= 1 or "LOCAL_RANK" in env or "SLURM_LOCALID" in env:
        return None
    if "LOCAL_WORLD_SIZE" in env or info.local_world_size > 1:  # rank % it stands in
        return None
    return (
        "LOCAL_RANK is not set and the ranks per host are unknown (mp.spawn?): every rank"
        " measures every discovered device (the job still counts each once); set LOCAL_RANK"
        " and LOCAL_WORLD_SIZE in each process"
    )


def rank_payload(
    tracker: JobView, result: Measurement, info: RankInfo, job: str = ""
) -> RankPayload:
    """The payload of a stopped tracker: its result, device identities, per-device phases.

    Every device's phase energy is sent, all of it as ``(other)`` when the rank opened no
    phase, so the job's phases plus ``(other)`` always add up to the job's energy.
    """
    from greenai.ledger import OTHER_PHASE

    ids = {d.name: device_id(d) for d in tracker.devices}
    phases: dict[str, dict[str, list[float]]] = {}
    for name, by_phase in tracker.device_phases().items():
        if result.phases:
            phases[name] = {p: [e, u] for p, (e, u) in by_phase.items()}
        else:
            e, u = by_phase.get(OTHER_PHASE, (0.0, 0.0))
            phases[name] = {OTHER_PHASE: [e, u]}
    for d in result.devices:  # a device whose windows all came out empty still counts
        if d.name not in phases:
            phases[d.name] = {OTHER_PHASE: [d.energy_j, d.uncertainty_j]}
    return RankPayload.build(info, result, ids, phases, job=job)
