"""Process scope in a container: its own PID namespace, and who in it holds a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from greenai.devices.attribution import GpuProcessShare
from greenai.devices.namespaces import PROC_PID_INIT_INO, gpu_holders, in_pid_namespace
from greenai.errors import MeasurementWarning
from tests.devices.fakes import NvmlGPU, make_nvml


def fake_procfs(tmp_path: Path, ns_inode: int | None) -> Path:
    root = tmp_path / "proc"
    (root / "self" / "ns").mkdir(parents=True)
    if ns_inode is not None:
        os.symlink(f"pid:[{ns_inode}]", root / "self" / "ns" / "pid")
    return root


def test_pid_namespace_from_the_namespace_inode(tmp_path: Path) -> None:
    assert not in_pid_namespace(str(fake_procfs(tmp_path / "a", PROC_PID_INIT_INO)))
    assert in_pid_namespace(str(fake_procfs(tmp_path / "b", 4026532441)))
    assert not in_pid_namespace(str(fake_procfs(tmp_path / "c", None)))  # cannot tell


def test_gpu_holders_count_processes_with_the_device_file_open(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    for pid, targets in {100: ["/dev/nvidia0", "/dev/nvidiactl"], 101: ["/dev/nvidia1"],
                         102: ["/dev/null"], 103: ["/dev/nvidia-uvm"]}.items():  # fmt: skip
        fd = root / str(pid) / "fd"
        fd.mkdir(parents=True)
        for i, target in enumerate(targets):
            os.symlink(target, fd / str(i + 3))
    pids = {100, 101, 102, 103, 999}  # 999: gone
    assert gpu_holders(pids, 0, str(root)) == 1
    assert gpu_holders(pids, 1, str(root)) == 1
    assert gpu_holders(pids, None, str(root)) == 2  # any GPU; nvidiactl and uvm are not GPUs


class Proc(NamedTuple):
    pid: int
    usedGpuMemory: int


def test_gpu_share_in_a_pid_namespace_is_a_labelled_estimate() -> None:
    nvml = make_nvml([NvmlGPU(uuid="GPU-a")])
    running = [Proc(4242, 1), Proc(4243, 1), Proc(5000, 1), Proc(6000, 1)]  # host pids
    nvml.nvmlDeviceGetComputeRunningProcesses.side_effect = lambda h: running
    seen: list[set[int]] = []

    def holders(pids: set[int]) -> int:
        seen.append(pids)
        return 1

    share = GpuProcessShare(
        7, nvml, lambda: "h", pids=lambda: {7, 8}, pid_namespace=True, holders=holders
    )
    assert share.mode == "namespace-estimate"
    with pytest.warns(MeasurementWarning, match="PID namespace"):
        assert share() == pytest.approx(0.25)
    running.clear()
    assert share() == 0.0  # nobody on the GPU: nothing to charge
    assert seen == [{7, 8}]
    nvml.nvmlDeviceGetProcessUtilization.assert_not_called()  # host pids: never matched


def test_gpu_share_outside_a_namespace_keeps_nvml_per_process_data() -> None:
    nvml = make_nvml([NvmlGPU(uuid="GPU-a")])
    share = GpuProcessShare(7, nvml, lambda: "h", pids=lambda: {7}, pid_namespace=False)
    assert share.mode == "utilisation"


CHILD = r"""
import json, time
import greenai
from greenai.devices.namespaces import in_pid_namespace
from greenai.devices.cpu_model import CpuModel
import os
devices = [CpuModel()]
with greenai.track("ns", devices=devices, scope="process", period_s=0.1) as job:
    end = time.monotonic() + 2.0
    x = 0
    while time.monotonic() < end:
        x += 1
d = job.result.devices[0]
print(json.dumps({"ns": in_pid_namespace(), "pid": os.getpid(), "name": d.name,
                  "scope": d.scope, "energy_j": d.energy_j}))
"""


def _unshare_or_skip() -> None:
    why = None
    if shutil.which("unshare") is None:
        why = "unshare (util-linux) is not installed"
    else:
        probe = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30
        )
        if probe.returncode != 0:
            why = f"unshare --pid is not permitted here: {probe.stderr.decode().strip()}"
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def test_process_scope_inside_a_real_pid_namespace() -> None:
    _unshare_or_skip()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ns"] is True and out["pid"] == 1  # the first process of its own namespace
    assert out["scope"] == "process" and out["name"].endswith("@process")
    assert out["energy_j"] > 0  # its CPU time was found and charged inside the namespace


def container_tree(
    tmp_path: Path, *, pid_ns: int, cgroup_ns: int, cgroup_line: str, v2: bool = True
) -> tuple[Path, Path]:
    procfs = tmp_path / "proc"
    (procfs / "self" / "ns").mkdir(parents=True)
    os.symlink(f"pid:[{pid_ns}]", procfs / "self" / "ns" / "pid")
    os.symlink(f"cgroup:[{cgroup_ns}]", procfs / "self" / "ns" / "cgroup")
    (procfs / "1").mkdir()
    (procfs / "1" / "cgroup").write_text(cgroup_line + "\n")
    root = tmp_path / "cgroup"
    root.mkdir()
    if v2:
        (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "cpu.stat").write_text("usage_usec 999000000\n")  # the host's, if it is read
    pod = root / "kubepods" / "pod1"
    pod.mkdir(parents=True)
    (pod / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    return procfs, root


def test_a_whole_container_is_charged_its_cgroup_cpu_time(tmp_path: Path) -> None:
    from greenai.devices.namespaces import CGROUP_NS_INIT_INO, container_cpu_seconds

    procfs, root = container_tree(
        tmp_path, pid_ns=4026532441, cgroup_ns=CGROUP_NS_INIT_INO, cgroup_line="0::/kubepods/pod1"
    )
    seconds = container_cpu_seconds(1, procfs_path=str(procfs), cgroup_root=root)
    assert seconds is not None and seconds() == pytest.approx(2.5)
    (root / "kubepods" / "pod1" / "cpu.stat").write_text("usage_usec 4000000\n")
    assert seconds() == pytest.approx(4.0)
    # not the container's first process: the tree is not the whole container
    assert container_cpu_seconds(7, procfs_path=str(procfs), cgroup_root=root) is None


def test_in_its_own_cgroup_namespace_the_mount_root_is_the_container(tmp_path: Path) -> None:
    from greenai.devices.namespaces import container_cpu_seconds

    procfs, root = container_tree(
        tmp_path, pid_ns=4026532441, cgroup_ns=4026532500, cgroup_line="0::/"
    )
    (root / "cpu.stat").write_text("usage_usec 1500000\n")
    seconds = container_cpu_seconds(1, procfs_path=str(procfs), cgroup_root=root)
    assert seconds is not None and seconds() == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("pid_ns", "cgroup_line", "v2"),
    [
        (PROC_PID_INIT_INO, "0::/kubepods/pod1", True),  # the host's PID namespace
        (4026532441, "0::/", True),  # the host's root cgroup: the machine, never
        (4026532441, "0::/user.slice/session-4.scope", True),  # shared: a login session
        (4026532441, "0::/kubepods/pod1", False),  # cgroup v1
    ],
)
def test_no_container_cgroup_means_the_process_tree(
    tmp_path: Path, pid_ns: int, cgroup_line: str, v2: bool
) -> None:
    from greenai.devices.namespaces import CGROUP_NS_INIT_INO, container_cpu_seconds

    procfs, root = container_tree(
        tmp_path, pid_ns=pid_ns, cgroup_ns=CGROUP_NS_INIT_INO, cgroup_line=cgroup_line, v2=v2
    )
    assert container_cpu_seconds(1, procfs_path=str(procfs), cgroup_root=root) is None


def test_process_scope_of_a_whole_container_uses_its_cgroup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greenai.devices import namespaces
    from greenai.devices.attribution import apply_scope
    from greenai.devices.cpu_model import CpuModel

    counter = iter([10.0, 12.0])
    monkeypatch.setattr(namespaces, "container_cpu_seconds", lambda pid: lambda: next(counter))
    (cpu,) = apply_scope([CpuModel()], "process")
    assert "cgroup v2 cpu.stat" in cpu.detail()
