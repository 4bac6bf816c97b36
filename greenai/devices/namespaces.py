"""Containers: whether this process has its own PID namespace, and who in it holds a GPU.

NVML reports the processes on a GPU by their ids in the host's PID namespace. Inside a
container with its own PID namespace (Docker, Kubernetes, ``unshare --pid``) those ids mean
nothing: the host's pid 4242 is not this namespace's 4242, and a coincidental match would
charge the wrong process. The kernel gives a namespace no way to learn its processes' host
ids (``/proc/<pid>/status`` ``NSpid`` lists only the namespaces the procfs mount sees), so
process scope there cannot use NVML's per-process figures and charges an estimate instead
(:class:`greenai.devices.attribution.GpuProcessShare`): the tree's processes that hold the
GPU's device file open, over the processes NVML counts on it.

The initial PID namespace has a fixed inode, ``PROC_PID_INIT_INO`` = 0xEFFFFFFC
(include/linux/proc_ns.h): ``/proc/self/ns/pid`` shows ``pid:[4026531836]`` there and
another number inside any other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["PROC_PID_INIT_INO", "gpu_holders", "in_pid_namespace"]

PROC_PID_INIT_INO = 0xEFFFFFFC
"""The inode of the initial PID namespace (include/linux/proc_ns.h)."""


def in_pid_namespace(procfs_path: str = "/proc") -> bool:
    """Whether this process runs in a PID namespace other than the host's.

    False where it cannot tell (no ``/proc/self/ns/pid``: not Linux, or a restricted procfs),
    so NVML's process ids are then used as they are.
    """
    try:
        link = os.readlink(os.path.join(procfs_path, "self", "ns", "pid"))
    except OSError:
        return False
    try:
        inode = int(link.rsplit("[", 1)[1].rstrip("]"))
    except (IndexError, ValueError):
        return False
    return inode != PROC_PID_INIT_INO


def gpu_holders(pids: Iterable[int], minor: int | None, procfs_path: str = "/proc") -> int:
    """How many of ``pids`` hold the GPU's device file (``/dev/nvidia<minor>``) open.

    A process with a CUDA context on a GPU keeps its device file open. With ``minor`` None
    (unknown), any ``/dev/nvidia<N>`` counts. Processes whose descriptors cannot be read
    (gone, another user's) are not counted.
    """
    wanted = None if minor is None else f"/dev/nvidia{minor}"
    count = 0
    for pid in pids:
        fd_dir = os.path.join(procfs_path, str(pid), "fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target == wanted or (
                wanted is None and target.startswith("/dev/nvidia") and target[11:].isdigit()
            ):
                count += 1
                break
    return count
