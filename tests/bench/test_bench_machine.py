from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from greenai.bench import machine


class FakeNVML:
    """Just what machine.gpu_info calls; a GPU named by the test."""

    def __init__(self, models: list[str], fail_init: bool = False) -> None:
        self.models = models
        self.fail_init = fail_init
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"580.65.06"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.models)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.models[handle]

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle:08d}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=80 * 2**30)


def test_gpu_model_driver_and_uuid_come_from_nvml() -> None:
    nvml = FakeNVML(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"])
    info = machine.machine_info(nvml=nvml)  # type: ignore[arg-type]
    assert info["gpu_model"] == "NVIDIA H100 80GB HBM3"
    assert info["driver"] == "580.65.06"
    assert [g["uuid"] for g in info["gpus"]] == ["GPU-00000000", "GPU-00000001"]
    assert info["gpus"][0]["memory_gib"] == 80.0
    assert nvml.shutdowns == 1
    assert "2× NVIDIA H100 80GB HBM3 (driver 580.65.06)" in machine.describe(info)


def test_no_nvml_is_a_cpu_machine_not_an_error() -> None:
    info = machine.machine_info(nvml=FakeNVML([], fail_init=True))  # type: ignore[arg-type]
    assert info["gpus"] == [] and info["gpu_model"] is None and info["driver"] is None
    assert info["torch"] and info["cpu_count"]
    assert machine.describe(info).startswith("CPU ")


def test_fingerprint_tells_machines_apart_and_is_stable() -> None:
    a = machine.machine_info(nvml=FakeNVML(["NVIDIA H100 80GB HBM3"]))  # type: ignore[arg-type]
    b = machine.machine_info(nvml=FakeNVML(["NVIDIA A100-SXM4-80GB"]))  # type: ignore[arg-type]
    assert a["fingerprint"] != b["fingerprint"]
    assert machine.fingerprint(a) == a["fingerprint"]
    other_torch = dict(a, torch="0.0.0")
    assert machine.fingerprint(other_torch) != a["fingerprint"]
    assert len(a["fingerprint"]) == 16


def test_cpu_model_reads_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert machine.cpu_model(cpuinfo) == "AMD EPYC 9654 96-Core Processor"
    assert machine.cpu_model(tmp_path / "missing")  # falls back to platform, never raises
