from __future__ import annotations

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
