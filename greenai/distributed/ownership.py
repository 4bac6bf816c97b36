"""Which devices a rank measures, and how a device is told apart from another.

Rule (docs/distributed.md): with discovered devices, a rank measures the GPU it uses, the
one at index ``LOCAL_RANK`` among those it sees (the only one when it sees one; all of them
when it is the host's only rank), and local rank 0 alone measures the host-wide devices:
CPU packages, DRAM, and the CPU/memory models. Devices passed explicitly with ``devices=``
are measured as given; the job then counts any device two ranks of one host both read once
(see :mod:`greenai.distributed.aggregate`).

With ``scope="process"`` each rank measures its own share of the host-wide devices
(:mod:`greenai.devices.attribution`): every rank keeps them, and an attributed device's
identity names its process, so the ranks' shares are summed rather than counted once.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenai.devices.attribution import Attributed
from greenai.devices.base import Device
from greenai.distributed.identity import RankInfo

__all__ = ["device_id", "own_devices"]


def device_id(device: Device) -> str:
    """A device's identity on its host: the GPU UUID when known, else kind and name.

    RAPL zones are named by package (``cpu0-package``) and the models by what they model,
    so kind and name identify them on one host. A process-scope (attributed) device is one
    process's share: its identity is the wrapped device's plus ``@pid<N>``.
    """
    if isinstance(device, Attributed):  # one process's share: each rank's is its own
        return f"{device_id(device.device)}@pid{device.pid}"
    if device.uuid:
        return device.uuid
    return f"{device.kind}:{device.name}"


def own_devices(
    devices: Sequence[Device], rank: RankInfo, *, scope: str = "machine"
) -> list[Device]:
    """The subset of discovered ``devices`` that ``rank`` measures (order kept).

    With ``scope="process"`` every rank keeps the host-wide devices: each is charged its
    own share of them.
    """
    gpus = [d for d in devices if d.kind == "gpu"]
    if len(gpus) > 1 and rank.local_world_size > 1:
        mine = gpus[rank.local_rank : rank.local_rank + 1]
    else:
        mine = gpus
    host_wide = rank.local_rank == 0 or scope == "process"
    return [d for d in devices if (d in mine if d.kind == "gpu" else host_wide)]
