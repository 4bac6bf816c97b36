from __future__ import annotations

import sys
import warnings
from typing import Any

import pynvml
import pytest

from greenai.devices.nvidia import NvidiaGPU, discover_gpus, visible_gpu_selectors
from greenai.errors import (
    DeviceError,
    DeviceFailureWarning,
    DeviceReadError,
    DeviceUnavailableError,
    DriverMismatchError,
    MeasurementWarning,
    MIGNotSupportedError,
)
from tests.devices.fakes import SMS, NvmlGPU, gpus, make_nvml, mig_nvml, not_supported

# Any warning a test does not expect fails it.
pytestmark = pytest.mark.filterwarnings("error")


def counter_j(gpu: NvmlGPU) -> float:
    assert isinstance(gpu.energy_mj, int)
    return gpu.energy_mj / 1000


def opened(gpu: NvmlGPU, **kwargs: Any) -> tuple[NvidiaGPU, Any]:
    nvml = make_nvml([gpu])
    device = NvidiaGPU(0, nvml=nvml, **kwargs)
    device.open()
    return device, nvml


# --- open / read -----------------------------------------------------------------------


def test_counter_and_instant_power_are_converted_to_joules_and_watts() -> None:
    gpu = NvmlGPU(uuid="GPU-a", energy_mj=123_456_789, instant_mw=412_345)
    device, nvml = opened(gpu)
    assert (device.name, device.kind, device.method) == ("gpu0", "gpu", "counter")
    assert device.relative_uncertainty == 0.05
    assert device.counter_resolution_j == 0.001
    assert device.update_period_s == 0.1

    first = device.read()
    assert first.energy_j == pytest.approx(123_456.789)
    assert first.power_w == pytest.approx(412.345)
    gpu.energy_mj, gpu.instant_mw = 123_999_001, 700_250
    second = device.read()
    assert second.energy_j == pytest.approx(123_999.001)
    assert second.power_w == pytest.approx(700.25)
    # Reads use what open() probed: no averaged power, no re-probing.
    nvml.nvmlDeviceGetPowerUsage.assert_not_called()
    nvml.nvmlDeviceIsMigDeviceHandle.assert_called_once()
    assert "NVML_FI_DEV_POWER_INSTANT" in device.detail()
    assert "GPU-a" in device.detail()
    device.close()


def test_the_enforced_power_limit_is_read_in_watts_or_left_unknown() -> None:
    device, _ = opened(NvmlGPU(uuid="GPU-a", power_limit_mw=350_000))
    assert device.power_limit_w == pytest.approx(350.0)
    device.close()
    unsupported = pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    device, _ = opened(NvmlGPU(uuid="GPU-a", power_limit_mw=unsupported))
    assert device.power_limit_w is None
    device.close()


def test_instant_power_honours_the_value_type() -> None:
    gpu = NvmlGPU(uuid="GPU-a", instant_mw=321_654.5, instant_type=pynvml.NVML_VALUE_TYPE_DOUBLE)
    device, _ = opened(gpu)
    assert device.read().power_w == pytest.approx(321.6545)
    device.close()


@pytest.mark.parametrize("how", ["field-return", "call-raises"])
def test_unsupported_instant_field_falls_back_to_average_power(how: str) -> None:
    gpu = NvmlGPU(uuid="GPU-a", power_mw=612_345)
    nvml = make_nvml([gpu])
    if how == "field-return":
        gpu.instant_return = pynvml.NVML_ERROR_NOT_SUPPORTED
    else:
        nvml.nvmlDeviceGetFieldValues.side_effect = pynvml.NVMLError(
            pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
        )
    device = NvidiaGPU(0, nvml=nvml)
    device.open()
    assert device.method == "counter"
    assert device.relative_uncertainty == 0.10
    assert device.read().power_w == pytest.approx(612.345)
    assert "moving average" in device.detail()
    device.close()


def test_without_counter_the_method_is_power() -> None:
    gpu = NvmlGPU(uuid="GPU-a", energy_mj=not_supported(), instant_mw=250_500)
    device, nvml = opened(gpu)
    assert device.method == "power"
    reading = device.read()
    assert reading.energy_j is None
    assert reading.power_w == pytest.approx(250.5)
    nvml.nvmlDeviceGetTotalEnergyConsumption.assert_called_once()  # the probe only
    device.close()


def test_neither_counter_nor_power_is_unavailable_and_releases_nvml() -> None:
    gpu = NvmlGPU(
        uuid="GPU-a",
        energy_mj=not_supported(),
        power_mw=not_supported(),
        instant_return=pynvml.NVML_ERROR_NOT_SUPPORTED,
    )
    nvml = make_nvml([gpu])
    device = NvidiaGPU(0, nvml=nvml)
    with pytest.raises(DeviceUnavailableError, match="gpu0"):
        device.open()
    assert nvml.nvmlInit.call_count == nvml.nvmlShutdown.call_count == 1


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("energy_mj", pynvml.NVML_ERROR_GPU_IS_LOST),
        ("energy_mj", pynvml.NVML_ERROR_UNKNOWN),
        ("instant_return", pynvml.NVML_ERROR_TIMEOUT),
    ],
)
def test_nvml_error_during_read_is_a_read_error(field: str, code: int) -> None:
    gpu = NvmlGPU(uuid="GPU-a")
    device, _ = opened(gpu, name="node3-gpu0")
    setattr(gpu, field, code if field == "instant_return" else pynvml.NVMLError(code))
    with pytest.raises(DeviceReadError) as caught:
        device.read()
    assert "node3-gpu0" in str(caught.value)
    assert str(pynvml.NVMLError(code)) in str(caught.value)
    assert isinstance(caught.value.__cause__, pynvml.NVMLError)
    device.close()


def test_read_before_open_is_a_read_error() -> None:
    with pytest.raises(DeviceReadError, match="open"):
        NvidiaGPU(0, nvml=make_nvml(gpus(1))).read()


def test_open_and_close_balance_init_and_shutdown() -> None:
    nvml = make_nvml(gpus(2))
    first, second = NvidiaGPU(0, nvml=nvml), NvidiaGPU(1, nvml=nvml)
    first.open()
    first.open()
    second.open()
    assert nvml.nvmlInit.call_count == 2
    first.close()
    first.close()
    assert nvml.nvmlShutdown.call_count == 1
    assert second.read().energy_j == pytest.approx(2_000.0)
    second.close()
    assert nvml.nvmlShutdown.call_count == 2
    first.open()  # reopening after close works and inits again
    assert first.read().energy_j == pytest.approx(1_000.0)
    first.close()
    assert nvml.nvmlInit.call_count == nvml.nvmlShutdown.call_count == 3


def test_nested_open_close_leaves_the_outer_reading() -> None:
    # Two trackers given one NvidiaGPU object: the inner close must not shut NVML down
    # under the outer, and the counter stays absolute so each keeps its own origin.
    fake = NvmlGPU(uuid="GPU-a", energy_mj=1_000_000)
    nvml = make_nvml([fake])
    device = NvidiaGPU(0, nvml=nvml)
    device.open()  # outer
    outer_origin = device.read().energy_j
    fake.energy_mj = 1_100_000
    device.open()  # inner
    inner_origin = device.read().energy_j
    fake.energy_mj = 1_200_000
    inner_end = device.read().energy_j
    device.close()  # inner
    nvml.nvmlShutdown.assert_not_called()
    fake.energy_mj = 1_300_000
    outer_end = device.read().energy_j  # still open for the outer
    device.close()  # outer
    assert nvml.nvmlInit.call_count == nvml.nvmlShutdown.call_count == 1
    assert outer_origin is not None and inner_origin is not None
    assert inner_end is not None and outer_end is not None
    assert inner_end - inner_origin == pytest.approx(100.0)
    assert outer_end - outer_origin == pytest.approx(300.0)
    with pytest.raises(DeviceReadError, match="open"):
        device.read()


def test_close_never_raises() -> None:
    device, nvml = opened(NvmlGPU(uuid="GPU-a"))
    nvml.nvmlShutdown.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
    device.close()


def test_open_by_uuid_looks_the_gpu_up_by_uuid() -> None:
    fakes = gpus(3)
    nvml = make_nvml(fakes)
    device = NvidiaGPU(0, nvml=nvml, uuid=fakes[2].uuid)
    device.open()
    nvml.nvmlDeviceGetHandleByUUID.assert_called_once_with(fakes[2].uuid)
    assert device.read().energy_j == pytest.approx(counter_j(fakes[2]))
    device.close()


def test_open_with_a_given_handle_fills_in_identity() -> None:
    fakes = gpus(3)
    nvml = make_nvml(fakes)
    device = NvidiaGPU(0, nvml=nvml, handle=fakes[2])
    device.open()
    assert (device.name, device.physical_index, device.uuid) == ("gpu0", 2, fakes[2].uuid)
    assert f"NVML index 2, {fakes[2].uuid}" in device.detail()
    assert device.read().energy_j == pytest.approx(counter_j(fakes[2]))
    nvml.nvmlDeviceGetHandleByIndex.assert_not_called()
    device.close()


def test_mig_device_handle_is_refused_with_advice() -> None:
    gpu = NvmlGPU(uuid="MIG-abc", is_mig_handle=1)
    nvml = make_nvml([gpu])
    device = NvidiaGPU(0, nvml=nvml, handle=gpu)
    with pytest.raises(MIGNotSupportedError, match="CUDA_VISIBLE_DEVICES"):
        device.open()
    nvml.nvmlDeviceGetHandleByIndex.assert_not_called()
    assert nvml.nvmlInit.call_count == nvml.nvmlShutdown.call_count == 1


@pytest.mark.parametrize(
    ("code", "error", "hint"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, DeviceUnavailableError, "not found"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, DeviceUnavailableError, "not found"),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, DriverMismatchError, "reboot"),
        (pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, DriverMismatchError, "reinstall"),
        (pynvml.NVML_ERROR_NO_PERMISSION, DeviceError, "/dev/nvidia"),
        (pynvml.NVML_ERROR_UNKNOWN, DeviceError, "Unknown"),
    ],
)
def test_nvml_init_errors_become_greenai_errors(
    code: int, error: type[DeviceError], hint: str
) -> None:
    nvml = make_nvml(gpus(1), init_error=code)
    with pytest.raises(DeviceError) as caught:
        NvidiaGPU(0, nvml=nvml).open()
    assert type(caught.value) is error
    assert hint in str(caught.value)
    nvml.nvmlShutdown.assert_not_called()  # nothing to balance: init failed


def test_lost_gpu_while_opening_is_a_read_error_and_releases_nvml() -> None:
    nvml = make_nvml(gpus(1))
    nvml.nvmlDeviceGetHandleByIndex.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
    with pytest.raises(DeviceReadError, match="Xid"):
        NvidiaGPU(0, nvml=nvml).open()
    assert nvml.nvmlShutdown.call_count == 1


def test_missing_pynvml_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(DeviceUnavailableError, match="pip install nvidia-ml-py"):
        NvidiaGPU(0).open()


# --- CUDA_VISIBLE_DEVICES --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("-1", []),
        ("NoDevFiles", []),
        ("1,0", [1, 0]),
        (" 2 , GPU-ab12", [2, "GPU-ab12"]),
        ("0,-1,1", [0]),
        ("0,foo,1", [0]),
        ("1gpu,3", [1, 3]),
    ],
)
def test_visible_gpu_selectors(value: str | None, expected: list[str | int] | None) -> None:
    environ = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert visible_gpu_selectors(environ) == expected


@pytest.mark.parametrize("value", ["MIG-aaaa", "MIG-GPU-1111aaaa-0000/1/0"])
def test_a_mig_instance_is_its_sm_share_of_the_parent_labelled_an_estimate(value: str) -> None:
    from greenai.devices.mig import MIG_RELATIVE_UNCERTAINTY, MigInstance

    nvml, fakes = mig_nvml(SMS)
    environ = {"CUDA_VISIBLE_DEVICES": value}
    assert visible_gpu_selectors(environ) == [value]
    (device,) = discover_gpus(nvml=nvml, environ=environ)
    assert isinstance(device, MigInstance)
    assert (device.name, device.uuid, device.kind) == ("gpu0", "MIG-aaaa-3g", "gpu")
    assert device.method == "model"  # an apportioned estimate, never shown as measured
    assert device.relative_uncertainty == MIG_RELATIVE_UNCERTAINTY
    assert device.share == pytest.approx(60 / 132)
    device.open()
    start = device.read()
    fakes[1].energy_mj += 132_000  # +132 J on the whole GPU
    reading = device.read()
    assert reading.energy_j - start.energy_j == pytest.approx(60.0)
    assert reading.power_w == pytest.approx(450.0 * 60 / 132)
    assert "60 of 132 SMs" in device.detail()
    device.close()


def test_a_mig_instance_nvml_does_not_list_is_refused() -> None:
    nvml, _ = mig_nvml(SMS)
    with pytest.raises(MIGNotSupportedError, match="does not list"):
        discover_gpus(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "MIG-cccc"})


def test_a_mig_instance_without_sm_counts_is_refused() -> None:
    nvml, _ = mig_nvml({**SMS, "MIG-aaaa-3g": 0})
    with pytest.raises(MIGNotSupportedError, match="SMs"):
        discover_gpus(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "MIG-aaaa"})


def physical_uuids(devices: list[NvidiaGPU]) -> list[tuple[str, str | None]]:
    return [(d.name, d.uuid) for d in devices]


def test_discover_without_cuda_visible_devices_returns_all_gpus_unopened() -> None:
    fakes = gpus(3)
    nvml = make_nvml(fakes)
    devices = discover_gpus(nvml=nvml, environ={})
    assert physical_uuids(devices) == [(f"gpu{i}", g.uuid) for i, g in enumerate(fakes)]
    assert [d.physical_index for d in devices] == [0, 1, 2]
    assert nvml.nvmlInit.call_count == nvml.nvmlShutdown.call_count == 1


def test_discover_with_empty_cuda_visible_devices_finds_nothing() -> None:
    nvml = make_nvml(gpus(2))
    assert discover_gpus(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": ""}) == []
    nvml.nvmlInit.assert_not_called()


def test_discover_follows_cuda_order() -> None:
    fakes = gpus(2)
    devices = discover_gpus(nvml=make_nvml(fakes), environ={"CUDA_VISIBLE_DEVICES": "1,0"})
    assert physical_uuids(devices) == [("gpu0", fakes[1].uuid), ("gpu1", fakes[0].uuid)]
    gpu0 = devices[0]
    gpu0.open()
    assert gpu0.read().energy_j == pytest.approx(counter_j(fakes[1]))
    gpu0.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("GPU-2222", [2]),  # a unique prefix
        ("GPU-1111aaaa-0000,GPU-0", [1, 0]),
        ("GPU-1111,GPU-,GPU-0", [1]),  # "GPU-" is ambiguous: parsing stops there
        ("GPU-1111,GPU-9,GPU-0", [1]),  # unknown UUID stops too
        ("0,7,1", [0]),  # out of range
        ("1,GPU-1111", []),  # the same GPU twice: CUDA shows none
    ],
)
def test_discover_resolves_entries_like_cuda(value: str, expected: list[int]) -> None:
    fakes = gpus(3)
    devices = discover_gpus(nvml=make_nvml(fakes), environ={"CUDA_VISIBLE_DEVICES": value})
    assert [d.physical_index for d in devices] == expected
    assert physical_uuids(devices) == [(f"gpu{i}", fakes[p].uuid) for i, p in enumerate(expected)]


def test_discover_without_pynvml_returns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert discover_gpus(environ={}) == []


def test_discover_imports_pynvml_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = make_nvml(gpus(2))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert [d.name for d in discover_gpus(environ={})] == ["gpu0", "gpu1"]
    nvml.nvmlInit.assert_called_once()


@pytest.mark.parametrize(
    "code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED]
)
def test_discover_without_driver_returns_nothing_quietly(code: int) -> None:
    assert discover_gpus(nvml=make_nvml(gpus(1), init_error=code), environ={}) == []


def test_discover_with_driver_mismatch_warns_once() -> None:
    nvml = make_nvml(gpus(2), init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert discover_gpus(nvml=nvml, environ={}) == []
    assert [w.category for w in caught] == [DeviceFailureWarning]
    assert "reboot" in str(caught[0].message)


def test_discover_warns_once_about_gpus_in_mig_mode() -> None:
    fakes = gpus(3)
    fakes[0].mig_mode = pynvml.NVML_DEVICE_MIG_ENABLE
    fakes[2].mig_mode = pynvml.NVML_DEVICE_MIG_ENABLE
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        devices = discover_gpus(nvml=make_nvml(fakes), environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert len(devices) == 2
    assert [w.category for w in caught] == [MeasurementWarning]
    message = str(caught[0].message)
    assert fakes[0].uuid in message
    assert fakes[1].uuid not in message
    assert fakes[2].uuid not in message  # not visible
