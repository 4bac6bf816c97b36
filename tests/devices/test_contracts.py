"""The Device contract, checked over every kind of device greenai has (psutil's test_contracts).

Each kind is made here without hardware (a fake sysfs tree, a fake clock). A new device
class anywhere in greenai fails :func:`test_every_device_kind_is_under_contract` until it
has a maker below: a new kind is its module, its own tests, and one line here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

import greenai.devices
from greenai.devices.base import Capabilities, Device, Reading
from greenai.testing import FakeClock, FakeGPU


def _rapl(tmp_path: Path) -> Device:
    from greenai.devices.rapl import RaplDomain

    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("1000000\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    return RaplDomain(zone, "cpu0-package", "cpu")


def _cpu_model(tmp_path: Path) -> Device:
    from greenai.devices.cpu_model import CpuModel

    return CpuModel(tdp_w=100.0, cpu_name="Test CPU")


def _memory_model(tmp_path: Path) -> Device:
    from greenai.devices.memory_model import MemoryModel

    return MemoryModel(used_bytes=lambda: 8e9)


def _fake_gpu(tmp_path: Path) -> Device:
    return FakeGPU(clock=FakeClock(), seed=1)


def _attributed(tmp_path: Path) -> Device:
    import os

    from greenai.devices.attribution import apply_scope

    (device,) = apply_scope([_cpu_model(tmp_path)], "process", pid=os.getpid())
    return device


MAKERS: dict[str, Callable[[Path], Device] | None] = {
    "RaplDomain": _rapl,
    "CpuModel": _cpu_model,
    "MemoryModel": _memory_model,
    "FakeGPU": _fake_gpu,
    "Attributed": _attributed,
    # Need a vendor library (tests/devices/test_nvidia.py, test_amd.py, test_mig.py fake it),
    # or a recorded file (tests/test_testing.py):
    "NvidiaGPU": None,
    "AmdGPU": None,
    "LibraryGPU": None,
    "MigInstance": None,
    "ReplayDevice": None,
}


def _device_classes() -> set[str]:
    for info in pkgutil.iter_modules(greenai.devices.__path__, "greenai.devices."):
        importlib.import_module(info.name)
    importlib.import_module("greenai.testing")
    seen: set[str] = set()
    todo: list[type[Device]] = [Device]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("greenai.") and sub.__name__ not in seen:
                seen.add(sub.__name__)
                todo.append(sub)
    return seen


def test_every_device_kind_is_under_contract() -> None:
    missing = sorted(_device_classes() - set(MAKERS))
    assert not missing, f"add a maker to MAKERS for {missing}"


@pytest.mark.parametrize("kind", [k for k, make in MAKERS.items() if make is not None])
def test_a_device_keeps_the_contract(kind: str, tmp_path: Path) -> None:
    make = MAKERS[kind]
    assert make is not None
    device = make(tmp_path)
    assert device.kind in ("gpu", "cpu", "dram", "other") or isinstance(device.kind, str)
    assert device.method in ("counter", "power", "model")
    assert device.update_period_s > 0
    device.open()
    try:
        caps = device.capabilities()
        assert isinstance(caps, Capabilities)
        assert caps.counter == (device.method == "counter")
        assert caps.native_loop == (device.loop_source() is not None)
        reading = device.read()
        assert isinstance(reading, Reading)
        assert set(device.describe()) >= {"name", "kind", "method", "scope", "detail"}
        assert device.open_count == 1
    finally:
        device.close()
    assert device.open_count == 0
    device.close()  # closing twice is harmless
    assert device.open_count == 0


def test_a_rapl_zone_declares_the_native_loop_and_a_fake_gpu_does_not(tmp_path: Path) -> None:
    zone = _rapl(tmp_path)
    source = zone.loop_source()
    assert source is not None and source.kind == "rapl" and source.path.endswith("energy_uj")
    assert zone.capabilities().native_loop and zone.capabilities().counter
    assert not _fake_gpu(tmp_path).capabilities().native_loop
