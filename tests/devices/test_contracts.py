"""The Device contract, checked over every kind of device greenai has (psutil's test_contracts).

Each kind is made here without hardware: a fake sysfs tree, a fake clock, the fake vendor
libraries of :mod:`tests.devices.fakes`. A new concrete device class anywhere in greenai
fails :func:`test_every_device_kind_is_under_contract` until it has a maker below: a new
kind is its module, its own tests, and one line here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import greenai
from greenai.devices.base import Capabilities, Device, Reading, ShareInputs
from greenai.testing import FakeClock, FakeGPU
from tests.devices.fakes import (
    SMS,
    FakeAmdGPU,
    NvmlGPU,
    make_amdsmi,
    make_nvml,
    make_zone,
    mig_nvml,
)


def _rapl(tmp_path: Path) -> Device:
    from greenai.devices.rapl import RaplDomain

    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1_000_000)
    return RaplDomain(zone, "cpu0-package", "cpu")


def _nvidia(tmp_path: Path) -> Device:
    from greenai.devices.nvidia import NvidiaGPU

    return NvidiaGPU(0, nvml=make_nvml([NvmlGPU(uuid="GPU-a")]))


def _amd(tmp_path: Path) -> Device:
    from greenai.devices.amd import AmdGPU

    return AmdGPU(0, amdsmi=make_amdsmi([FakeAmdGPU()]))


def _mig(tmp_path: Path) -> Device:
    from greenai.devices.nvidia import discover_gpus

    nvml, _ = mig_nvml(SMS)
    (device,) = discover_gpus(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "MIG-aaaa"})
    return device


def _replay(tmp_path: Path) -> Device:
    from greenai.testing import ReplayDevice

    path = tmp_path / "timeline.csv"
    path.write_text("t_s,device,counter_j,power_w\n0.0,gpu0,0.0,100.0\n1.0,gpu0,100.0,100.0\n")
    return ReplayDevice(path, clock=FakeClock())


def _cpu_model(tmp_path: Path) -> Device:
    from greenai.devices.cpu_model import CpuModel

    return CpuModel(tdp_w=100.0, cpu_name="Test CPU")


def _memory_model(tmp_path: Path) -> Device:
    from greenai.devices.memory_model import MemoryModel

    return MemoryModel(used_bytes=lambda: 8e9)


def _fake_gpu(tmp_path: Path) -> Device:
    return FakeGPU(clock=FakeClock(), seed=1)


def _attributed(tmp_path: Path) -> Device:
    from greenai.devices.attribution import apply_scope

    (device,) = apply_scope([_cpu_model(tmp_path)], "process", pid=os.getpid())
    return device


MAKERS: dict[str, Callable[[Path], Device]] = {
    "RaplDomain": _rapl,
    "CpuModel": _cpu_model,
    "MemoryModel": _memory_model,
    "NvidiaGPU": _nvidia,
    "AmdGPU": _amd,
    "MigInstance": _mig,
    "FakeGPU": _fake_gpu,
    "ReplayDevice": _replay,
    "Attributed": _attributed,
}


def _device_classes() -> dict[str, type[Device]]:
    """Every Device subclass defined in greenai's source, by name.

    Found in the source, not among the classes imported so far, so that none hides in a
    module nothing here imports.
    """
    root = Path(greenai.__file__).parent
    bases: dict[tuple[str, str], set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(("greenai", *parts[: -1 if parts[-1] == "__init__" else None]))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases[(module, node.name)] = {ast.unparse(b).split(".")[-1] for b in node.bases}
    found: dict[str, str] = {"Device": "greenai.devices.base"}
    grown = True
    while grown:
        grown = False
        for (module, name), names in bases.items():
            if name not in found and names & set(found):
                found[name], grown = module, True
    del found["Device"]
    return {name: getattr(importlib.import_module(module), name) for name, module in found.items()}


def test_every_device_kind_is_under_contract() -> None:
    classes = _device_classes()
    for name, cls in classes.items():
        assert issubclass(cls, Device), name
    concrete = {name for name, cls in classes.items() if not inspect.isabstract(cls)}
    assert "LibraryGPU" in classes and "LibraryGPU" not in concrete  # a base: its kinds have makers
    missing = sorted(concrete - set(MAKERS))
    assert not missing, f"add a maker to MAKERS for {missing}"
    stale = sorted(set(MAKERS) - concrete)
    assert not stale, f"MAKERS names classes greenai no longer has: {stale}"


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
        inputs = device.share_inputs()
        assert isinstance(inputs, ShareInputs)
        assert caps.per_process_gpu == (inputs.nvml is not None)
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
