from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pynvml
import pytest

from greenai.devices import attribution
from greenai.devices.attribution import (
    Attributed,
    CpuTimeShare,
    GpuProcessShare,
    MemoryShare,
    apply_scope,
    tree_cpu_seconds,
)
from greenai.devices.base import Device, Reading, ShareInputs
from greenai.devices.cpu_model import CpuModel
from greenai.devices.memory_model import MemoryModel
from greenai.devices.nvidia import NvidiaGPU
from greenai.devices.rapl import RaplDomain
from greenai.errors import ConfigError, DeviceReadError, MeasurementWarning
from tests.devices.fakes import NvmlGPU, make_nvml, make_zone, set_energy


def counters(*values: float) -> Any:
    it = iter(values)
    return lambda: next(it)


def shares(*values: float) -> Any:
    return counters(*values)


# --- CPU time share ------------------------------------------------------------------


def test_cpu_share_is_tree_time_over_busy_time_per_interval() -> None:
    share = CpuTimeShare(
        1, tree_cpu_s=counters(10.0, 11.0, 11.0, 13.0), busy_cpu_s=counters(50.0, 54.0, 56.0, 58.0)
    )
    assert share() == 0.0  # the baseline
    assert share() == pytest.approx(0.25)  # 1 of 4 busy CPU-seconds
    assert share() == 0.0  # the tree slept while others worked (the sleep job)
    assert share() == 1.0  # 2 of 2


def test_cpu_share_is_clamped() -> None:
    # Counters from different sources can disagree a little; a tree that lost a member
    # (exited unreaped) drops: neither may give a share outside [0, 1].
    share = CpuTimeShare(
        1, tree_cpu_s=counters(5.0, 8.0, 7.0, 7.0), busy_cpu_s=counters(1.0, 3.0, 5.0, 5.0)
    )
    share()
    assert share() == 1.0
    assert share() == 0.0
    assert share() == 0.0  # an idle machine: nobody's share


class Times(NamedTuple):
    user: float
    system: float
    children_user: float
    children_system: float


@dataclass
class FakeProc:
    """A psutil.Process stand-in: its CPU times and its live descendants."""

    pid: int
    times: Times
    descendants: list[FakeProc] = field(default_factory=list)

    def cpu_times(self) -> Times:
        return self.times

    def children(self, recursive: bool = False) -> list[FakeProc]:
        return self.descendants


def test_tree_cpu_time_is_continuous_when_a_child_is_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    child = FakeProc(2, Times(1.5, 0.5, 0.0, 0.0))
    root = FakeProc(1, Times(1.0, 0.0, 0.0, 0.0), [child])
    monkeypatch.setattr(attribution.psutil, "Process", lambda pid: root)
    before = tree_cpu_seconds(1)
    assert before == pytest.approx(3.0)
    # The child ran 0.5 s more, exited and was reaped: its whole 2.5 s moves to the root.
    root.times = Times(1.2, 0.0, 2.0, 0.5)
    root.descendants = []
    assert tree_cpu_seconds(1) - before == pytest.approx(0.7)


def test_real_tree_cpu_time_and_share() -> None:
    share = CpuTimeShare(os.getpid())
    share()
    sum(i * i for i in range(200_000))  # some CPU work of our own
    value = share()
    assert 0.0 <= value <= 1.0
    assert tree_cpu_seconds(os.getpid()) > 0


def test_memory_share() -> None:
    share = MemoryShare(1, used_bytes=lambda: 8e9, tree_rss_bytes=lambda: 2e9)
    assert share() == 0.25
    assert MemoryShare(1, used_bytes=lambda: 0.0, tree_rss_bytes=lambda: 1.0)() == 0.0


# --- the Attributed wrapper ----------------------------------------------------------


def test_attributed_counter_charges_each_interval_its_share(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1_000_000_000)
    rapl = RaplDomain(zone, "cpu0-package", "cpu")
    device = Attributed(rapl, shares(0.0, 0.5, 0.25, 1.0), pid=1, how="test")
    assert (device.name, device.kind, device.scope, device.method) == (
        "cpu0-package@process",
        "cpu",
        "process",
        "counter",
    )
    device.open()  # share baseline 0.0
    first = device.read().energy_j  # share 0.5 of nothing yet
    set_energy(zone, 1_100_000_000)  # +100 J
    assert device.read().energy_j == pytest.approx(first + 25.0)  # share 0.25
    set_energy(zone, 1_140_000_000)  # +40 J
    reading = device.read()  # share 1.0
    assert reading.energy_j == pytest.approx(first + 65.0)
    assert reading.power_w is None
    assert device.last_share == 1.0
    device.close()
    assert rapl.open_count == 0


class Steady(Device):
    name = "cpu-steady"
    kind = "cpu"
    method = "model"
    relative_uncertainty = 0.5

    def read(self) -> Reading:
        return Reading(power_w=40.0)


def test_attributed_power_is_scaled_by_the_share() -> None:
    device = Attributed(Steady(), shares(0.0, 0.25), pid=1, how="test")
    device.open()
    assert device.read() == Reading(energy_j=None, power_w=10.0)
    assert device.relative_uncertainty == 0.5 and device.method == "model"
    assert "attributed to process tree 1 by test" in device.detail()


def test_a_failing_share_is_a_read_error() -> None:
    def gone() -> float:
        raise attribution.psutil.NoSuchProcess(99)

    device = Attributed(Steady(), gone, pid=99, how="test")
    with pytest.raises(attribution.psutil.NoSuchProcess):
        device.open()  # fails at open, and closes what it opened
    assert device.device.open_count == 0
    calls = iter([0.0])
    device = Attributed(Steady(), lambda: next(calls), pid=99, how="test")
    device.open()
    with pytest.raises(DeviceReadError, match="share"):
        device.read()


def test_two_trackers_attribute_one_shared_device(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=0)
    rapl = RaplDomain(zone, "cpu0-package", "cpu")
    outer = Attributed(rapl, lambda: 1.0, pid=1, how="test")
    inner = Attributed(rapl, lambda: 0.5, pid=2, how="test")
    outer.open()
    start = outer.read().energy_j
    set_energy(zone, 100_000_000)
    inner.open()
    inner_start = inner.read().energy_j
    set_energy(zone, 300_000_000)
    assert inner.read().energy_j == pytest.approx(inner_start + 100.0)
    inner.close()
    set_energy(zone, 400_000_000)
    assert outer.read().energy_j == pytest.approx(start + 400.0)
    outer.close()
    assert rapl.open_count == 0


# --- GPU -----------------------------------------------------------------------------


class Sample(NamedTuple):
    pid: int
    timeStamp: int
    smUtil: int


class Proc(NamedTuple):
    pid: int
    usedGpuMemory: int


def gpu_share(
    samples: list[list[Sample] | Exception], running: list[int]
) -> tuple[GpuProcessShare, Any]:
    nvml = make_nvml([NvmlGPU(uuid="GPU-a")])
    answers = iter(samples)
    seen: list[int] = []

    def utilisation(handle: Any, ts: int) -> list[Sample]:
        seen.append(ts)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    nvml.nvmlDeviceGetProcessUtilization.side_effect = utilisation
    nvml.nvmlDeviceGetComputeRunningProcesses.side_effect = lambda h: [
        Proc(p, 1 << 30) for p in running
    ]
    share = GpuProcessShare(
        100, nvml, lambda: "handle", pids=lambda: {100, 101}, pid_namespace=False
    )
    return share, seen


def test_gpu_share_from_per_process_utilisation() -> None:
    share, seen = gpu_share(
        [
            [Sample(100, 10, 30), Sample(200, 12, 10)],
            [Sample(101, 20, 20), Sample(100, 21, 20), Sample(300, 22, 60)],
        ],
        running=[100, 200],
    )
    assert share() == pytest.approx(0.75)
    assert share() == pytest.approx(0.4)
    assert seen == [0, 12]  # each call asks only for samples newer than the last seen


def test_gpu_without_samples_splits_among_compute_contexts() -> None:
    share, _ = gpu_share(
        [
            pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND),
            pynvml.NVMLError(pynvml.NVML_SUCCESS),  # pynvml's "0 samples"
            [Sample(200, 5, 0)],  # samples, but all idle
        ],
        running=[100, 200, 300],
    )
    assert share() == pytest.approx(1 / 3)
    assert share() == pytest.approx(1 / 3)
    assert share() == pytest.approx(1 / 3)
    assert share.mode == "utilisation"


def test_gpu_driver_without_per_process_utilisation() -> None:
    share, seen = gpu_share([pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)], running=[101])
    assert share() == 1.0
    assert share.mode == "contexts"
    assert share() == 1.0
    assert len(seen) == 1  # not asked again


def test_gpu_share_other_nvml_errors_propagate() -> None:
    share, _ = gpu_share([pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)], running=[])
    with pytest.raises(pynvml.NVMLError):
        share()


def test_apply_scope_attributes_an_nvidia_gpu_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = NvmlGPU(uuid="GPU-a", energy_mj=1_000_000)
    nvml = make_nvml([fake])
    pid = os.getpid()
    nvml.nvmlDeviceGetProcessUtilization.side_effect = [
        [],  # baseline at open
        [],  # first read: no samples yet
        [Sample(pid, 1, 50), Sample(pid + 10_000_000, 2, 50)],
    ]
    nvml.nvmlDeviceGetComputeRunningProcesses.side_effect = lambda h: [Proc(pid, 1)]
    (gpu,) = apply_scope([NvidiaGPU(0, nvml=nvml)], "process")
    gpu.open()
    assert (gpu.name, gpu.method, gpu.scope) == ("gpu0@process", "counter", "process")
    start = gpu.read().energy_j
    fake.energy_mj = 1_200_000  # +200 J, half of the SM time is ours
    reading = gpu.read()
    assert reading.energy_j == pytest.approx(start + 100.0)
    assert reading.power_w == pytest.approx(450.0 * 0.5)
    gpu.close()
    nvml.nvmlShutdown.assert_called_once()


# --- apply_scope ---------------------------------------------------------------------


class Other(Device):
    kind = "other"
    name = "other"

    def read(self) -> Reading:
        return Reading(power_w=1.0)


def test_apply_scope_machine_is_unchanged() -> None:
    devices: list[Device] = [Steady(), Other()]
    assert apply_scope(devices, "machine") == devices
    assert apply_scope(devices, "machine") is not devices


def test_apply_scope_process_wraps_each_kind(tmp_path: Path) -> None:
    cpu = CpuModel(procfs_path=tmp_path, cgroup_root=tmp_path)
    memory = MemoryModel(cgroup_root=tmp_path, procfs_path=tmp_path)
    other = Other()
    with pytest.warns(MeasurementWarning, match="cannot attribute other"):
        scoped = apply_scope([cpu, memory, other], "process")
    assert [d.name for d in scoped] == ["cpu-model@process", "memory-model@process", "other"]
    assert [d.scope for d in scoped] == ["process", "process", "machine"]
    assert scoped[2] is other
    for device in scoped[:2]:
        device.open()
        reading = device.read()
        assert reading.power_w is not None and reading.power_w >= 0
        device.close()
    assert "share of busy CPU time" in scoped[0].detail()


class DeclaredCpu(Device):
    """A new modelled CPU kind: it declares what its share is of, nothing names its class."""

    name = "cpu-declared"
    kind = "cpu"
    method = "model"

    def __init__(self) -> None:
        self.busy_calls = 0

    def read(self) -> Reading:
        return Reading(power_w=10.0)

    def share_inputs(self) -> ShareInputs:
        return ShareInputs(busy_cpu_s=self.busy_cpu_s)

    def busy_cpu_s(self) -> float:
        self.busy_calls += 1
        return 1e6 * self.busy_calls  # a million busy CPU seconds per interval


class DeclaredMemory(Device):
    """A new modelled memory kind charging a tree its resident memory over its own use."""

    name = "memory-declared"
    kind = "dram"
    method = "model"

    def read(self) -> Reading:
        return Reading(power_w=10.0)

    def share_inputs(self) -> ShareInputs:
        rss = psutil.Process().memory_info().rss
        return ShareInputs(used_bytes=lambda: 4.0 * rss)


def test_a_new_device_kind_is_attributed_by_what_it_declares() -> None:
    cpu, memory = DeclaredCpu(), DeclaredMemory()
    scoped = apply_scope([cpu, memory, RaplLikeDram()], "process")
    for device in scoped:
        device.open()
    try:
        readings = [device.read() for device in scoped]
    finally:
        for device in scoped:
            device.close()
    # The CPU's own busy time was asked for (not the machine's): a tree's CPU seconds over
    # a million busy seconds per interval is a share of ~0.
    assert cpu.busy_calls == 2
    assert readings[0].power_w is not None and readings[0].power_w < 1e-3
    # The memory's own use: a quarter of it is this process's resident memory.
    assert readings[1].power_w == pytest.approx(2.5, rel=0.2)
    assert "resident memory" in scoped[1].detail()
    # A memory device declaring no use is charged by CPU time, like a RAPL DRAM counter.
    assert "busy CPU time" in scoped[2].detail()


class RaplLikeDram(Device):
    name = "dram-counter"
    kind = "dram"
    method = "counter"

    def read(self) -> Reading:
        return Reading(energy_j=1.0)


def test_only_a_gpu_declaring_nvml_is_per_process() -> None:
    gpu = NvidiaGPU(0, nvml=make_nvml([NvmlGPU(uuid="GPU-a")]))
    assert gpu.capabilities().per_process_gpu
    assert gpu.share_inputs().nvml is not None
    with pytest.raises(DeviceReadError, match="not open"):
        gpu.share_inputs().nvml()
    assert not Steady().capabilities().per_process_gpu


def test_apply_scope_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="scope"):
        apply_scope([], "host")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a running process"):
        apply_scope([Steady()], "process", pid=2**22 + 12345)
    with pytest.raises(ConfigError, match="already attributed"):
        apply_scope(apply_scope([Steady()], "process"), "process")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert apply_scope([], "process") == []


def test_a_tracker_integrates_the_attributed_power() -> None:
    import greenai
    from greenai.testing import FakeClock

    clock = FakeClock()
    device = Attributed(Steady(), lambda: 0.25, pid=1, how="test")
    with greenai.track("job", devices=[device], period_s=0.5, clock=clock) as job:
        clock.advance(10.0)
    result = job.result.device("cpu-steady@process")
    assert result.method == "model"
    assert result.energy_j == pytest.approx(100.0)  # 40 W * 0.25 * 10 s


def test_a_tree_that_is_part_of_a_container_is_charged_its_cpu_time_over_the_containers(
    tmp_path: Path,
) -> None:
    # A container with a 2-CPU quota (cgroup v2); the tracked tree is one of its processes:
    # its CPU time is a share of the container's (the cgroup's usage_usec), not the machine's.
    proc, cg = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/pod/app\n")
    (cg / "pod" / "app").mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory\n")
    (cg / "pod" / "app" / "cpu.max").write_text("200000 100000\n")
    stat = cg / "pod" / "app" / "cpu.stat"
    stat.write_text("usage_usec 1000000\nuser_usec 900000\n")
    model = CpuModel(
        tdp_w=100.0, cpu_name="x", sockets=1, threads_per_socket=8,
        procfs_path=proc, cgroup_root=cg,
    )  # fmt: skip
    model.open()
    try:
        assert model.usable_cpus == 2.0
        tree = iter([10.0, 11.0])  # the tree used 1 CPU-s while the container used 4
        share = CpuTimeShare(
            os.getpid(), tree_cpu_s=lambda: next(tree), busy_cpu_s=model.share_inputs().busy_cpu_s
        )
        assert share() == 0.0
        stat.write_text("usage_usec 5000000\nuser_usec 4000000\n")
        assert share() == pytest.approx(0.25)
    finally:
        model.close()
