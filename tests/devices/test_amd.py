from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from greenai.devices import discover
from greenai.devices.amd import AmdGPU, amd_gpu_info, discover_amd_gpus, visible_amd_selectors
from greenai.errors import (
    DeviceError,
    DeviceFailureWarning,
    DeviceReadError,
    DeviceUnavailableError,
    MeasurementWarning,
)
from greenai.flops import peak_flops_per_s
from greenai.testing import FakeClock
from tests.devices.fakes import (
    BUSY,
    DRIVER_NOT_LOADED,
    NO_PERM,
    NOT_SUPPORTED,
    FakeAmdGPU,
    make_amdsmi,
)

pytestmark = pytest.mark.filterwarnings("error")


def four_gpus() -> list[FakeAmdGPU]:
    return [FakeAmdGPU(serial=f"0x{i:016X}", uuid=f"uuid-{i}") for i in range(4)]


def test_counter_times_resolution_is_energy_in_joules_and_socket_power_in_watts() -> None:
    gpu = FakeAmdGPU(energy_accumulator=2_000_000, counter_resolution=15.3)
    device = AmdGPU(0, amdsmi=make_amdsmi([gpu]))
    device.open()
    assert device.method == "counter"
    assert device.counter_resolution_j == pytest.approx(15.3e-6)
    reading = device.read()
    assert reading.energy_j == pytest.approx(2_000_000 * 15.3e-6)  # 30.6 J
    assert reading.power_w == 750.0
    gpu.energy_accumulator += 1_000_000
    assert device.read().energy_j == pytest.approx(3_000_000 * 15.3e-6)
    device.close()


def test_mi200_without_current_power_falls_back_to_the_average_with_more_uncertainty() -> None:
    gpu = FakeAmdGPU(market_name="AMD Instinct MI210", current_socket_power="N/A")
    gpu.average_socket_power = 94
    device = AmdGPU(0, amdsmi=make_amdsmi([gpu]))
    device.open()
    assert device.power_source == "average"
    assert device.read().power_w == 94.0
    assert device.relative_uncertainty > AmdGPU(0).relative_uncertainty
    assert "average_socket_power" in device.detail()


def test_without_energy_counter_the_method_is_power() -> None:
    device = AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU(energy_error=NOT_SUPPORTED)]))
    device.open()
    assert device.method == "power"
    assert device.read().energy_j is None


def test_unsupported_power_info_leaves_the_counter_and_a_zero_resolution_no_counter() -> None:
    device = AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU(power_error=NOT_SUPPORTED)]))
    device.open()
    assert (device.method, device.power_source) == ("counter", None)
    assert device.read().power_w is None
    broken = AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU(counter_resolution=0.0)]))
    broken.open()
    assert broken.method == "power" and broken.read().energy_j is None


def test_neither_counter_nor_power_is_unavailable_and_shuts_amdsmi_down() -> None:
    gpu = FakeAmdGPU(energy_error=NOT_SUPPORTED, current_socket_power="N/A")
    fake = make_amdsmi([gpu])
    with pytest.raises(DeviceUnavailableError, match="neither"):
        AmdGPU(0, amdsmi=fake).open()
    assert fake.calls == ["init", "shut_down"]


def test_errors_are_mapped_once_with_hints() -> None:
    with pytest.raises(DeviceUnavailableError, match="amdgpu kernel driver"):
        AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU()], init_error=DRIVER_NOT_LOADED)).open()
    with pytest.raises(DeviceError, match="render") as caught:
        AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU(energy_error=NO_PERM)])).open()
    assert not isinstance(caught.value, DeviceUnavailableError)
    gpu = FakeAmdGPU()
    device = AmdGPU(0, amdsmi=make_amdsmi([gpu]))
    device.open()
    gpu.power_error = BUSY
    with pytest.raises(DeviceReadError, match="read failed"):
        device.read()
    device.close()


def test_a_power_field_turning_n_a_is_a_read_error_not_a_zero() -> None:
    gpu = FakeAmdGPU()
    device = AmdGPU(0, amdsmi=make_amdsmi([gpu]))
    device.open()
    gpu.current_socket_power = "N/A"
    with pytest.raises(DeviceReadError, match="N/A"):
        device.read()


def test_read_before_open_and_close_twice() -> None:
    fake = make_amdsmi([FakeAmdGPU()])
    device = AmdGPU(0, amdsmi=fake)
    with pytest.raises(DeviceReadError):
        device.read()
    device.open()
    device.close()
    device.close()
    assert fake.calls == ["init", "shut_down"]


def test_mi250x_second_gcd_reading_zero_warns_and_the_gcd_has_a_peak() -> None:
    gcd = FakeAmdGPU(market_name="AMD Instinct MI250X/MI250", num_compute_units=110)
    gcd.current_socket_power, gcd.average_socket_power = "N/A", 0
    device = AmdGPU(1, amdsmi=make_amdsmi([FakeAmdGPU(), gcd]))
    with pytest.warns(MeasurementWarning, match="first GCD"):
        device.open()
    assert device.model == "AMD Instinct MI250X (one GCD)"
    # AMD Instinct MI250X data sheet: 383 TFLOPs FP16/BF16 per card of two GCDs.
    assert peak_flops_per_s(device.model, "bf16") == pytest.approx(383e12 / 2)
    mi250 = FakeAmdGPU(market_name="AMD Instinct MI250X/MI250", num_compute_units=104)
    other = AmdGPU(0, amdsmi=make_amdsmi([mi250]))
    other.open()
    assert other.model == "AMD Instinct MI250 (one GCD)"
    assert peak_flops_per_s(other.model, "bf16") is None  # not in the table: no guess


def test_mi300x_peak_from_its_data_sheet() -> None:
    device = AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU()]))
    device.open()
    # AMD Instinct MI300X data sheet: 1307.4 TFLOPs dense FP16/BF16, 2614.9 FP8.
    assert peak_flops_per_s(device.model or "", "bf16") == pytest.approx(1307.4e12)
    assert peak_flops_per_s(device.model or "", "fp8") == pytest.approx(2614.9e12)


def test_discovery_names_never_collide_with_nvidia() -> None:
    found = discover_amd_gpus(amdsmi=make_amdsmi(four_gpus()), environ={})
    assert [d.name for d in found] == ["amdgpu0", "amdgpu1", "amdgpu2", "amdgpu3"]
    assert all(not d.name.startswith("gpu") for d in found)
    assert [d.uuid for d in found] == ["uuid-0", "uuid-1", "uuid-2", "uuid-3"]


@pytest.mark.parametrize(
    ("environ", "physical"),
    [
        ({"HIP_VISIBLE_DEVICES": "2,0"}, [2, 0]),
        ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, [3]),
        ({"ROCR_VISIBLE_DEVICES": "GPU-0000000000000002,0"}, [2, 0]),
        ({"ROCR_VISIBLE_DEVICES": "3,9,1"}, [3]),  # an unknown entry ends the list
        ({"CUDA_VISIBLE_DEVICES": "1"}, [1]),  # HIP reads it when HIP_VISIBLE_DEVICES is unset
        ({"HIP_VISIBLE_DEVICES": "0", "CUDA_VISIBLE_DEVICES": "3"}, [0]),
        ({"HIP_VISIBLE_DEVICES": ""}, []),
        ({"ROCR_VISIBLE_DEVICES": "-1"}, []),
    ],
)
def test_discovery_honours_rocr_then_hip(environ: dict[str, str], physical: list[int]) -> None:
    found = discover_amd_gpus(amdsmi=make_amdsmi(four_gpus()), environ=environ)
    assert [d.physical_index for d in found] == physical
    assert [d.name for d in found] == [f"amdgpu{i}" for i in range(len(physical))]


def test_visible_selectors_unset_means_all() -> None:
    assert visible_amd_selectors({}) == (None, None)


def test_discovery_without_amdsmi_or_driver_is_empty_and_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # import amdsmi raises ImportError
    assert discover_amd_gpus(environ={}) == []
    assert amd_gpu_info() == ([], None)
    no_driver = make_amdsmi(four_gpus(), init_error=DRIVER_NOT_LOADED)
    assert discover_amd_gpus(amdsmi=no_driver, environ={}) == []


def test_discovery_warns_once_on_other_failures() -> None:
    with pytest.warns(DeviceFailureWarning, match="render"):
        found = discover_amd_gpus(amdsmi=make_amdsmi([], init_error=NO_PERM), environ={})
    assert found == []


def test_discover_includes_amd_gpus_after_nvidia(tmp_path: Any) -> None:
    found = discover(
        rapl=False, models=False, amdsmi=make_amdsmi(four_gpus()[:2]), environ={}, nvml=None
    )
    assert [d.name for d in found if isinstance(d, AmdGPU)] == ["amdgpu0", "amdgpu1"]


def test_machine_identity_marks_amd_gpus() -> None:
    gpus, driver = amd_gpu_info(make_amdsmi(four_gpus()[:1]))
    assert driver == "6.8.5"
    assert gpus == [
        {
            "index": 0,
            "name": "amdgpu0",
            "model": "AMD Instinct MI300X",
            "uuid": "uuid-0",
            "vendor": "amd",
        }
    ]


def test_machine_fingerprint_tells_amd_gpus_apart() -> None:
    from greenai.bench.machine import machine_info

    def no_nvml() -> None:
        raise OSError("libnvidia-ml.so.1 not found")

    nvml: Any = types.SimpleNamespace(nvmlInit=no_nvml)
    with_amd = machine_info(nvml, make_amdsmi(four_gpus()[:1]))
    without = machine_info(nvml, make_amdsmi([], init_error=DRIVER_NOT_LOADED))
    assert [(g["vendor"], g["name"], g["driver"]) for g in with_amd["gpus"]] == [
        ("amd", "amdgpu0", "6.8.5")
    ]
    assert with_amd["gpu_model"] == "AMD Instinct MI300X"
    assert with_amd["fingerprint"] != without["fingerprint"]


def test_a_tracker_measures_the_energy_accumulator_as_a_counter_device() -> None:
    import greenai

    clock = FakeClock()
    gpu = FakeAmdGPU(counter_resolution=15.3)
    gpu.energy_accumulator = lambda: round(600.0 * clock.now() / 15.3e-6)  # a steady 600 W
    gpu.current_socket_power = 600
    with greenai.track("amd", devices=[AmdGPU(0, amdsmi=make_amdsmi([gpu]))], clock=clock) as job:
        clock.advance(10.0)
    result = job.result
    assert result is not None and result.energy_j is not None
    assert [(d.name, d.method) for d in result.devices] == [("amdgpu0", "counter")]
    assert abs(result.energy_j - 6000.0) <= max(result.uncertainty_j or 0.0, 1.0)
    assert result.energy_j == pytest.approx(6000.0, rel=0.02)
