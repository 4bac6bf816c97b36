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
from collections.abc import Callable, Iterable
from pathlib import Path

from greenai.devices.cgroup import DEFAULT_CGROUP_ROOT, cgroup_cpu_usage_s

__all__ = [
    "CGROUP_NS_INIT_INO",
    "PROC_PID_INIT_INO",
    "container_cpu_seconds",
    "gpu_holders",
    "in_pid_namespace",
]

PROC_PID_INIT_INO = 0xEFFFFFFC
"""The inode of the initial PID namespace (include/linux/proc_ns.h)."""

CGROUP_NS_INIT_INO = 0xEFFFFFFB
"""The inode of the initial cgroup namespace (include/linux/proc_ns.h)."""


_CONTAINER_CGROUPS = ("kubepods", "docker", "cri-containerd", "crio-", "libpod", "lxc")
"""Parts of the cgroup paths that container runtimes make for a container."""


def _own_namespace(kind: str, initial: int, procfs_path: str) -> bool:
    try:
        link = os.readlink(os.path.join(procfs_path, "self", "ns", kind))
    except OSError:
        return False
    try:
        inode = int(link.rsplit("[", 1)[1].rstrip("]"))
    except (IndexError, ValueError):
        return False
    return inode != initial


def in_pid_namespace(procfs_path: str = "/proc") -> bool:
    """Whether this process runs in a PID namespace other than the host's.

    False where it cannot tell (no ``/proc/self/ns/pid``: not Linux, or a restricted procfs),
    so NVML's process ids are then used as they are.
    """
    return _own_namespace("pid", PROC_PID_INIT_INO, procfs_path)


def container_cpu_seconds(
    pid: int,
    *,
    procfs_path: str = "/proc",
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
) -> Callable[[], float] | None:
    """The container's CPU seconds from its cgroup v2, when the tree at ``pid`` is the container.

    The tree rooted at ``pid`` is the whole container when ``pid`` is 1 in a PID namespace of
    its own (``greenai run`` as the container's entrypoint). Its cgroup's ``cpu.stat``
    (``usage_usec``) then counts every process the container ran, those that left the
    process tree (a daemon that double-forked) included, which a walk of the tree misses.
    The cgroup is the mount's root inside a cgroup namespace of its own (the kernel shows a
    container its cgroup as ``/``), else the path in ``/proc/<pid>/cgroup`` where it is a
    container runtime's (Kubernetes' ``kubepods``, Docker's, containerd's, CRI-O's,
    Podman's); never the root (the whole machine) nor a shared one (``unshare --pid`` in a
    login session's cgroup).

    Returns:
        A function returning the cgroup's CPU seconds so far, or None where the tree is not
        a whole container, the cgroup is not v2, or ``cpu.stat`` cannot be read.
    """
    if pid != 1 or not in_pid_namespace(procfs_path):
        return None
    root = Path(cgroup_root)
    if not (root / "cgroup.controllers").is_file():
        return None  # cgroup v1 or none: the tree's own times are used
    if _own_namespace("cgroup", CGROUP_NS_INIT_INO, procfs_path):
        folder = root
    else:
        try:
            text = Path(procfs_path, str(pid), "cgroup").read_text(encoding="utf-8")
        except OSError:
            return None
        path = next((ln[3:] for ln in text.splitlines() if ln.startswith("0::")), "/")
        parts = [p for p in path.strip().strip("/").split("/") if p]
        if not any(marker in path for marker in _CONTAINER_CGROUPS):
            return None  # the root (the machine) or a shared one (a login session)
        folder = root.joinpath(*parts)
    stat = folder / "cpu.stat"
    if cgroup_cpu_usage_s(stat) is None:
        return None

    def seconds() -> float:
        used = cgroup_cpu_usage_s(stat)
        if used is None:
            raise OSError(f"cannot read {stat}")
        return used

    return seconds


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
