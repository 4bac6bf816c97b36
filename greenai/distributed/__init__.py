"""Distributed jobs: each rank measures what it owns; rank 0 gets one job record.

With a torch.distributed process group up (torchrun, SLURM), ``greenai.track`` measures on
every rank the devices that rank owns, sends each rank's result to rank 0 at ``stop()``
through the process group's store (with a deadline, so a dead rank cannot hang the job),
counts every physical device once, and gives rank 0 a Measurement of the whole job with
per-rank, per-node and per-device detail in ``result.job``. See docs/distributed.md.
"""

from greenai.distributed.aggregate import aggregate, rank_view
from greenai.distributed.identity import HOST_ID_ENV, RankInfo, host_id, rank_info
from greenai.distributed.ownership import device_id, own_devices
from greenai.distributed.payload import RankPayload
from greenai.distributed.record import JobDevice, JobRecord, NodeEnergy, RankEnergy
from greenai.distributed.slurm import SlurmInfo, slurm_info
from greenai.distributed.transport import GATHER_TIMEOUT_ENV, StoreGather

__all__ = [
    "GATHER_TIMEOUT_ENV",
    "HOST_ID_ENV",
    "JobDevice",
    "JobRecord",
    "NodeEnergy",
    "RankEnergy",
    "RankInfo",
    "RankPayload",
    "SlurmInfo",
    "StoreGather",
    "aggregate",
    "device_id",
    "host_id",
    "own_devices",
    "rank_info",
    "rank_view",
    "slurm_info",
]
