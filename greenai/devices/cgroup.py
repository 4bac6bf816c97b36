"""What share of the machine this process may use: CPU affinity and cgroup CPU/memory limits.

The CPU and memory models scale the machine's figures down to this share, so a job in a
2-CPU container on a 64-core host is not charged the whole socket. Both cgroup versions
are read: v2 (``cpu.max``, ``memory.max``) and v1 (``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``, ``memory.limit_in_bytes``). The cgroup mount and procfs are
parameters, like psutil's ``PROCFS_PATH``, so tests build fake trees.

The effective limit is the smallest along the cgroup's ancestors (the kernel applies each
level's limit to everything below it), so every level from the process's cgroup up to the
mount's root is read.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_CGROUP_ROOT",
    "CpuAllowance",
    "MemoryAllowance",
    "cgroup_cpu_usage_s",
    "cgroup_memory_used_bytes",
    "cpu_allowance",
    "memory_allowance",
]

DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"

# cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value.
_V1_NO_MEMORY_LIMIT = 2**62


@dataclass(frozen=True)
class CpuAllowance:
    """The CPUs a process may use.

    Attributes:
        usable_cpus: CPUs' worth of time the process may use: the smaller of its affinity
            set's size and its cgroup quota (which can be fractional, e.g. 1.5).
        affinity: The CPU ids the process may run on.
        quota_cpus: The cgroup CPU quota in CPUs, or None when there is none.
        usage_file: The cgroup file counting the cgroup's CPU time (``cpu.stat`` in v2,
            ``cpuacct.usage`` in v1), read where a quota applies; None otherwise.
        source: One line saying where the figure came from.
    """

    usable_cpus: float
    affinity: tuple[int, ...]
    quota_cpus: float | None = None
    usage_file: Path | None = None
    source: str = ""


@dataclass(frozen=True)
class MemoryAllowance:
    """The memory limit a process runs under.

    Attributes:
        limit_bytes: The cgroup memory limit in bytes, or None when there is none.
        usage_dir: The cgroup directory whose usage is read under that limit, or None.
        version: 1 or 2 (the cgroup version), 0 when no limit applies.
    """

    limit_bytes: int | None = None
    usage_dir: Path | None = None
    version: int = 0


def _read(path: Path) -> str | None:
    """Read one cgroup file; None when it is absent or unreadable. The module's only I/O seam."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _membership(pid: int, procfs_path: str | os.PathLike[str]) -> dict[str, str]:
    """Map each controller (``""`` for cgroup v2) to the process's cgroup path."""
    text = _read(Path(procfs_path, str(pid) if pid else "self", "cgroup")) or ""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hierarchy, controllers, path = parts
        if not controllers:
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _levels(mount: Path, cgroup_path: str) -> list[Path]:
    """The cgroup's directory under ``mount`` and each ancestor up to the mount's root.

    Inside a container the mount's root often *is* the process's cgroup while
    /proc/self/cgroup still names the host path: levels that do not exist are skipped, and
    the root is always included.
    """
    parts = [p for p in cgroup_path.strip("/").split("/") if p]
    levels = [mount.joinpath(*parts[:n]) for n in range(len(parts), 0, -1)]
    return [d for d in levels if d.is_dir()] + [mount]


def _v1_mount(root: Path, controller: str) -> Path | None:
    for name in (controller, f"{controller},cpuacct", f"cpu,{controller}", "cpu,cpuacct"):
        if (root / name).is_dir():
            return root / name
    return None


def _is_v2(root: Path) -> bool:
    return (root / "cgroup.controllers").is_file()


def _v2_quota_cpus(levels: list[Path]) -> float | None:
    quotas = []
    for level in levels:
        fields = (_read(level / "cpu.max") or "").split()
        if len(fields) == 2 and fields[0] != "max":
            try:
                quotas.append(int(fields[0]) / int(fields[1]))
            except (ValueError, ZeroDivisionError):
                continue
    return min(quotas) if quotas else None


def _v1_quota_cpus(levels: list[Path]) -> float | None:
    quotas = []
    for level in levels:
        try:
            quota = int(_read(level / "cpu.cfs_quota_us") or "-1")
            period = int(_read(level / "cpu.cfs_period_us") or "0")
        except ValueError:
            continue
        if quota > 0 and period > 0:  # -1 means no quota
            quotas.append(quota / period)
    return min(quotas) if quotas else None


def _affinity(pid: int) -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(pid)))
    except (AttributeError, OSError):  # not Linux, or the process is gone
        return tuple(range(os.cpu_count() or 1))


def cpu_allowance(
    pid: int = 0,
    *,
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    procfs_path: str | os.PathLike[str] = "/proc",
    affinity: tuple[int, ...] | None = None,
) -> CpuAllowance:
    """Find how many CPUs' worth of time a process may use.

    Args:
        pid: The process; 0 for this one.
        cgroup_root: Where the cgroup filesystem is mounted.
        procfs_path: Where procfs is mounted.
        affinity: The CPU ids the process may run on; ``os.sched_getaffinity(pid)`` when
            None.

    Returns:
        The allowance. Never raises: a missing or unreadable cgroup tree means no quota.
    """
    root = Path(cgroup_root)
    cpus = tuple(sorted(affinity)) if affinity is not None else _affinity(pid)
    membership = _membership(pid, procfs_path)
    quota: float | None = None
    usage: Path | None = None
    version = 0
    if _is_v2(root) and "" in membership:
        levels = _levels(root, membership[""])
        quota, version = _v2_quota_cpus(levels), 2
        usage = levels[0] / "cpu.stat"
    else:
        mount = _v1_mount(root, "cpu")
        if mount is not None:
            levels = _levels(mount, membership.get("cpu", "/"))
            quota, version = _v1_quota_cpus(levels), 1
            acct = _v1_mount(root, "cpuacct")
            if acct is not None:
                usage = _levels(acct, membership.get("cpuacct", "/"))[0] / "cpuacct.usage"
    usable = float(len(cpus))
    source = f"affinity: {len(cpus)} CPU(s)"
    if quota is not None and quota < usable:
        usable = quota
        source = f"cgroup v{version} CPU quota: {quota:g} CPU(s) (affinity: {len(cpus)})"
    return CpuAllowance(
        usable_cpus=usable,
        affinity=cpus,
        quota_cpus=quota,
        usage_file=usage if quota is not None else None,
        source=source,
    )


def cgroup_cpu_usage_s(usage_file: Path) -> float | None:
    """CPU time the cgroup has used, in seconds; None when it cannot be read.

    Args:
        usage_file: ``cpu.stat`` (cgroup v2, ``usage_usec``) or ``cpuacct.usage`` (v1, ns).
    """
    text = _read(usage_file)
    if text is None:
        return None
    try:
        if usage_file.name == "cpu.stat":
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) * 1e-6
            return None
        return int(text) * 1e-9
    except ValueError:
        return None


def memory_allowance(
    pid: int = 0,
    *,
    cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    procfs_path: str | os.PathLike[str] = "/proc",
) -> MemoryAllowance:
    """Find the cgroup memory limit a process runs under (the smallest along its ancestors).

    Returns:
        The allowance; ``limit_bytes`` None when no limit applies. Never raises.
    """
    root = Path(cgroup_root)
    membership = _membership(pid, procfs_path)
    best: tuple[int, Path, int] | None = None
    if _is_v2(root) and "" in membership:
        levels, file, version = _levels(root, membership[""]), "memory.max", 2
    else:
        mount = _v1_mount(root, "memory")
        if mount is None:
            return MemoryAllowance()
        levels = _levels(mount, membership.get("memory", "/"))
        file, version = "memory.limit_in_bytes", 1
    for level in levels:
        text = _read(level / file)
        if text is None or text == "max":
            continue
        try:
            limit = int(text)
        except ValueError:
            continue
        if version == 1 and limit >= _V1_NO_MEMORY_LIMIT:
            continue
        if best is None or limit < best[0]:
            best = (limit, levels[0], version)
    if best is None:
        return MemoryAllowance()
    return MemoryAllowance(limit_bytes=best[0], usage_dir=best[1], version=best[2])


def cgroup_memory_used_bytes(allowance: MemoryAllowance) -> float | None:
    """Memory the cgroup uses, in bytes, less reclaimable inactive page cache.

    Like ``docker stats``: ``memory.current`` (v2) or ``memory.usage_in_bytes`` (v1) minus
    ``inactive_file`` (``total_inactive_file`` in v1) from ``memory.stat``. None when there
    is no limit or the files cannot be read.
    """
    if allowance.usage_dir is None:
        return None
    v2 = allowance.version == 2
    text = _read(allowance.usage_dir / ("memory.current" if v2 else "memory.usage_in_bytes"))
    try:
        used = int(text) if text is not None else None
    except ValueError:
        used = None
    if used is None:
        return None
    inactive_key = "inactive_file" if v2 else "total_inactive_file"
    for line in (_read(allowance.usage_dir / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == inactive_key:
            with contextlib.suppress(ValueError):
                used -= int(value)
            break
    return float(max(used, 0))
