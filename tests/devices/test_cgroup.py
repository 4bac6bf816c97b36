from __future__ import annotations

from pathlib import Path

import pytest

from greenai.devices.cgroup import (
    cgroup_cpu_usage_s,
    cgroup_memory_used_bytes,
    cpu_allowance,
    memory_allowance,
)


def proc_with(tmp_path: Path, cgroup_lines: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup_lines)
    return proc


def v2_tree(tmp_path: Path, path: str = "") -> Path:
    root = tmp_path / "cgroup"
    (root / path).mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    return root


def test_v2_quota_is_the_smallest_along_the_ancestors(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, "kubepods/pod1/ctr")
    (root / "kubepods" / "cpu.max").write_text("max 100000\n")
    (root / "kubepods" / "pod1" / "cpu.max").write_text("150000 100000\n")
    (root / "kubepods" / "pod1" / "ctr" / "cpu.max").write_text("400000 100000\n")
    proc = proc_with(tmp_path, "0::/kubepods/pod1/ctr\n")
    allowance = cpu_allowance(cgroup_root=root, procfs_path=proc, affinity=tuple(range(8)))
    assert allowance.usable_cpus == 1.5
    assert allowance.quota_cpus == 1.5
    assert allowance.usage_file == root / "kubepods" / "pod1" / "ctr" / "cpu.stat"
    assert "cgroup v2" in allowance.source


def test_affinity_smaller_than_quota_wins(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, "job")
    (root / "job" / "cpu.max").write_text("800000 100000\n")
    proc = proc_with(tmp_path, "0::/job\n")
    allowance = cpu_allowance(cgroup_root=root, procfs_path=proc, affinity=(2, 3))
    assert allowance.usable_cpus == 2.0
    assert allowance.source == "affinity: 2 CPU(s)"


def test_container_namespace_reads_the_mount_root(tmp_path: Path) -> None:
    # /proc/self/cgroup names a host path that is not under the container's mount.
    root = v2_tree(tmp_path)
    (root / "cpu.max").write_text("200000 100000\n")
    proc = proc_with(tmp_path, "0::/system.slice/docker-abc.scope\n")
    allowance = cpu_allowance(cgroup_root=root, procfs_path=proc, affinity=tuple(range(16)))
    assert allowance.usable_cpus == 2.0


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    cpu = root / "cpu,cpuacct" / "docker" / "abc"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("250000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / "cpuacct.usage").write_text("3000000000\n")
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc = proc_with(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    allowance = cpu_allowance(cgroup_root=root, procfs_path=proc, affinity=tuple(range(4)))
    assert allowance.usable_cpus == 2.5
    assert allowance.usage_file == cpu / "cpuacct.usage"
    assert cgroup_cpu_usage_s(cpu / "cpuacct.usage") == pytest.approx(3.0)


def test_no_quota_and_no_tree_mean_the_affinity(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    cpu = root / "cpu,cpuacct"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    proc = proc_with(tmp_path, "3:cpu,cpuacct:/\n")
    allowance = cpu_allowance(cgroup_root=root, procfs_path=proc, affinity=(0, 1, 2))
    assert (allowance.usable_cpus, allowance.quota_cpus, allowance.usage_file) == (3.0, None, None)
    nothing = cpu_allowance(cgroup_root=tmp_path / "absent", procfs_path=tmp_path / "absent")
    assert nothing.usable_cpus >= 1 and nothing.quota_cpus is None


def test_v2_cpu_stat_usage(tmp_path: Path) -> None:
    stat = tmp_path / "cpu.stat"
    stat.write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert cgroup_cpu_usage_s(stat) == pytest.approx(2.5)
    stat.write_text("garbage\n")
    assert cgroup_cpu_usage_s(stat) is None
    assert cgroup_cpu_usage_s(tmp_path / "absent" / "cpu.stat") is None


def test_v2_memory_limit_and_usage_less_inactive_cache(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, "job/step")
    (root / "job" / "memory.max").write_text(f"{4 * 2**30}\n")
    (root / "job" / "step" / "memory.max").write_text("max\n")
    (root / "job" / "step" / "memory.current").write_text(f"{3 * 2**30}\n")
    (root / "job" / "step" / "memory.stat").write_text(f"anon 1\ninactive_file {2**30}\n")
    proc = proc_with(tmp_path, "0::/job/step\n")
    allowance = memory_allowance(cgroup_root=root, procfs_path=proc)
    assert allowance.limit_bytes == 4 * 2**30
    assert cgroup_memory_used_bytes(allowance) == 2 * 2**30


def test_v1_memory_without_limit(tmp_path: Path) -> None:
    mem = tmp_path / "cgroup" / "memory"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    proc = proc_with(tmp_path, "4:memory:/\n")
    allowance = memory_allowance(cgroup_root=tmp_path / "cgroup", procfs_path=proc)
    assert allowance.limit_bytes is None
    assert cgroup_memory_used_bytes(allowance) is None


def test_v1_memory_limit(tmp_path: Path) -> None:
    mem = tmp_path / "cgroup" / "memory" / "slurm" / "job7"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(f"{8 * 2**30}\n")
    (mem / "memory.usage_in_bytes").write_text(f"{5 * 2**30}\n")
    (mem / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {2**30}\n")
    proc = proc_with(tmp_path, "4:memory:/slurm/job7\n")
    allowance = memory_allowance(cgroup_root=tmp_path / "cgroup", procfs_path=proc)
    assert (allowance.limit_bytes, allowance.version) == (8 * 2**30, 1)
    assert cgroup_memory_used_bytes(allowance) == 4 * 2**30
