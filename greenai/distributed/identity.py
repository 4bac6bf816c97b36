"""Who this process is in a distributed job: rank, local rank, and which host it runs on.

The host identity decides which readings are of the same hardware: two ranks with the same
host id that read the same GPU (by UUID) or the same CPU package read one device, and the
job counts it once. It is the host name plus the first 8 characters of the kernel's boot id
(``/proc/sys/kernel/random/boot_id``), so two machines that share a host name (containers)
stay apart. ``GREENAI_HOST_ID`` overrides it, for containers that share a machine under
different host names (set it to the machine's name) and for tests.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenai.distributed.slurm import SlurmInfo, slurm_info

__all__ = ["HOST_ID_ENV", "RankInfo", "host_id", "is_initialized", "rank_info"]

HOST_ID_ENV = "GREENAI_HOST_ID"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job.

    Attributes:
        rank: Global rank (``torch.distributed.get_rank()``).
        world_size: Number of ranks in the job.
        local_rank: Rank on this host (``LOCAL_RANK``, else ``SLURM_LOCALID``, else rank
            modulo ``local_world_size`` when that is known, else 0).
        local_world_size: Ranks on this host (``LOCAL_WORLD_SIZE``, else SLURM's tasks on
            this node, else 1).
        host: The host identity (see :func:`host_id`).
        backend: The process group's backend (``gloo``, ``nccl``), None when not initialised.
        slurm: The SLURM job, None outside SLURM.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    host: str
    backend: str | None = None
    slurm: SlurmInfo | None = None


def host_id(environ: Mapping[str, str] | None = None, *, boot_id_path: str = BOOT_ID_PATH) -> str:
    """``$GREENAI_HOST_ID`` when set, else ``hostname@bootid8``.

    The host name alone when the boot id cannot be read.

    Args:
        environ: The environment (``os.environ`` by default).
        boot_id_path: Where the kernel's boot id is read (injectable for tests).
    """
    env = os.environ if environ is None else environ
    forced = env.get(HOST_ID_ENV)
    if forced:
        return forced
    name = socket.gethostname()
    try:
        with open(boot_id_path, encoding="ascii") as f:
            boot = f.read().strip().replace("-", "")[:8]
    except (OSError, ValueError):
        boot = ""
    return f"{name}@{boot}" if boot else name


def is_initialized() -> bool:
    """Whether a torch.distributed process group is up (never imports torch)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return False
    try:
        return bool(dist.is_available() and dist.is_initialized())
    except Exception:  # a broken torch build must not stop the job
        return False


def rank_info(environ: Mapping[str, str] | None = None, dist: Any = None) -> RankInfo:
    """Describe this process from the process group (when up) and the launcher's variables.

    Args:
        environ: The environment (``os.environ`` by default): torchrun's ``RANK``,
            ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``WORLD_SIZE``, or SLURM's.
        dist: ``torch.distributed`` or a stand-in; by default the module when a process
            group is initialised, else the environment alone is read.
    """
    env = os.environ if environ is None else environ
    slurm = slurm_info(env)
    if dist is None and is_initialized():
        dist = sys.modules["torch.distributed"]
    backend = None
    if dist is not None:
        rank, world = int(dist.get_rank()), int(dist.get_world_size())
        backend = str(dist.get_backend())
    else:
        rank = _int(env, "RANK", "SLURM_PROCID", default=0)
        world = _int(env, "WORLD_SIZE", "SLURM_NTASKS", default=1)
    local_world = _int(env, "LOCAL_WORLD_SIZE", default=0)
    if not local_world and slurm is not None and slurm.tasks_per_node:
        node = slurm.nodeid if slurm.nodeid is not None else 0
        if 0 <= node < len(slurm.tasks_per_node):
            local_world = slurm.tasks_per_node[node]
    # No LOCAL_RANK (mp.spawn): ranks fill hosts in order, so rank % ranks-per-host.
    fallback = rank % local_world if local_world else 0
    local_rank = _int(env, "LOCAL_RANK", "SLURM_LOCALID", default=fallback)
    return RankInfo(
        rank=rank,
        world_size=world,
        local_rank=local_rank,
        local_world_size=local_world or 1,
        host=host_id(env),
        backend=backend,
        slurm=slurm,
    )


def _int(env: Mapping[str, str], *names: str, default: int) -> int:
    for name in names:
        try:
            return int(env[name])
        except (KeyError, ValueError):
            continue
    return default
