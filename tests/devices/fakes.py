"""Fake vendor libraries and sysfs trees shared by the device and sampling tests.

One copy of each: a fake NVML (an autospec of pynvml with real constants and errors, GPUs
and MIG instances), a fake amdsmi (its function names and return shapes), and a fake
powercap (RAPL) tree. The device tests, the attribution tests and the Device contract
(``test_contracts.py``) all make their devices from these.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pynvml

# --- NVML ------------------------------------------------------------------------------


def not_supported() -> Exception:
    error: Exception = pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    return error


@dataclass
class NvmlGPU:
    """What one fake GPU answers. An Exception value is raised by the matching NVML call.

    The fake module hands out these objects as NVML handles.
    """

    uuid: str
    model: str = "NVIDIA H100 80GB HBM3"
    energy_mj: int | Exception = 1_000_000
    power_mw: int | Exception = 500_000
    instant_mw: float = 450_000
    instant_return: int = pynvml.NVML_SUCCESS
    instant_type: int = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
    mig_mode: int | Exception = field(default_factory=not_supported)
    is_mig_handle: int = 0
    power_limit_mw: int | Exception = 700_000


def _answer(value: Any) -> Any:
    if isinstance(value, Exception):
        raise value
    return value


def _field_values(gpu: NvmlGPU, field_ids: list[int]) -> Any:
    # A real c_nvmlFieldValue_t array, as pynvml returns it.
    values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
    for slot, field_id in zip(values, field_ids, strict=True):
        slot.fieldId = field_id
        if field_id != pynvml.NVML_FI_DEV_POWER_INSTANT:
            slot.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            continue
        slot.nvmlReturn = gpu.instant_return
        slot.valueType = gpu.instant_type
        if gpu.instant_type == pynvml.NVML_VALUE_TYPE_DOUBLE:
            slot.value.dVal = gpu.instant_mw
        else:
            slot.value.uiVal = int(gpu.instant_mw)
    return values


def make_nvml(gpus: list[NvmlGPU], *, init_error: int | None = None) -> Any:
    """An autospec of pynvml (wrong call signatures fail) with real constants and errors."""
    fake = mock.create_autospec(pynvml)
    for attr in dir(pynvml):
        if attr.startswith(("NVML_", "NVMLError")):
            setattr(fake, attr, getattr(pynvml, attr))
    if init_error is not None:
        fake.nvmlInit.side_effect = pynvml.NVMLError(init_error)

    def handle_by_index(index: int) -> NvmlGPU:
        if not 0 <= index < len(gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpus[index]

    def handle_by_uuid(uuid: str) -> NvmlGPU:
        for gpu in gpus:
            if gpu.uuid == uuid:
                return gpu
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    fake.nvmlDeviceGetCount.side_effect = lambda: len(gpus)
    fake.nvmlDeviceGetHandleByIndex.side_effect = handle_by_index
    fake.nvmlDeviceGetHandleByUUID.side_effect = handle_by_uuid
    fake.nvmlDeviceGetUUID.side_effect = lambda h: h.uuid
    fake.nvmlDeviceGetName.side_effect = lambda h: h.model
    fake.nvmlDeviceGetIndex.side_effect = gpus.index
    fake.nvmlDeviceGetTotalEnergyConsumption.side_effect = lambda h: _answer(h.energy_mj)
    fake.nvmlDeviceGetPowerUsage.side_effect = lambda h: _answer(h.power_mw)
    fake.nvmlDeviceGetEnforcedPowerLimit.side_effect = lambda h: _answer(h.power_limit_mw)
    fake.nvmlDeviceGetFieldValues.side_effect = _field_values
    fake.nvmlDeviceGetMigMode.side_effect = lambda h: [_answer(h.mig_mode), 0]
    fake.nvmlDeviceIsMigDeviceHandle.side_effect = lambda h: pynvml.c_uint(h.is_mig_handle)
    return fake


def gpus(n: int) -> list[NvmlGPU]:
    return [
        NvmlGPU(uuid=f"GPU-{i}{i}{i}{i}aaaa-0000", energy_mj=1_000_000 * (i + 1)) for i in range(n)
    ]


def mig_nvml(sms: dict[str, int]) -> tuple[Any, list[NvmlGPU]]:
    """Two GPUs; the second in MIG mode with a 3g (60 SMs) and a 1g (16 SMs) instance."""
    fakes = gpus(2)
    fakes[1].mig_mode = pynvml.NVML_DEVICE_MIG_ENABLE
    instances = [
        NvmlGPU(uuid="MIG-aaaa-3g", is_mig_handle=1),
        NvmlGPU(uuid="MIG-bbbb-1g", is_mig_handle=1),
    ]
    ids = {"MIG-aaaa-3g": (1, 0), "MIG-bbbb-1g": (2, 0)}
    nvml = make_nvml(fakes)

    def by_index(parent: NvmlGPU, slot: int) -> NvmlGPU:
        if parent is not fakes[1] or slot >= len(instances):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return instances[slot]

    def max_count(parent: NvmlGPU) -> int:
        if parent is not fakes[1]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 7

    nvml.nvmlDeviceGetMaxMigDeviceCount.side_effect = max_count
    nvml.nvmlDeviceGetMigDeviceHandleByIndex.side_effect = by_index
    nvml.nvmlDeviceGetAttributes.side_effect = lambda h: types.SimpleNamespace(
        multiprocessorCount=sms[h.uuid]
    )
    nvml.nvmlDeviceGetGpuInstanceId.side_effect = lambda h: ids[h.uuid][0]
    nvml.nvmlDeviceGetComputeInstanceId.side_effect = lambda h: ids[h.uuid][1]
    return nvml, fakes


SMS = {"GPU-0000aaaa-0000": 132, "GPU-1111aaaa-0000": 132, "MIG-aaaa-3g": 60, "MIG-bbbb-1g": 16}


# --- amdsmi ----------------------------------------------------------------------------

# amdsmi_status_t values (amd_smi.h).
NOT_SUPPORTED, NO_PERM, DRIVER_NOT_LOADED, BUSY = 2, 10, 34, 30


class AmdSmiException(Exception):
    """Base class, as in amdsmi/amdsmi_exception.py."""


class AmdSmiLibraryException(AmdSmiException):
    """As in amdsmi: carries the amdsmi_status_t code, read with get_error_code()."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = abs(err_code)

    def get_error_code(self) -> int:
        return self.err_code

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | fake"


@dataclass
class FakeAmdGPU:
    """What one fake GPU answers; an int in an *_error field makes that call raise it."""

    serial: str = "0x0123456789ABCDEF"
    market_name: str = "AMD Instinct MI300X"
    num_compute_units: int = 304
    uuid: str = "5fff74a1-0000-1000-80e9-d4ff2f3d1b2c"
    energy_accumulator: int | Callable[[], int] = 1_000_000
    counter_resolution: float = 15.3
    current_socket_power: int | str = 750
    average_socket_power: int | str = "N/A"
    energy_error: int | None = None
    power_error: int | None = None


class Handle:
    """Stands in for amdsmi_wrapper.amdsmi_processor_handle."""

    def __init__(self, gpu: FakeAmdGPU) -> None:
        self.gpu = gpu


def make_amdsmi(gpus: list[FakeAmdGPU], *, init_error: int | None = None) -> Any:
    """A module with amdsmi's function names and return shapes (py-interface/
    amdsmi_interface.py of ROCm/amdsmi: dicts with the same keys, "N/A" where unsupported).
    """
    fake: Any = types.ModuleType("amdsmi")
    fake.AmdSmiException = AmdSmiException
    fake.AmdSmiLibraryException = AmdSmiLibraryException
    fake.calls = []

    def raise_if(code: int | None) -> None:
        if code is not None:
            raise AmdSmiLibraryException(code)

    def amdsmi_init(flag: int = 2) -> None:
        fake.calls.append("init")
        raise_if(init_error)

    def amdsmi_shut_down() -> None:
        fake.calls.append("shut_down")

    def amdsmi_get_processor_handles() -> list[Handle]:
        return [Handle(g) for g in gpus]

    def amdsmi_get_gpu_asic_info(h: Handle) -> dict[str, Any]:
        return {
            "market_name": h.gpu.market_name,
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "subvendor_id": "0x1002",
            "device_id": "0x74a1",
            "rev_id": "0x00",
            "asic_serial": h.gpu.serial,
            "oam_id": 0,
            "num_compute_units": h.gpu.num_compute_units,
            "target_graphics_version": "gfx942",
        }

    def amdsmi_get_gpu_device_uuid(h: Handle) -> str:
        return h.gpu.uuid

    def amdsmi_get_energy_count(h: Handle) -> dict[str, Any]:
        raise_if(h.gpu.energy_error)
        count = h.gpu.energy_accumulator
        count = count() if callable(count) else count
        return {
            "power": count,
            "energy_accumulator": count,
            "counter_resolution": h.gpu.counter_resolution,
            "timestamp": 1_700_000_000_000,
        }

    def amdsmi_get_power_info(h: Handle) -> dict[str, Any]:
        raise_if(h.gpu.power_error)
        return {
            "current_socket_power": h.gpu.current_socket_power,
            "average_socket_power": h.gpu.average_socket_power,
            "gfx_voltage": 800,
            "soc_voltage": 900,
            "mem_voltage": 1100,
            "power_limit": 750,
        }

    def amdsmi_get_gpu_driver_info(h: Handle) -> dict[str, str]:
        return {"driver_name": "amdgpu", "driver_version": "6.8.5", "driver_date": "2015/01/01"}

    for function in (
        amdsmi_init,
        amdsmi_shut_down,
        amdsmi_get_processor_handles,
        amdsmi_get_gpu_asic_info,
        amdsmi_get_gpu_device_uuid,
        amdsmi_get_energy_count,
        amdsmi_get_power_info,
        amdsmi_get_gpu_driver_info,
    ):
        setattr(fake, function.__name__, function)
    return fake


# --- powercap (RAPL) -------------------------------------------------------------------


RANGE_UJ = 262143328850
"""The counter range every fake zone declares (max_energy_range_uj), in µJ."""


def make_zone(root: Path, zone: str, name: str, energy_uj: int = 0) -> Path:
    """A powercap zone directory with name, energy_uj and max_energy_range_uj."""
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{RANGE_UJ}\n")
    return path


def set_energy(zone: Path, value: int | str) -> None:
    """Rewrite a zone's counter in place (the native loop keeps the file open)."""
    (zone / "energy_uj").write_text(f"{value}\n")
