from __future__ import annotations

from pathlib import Path

import pytest

from greenai.devices.memory_model import MemoryModel
from greenai.errors import ConfigError, DeviceReadError

GIB = 1024**3


def test_default_is_three_watts_per_eight_gib() -> None:
    model = MemoryModel(used_bytes=lambda: 16 * GIB)
    assert model.read().power_w == pytest.approx(6.0)
    assert model.read().energy_j is None
    assert (model.kind, model.method) == ("dram", "model")
    assert model.relative_uncertainty >= 0.3


@pytest.mark.parametrize(("used", "expected_w"), [(0, 0.0), (GIB // 2, 0.5), (10 * GIB, 10.0)])
def test_formula(used: int, expected_w: float) -> None:
    model = MemoryModel(watts_per_gb=1.0, used_bytes=lambda: used)
    assert model.read().power_w == pytest.approx(expected_w)


def test_real_psutil_source() -> None:
    power_w = MemoryModel().read().power_w
    assert power_w is not None and power_w > 0


@pytest.mark.parametrize("watts_per_gb", [0.0, -1.0])
def test_bad_watts_per_gb(watts_per_gb: float) -> None:
    with pytest.raises(ConfigError, match="watts_per_gb"):
        MemoryModel(watts_per_gb=watts_per_gb)


def test_read_failure_is_read_error() -> None:
    def broken() -> float:
        raise OSError("boom")

    with pytest.raises(DeviceReadError):
        MemoryModel(used_bytes=broken).read()


def test_under_a_cgroup_limit_the_cgroup_memory_is_charged(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    job = root / "job"
    job.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    (job / "memory.max").write_text(f"{8 * GIB}\n")
    (job / "memory.current").write_text(f"{5 * GIB}\n")
    (job / "memory.stat").write_text(f"inactive_file {GIB}\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/job\n")
    model = MemoryModel(watts_per_gb=1.0, cgroup_root=root, procfs_path=proc)
    model.open()
    assert model.read().power_w == pytest.approx(4.0)
    assert "cgroup v2" in model.detail() and "8 GiB limit" in model.detail()
    (job / "memory.current").unlink()
    with pytest.raises(DeviceReadError):
        model.read()


def test_without_a_limit_the_machine_memory_is_charged(tmp_path: Path) -> None:
    model = MemoryModel(cgroup_root=tmp_path / "absent", procfs_path=tmp_path / "absent")
    model.open()
    assert "machine memory in use" in model.detail()
    power_w = model.read().power_w
    assert power_w is not None and power_w > 0
