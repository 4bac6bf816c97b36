from __future__ import annotations

from pathlib import Path
from unittest.mock import create_autospec

import pynvml
import pytest

from greenai.devices import discover
from greenai.devices.cpu_model import CpuModel
from greenai.devices.memory_model import MemoryModel
from greenai.errors import MeasurementWarning


def make_package_zone(root: Path) -> None:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("1000\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")


def no_driver_nvml() -> object:
    nvml = create_autospec(pynvml)
    nvml.NVMLError = pynvml.NVMLError
    nvml.NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    nvml.nvmlInit.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    return nvml


def test_nothing_found_is_an_empty_list_not_a_crash(tmp_path: Path) -> None:
    found = discover(models=False, powercap_root=tmp_path / "absent", nvml=no_driver_nvml())
    assert found == []


def test_without_rapl_the_cpu_and_memory_models_stand_in(tmp_path: Path) -> None:
    found = discover(gpus=False, powercap_root=tmp_path)
    assert [type(d) for d in found] == [CpuModel, MemoryModel]
    assert {d.method for d in found} == {"model"}


def test_readable_rapl_package_replaces_the_cpu_model_only(tmp_path: Path) -> None:
    make_package_zone(tmp_path)
    found = discover(gpus=False, powercap_root=tmp_path)
    assert [d.name for d in found] == ["cpu0-package", "memory-model"]
    assert found[0].method == "counter"


def test_rapl_zone_without_range_falls_back_to_the_model(tmp_path: Path) -> None:
    make_package_zone(tmp_path)
    (tmp_path / "intel-rapl:0" / "max_energy_range_uj").unlink()
    with pytest.warns(MeasurementWarning, match="max_energy_range_uj"):
        found = discover(gpus=False, powercap_root=tmp_path)
    assert [type(d) for d in found] == [CpuModel, MemoryModel]
