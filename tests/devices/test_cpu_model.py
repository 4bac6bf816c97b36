from __future__ import annotations

import contextlib
import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenai.devices import cpu_model
from greenai.devices.cpu_model import DEFAULT_TDP_W, CpuModel, lookup_tdp_w
from greenai.errors import ConfigError, DeviceReadError


def codecarbon_rows() -> dict[str, float]:
    """Name -> TDP of codecarbon's table, read independently of the module under test."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("codecarbon is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), "data/hardware/cpu_power.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    tdp_w = {}
    for row in rows:
        # The table has a few malformed rows, e.g. "27.29.5".
        with contextlib.suppress(ValueError):
            tdp_w[row["Name"]] = float(row["TDP"])
    return tdp_w


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    cpu_model._tdp_table.cache_clear()
    cpu_model.lookup_tdp_w.cache_clear()
    yield
    cpu_model._tdp_table.cache_clear()
    cpu_model.lookup_tdp_w.cache_clear()


@pytest.mark.parametrize(
    ("brand", "table_name"),
    [
        ("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.0GHz", "Intel Xeon Platinum 8480+"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "Intel Xeon E5-2680 v4"),
        ("Intel(R) Xeon(R) CPU E5-2680 0 @ 2.70GHz", "Intel Xeon E5-2680"),
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Intel Xeon Gold 6248R"),
        ("Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", "Intel Core i7-1185G7"),
        ("Intel(R) Core(TM)2 Quad CPU    Q6600  @ 2.40GHz", "Intel Core 2 Quad Q6600 (105W)"),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763"),
        ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Ryzen 9 5950X"),
        ("AMD Ryzen 7 5800H with Radeon Graphics", "AMD Ryzen 7 5800H"),
        ("AMD Ryzen 7 1700 Eight-Core Processor", "AMD Ryzen 7 1700"),  # also "... Processor"
        ("Apple M2 Pro", "Apple M2 Pro"),
    ],
)
def test_lookup_matches_real_codecarbon_rows(brand: str, table_name: str) -> None:
    rows = codecarbon_rows()
    assert lookup_tdp_w(brand) == (rows[table_name], table_name)


@pytest.mark.parametrize("brand", ["AMD EPYC", "QEMU Virtual CPU version 2.5+", "x86_64", ""])
def test_lookup_unknown_cpu(brand: str) -> None:
    assert lookup_tdp_w(brand) is None


def test_power_formula_at_several_utilisations() -> None:
    utilisations = iter([3.0, 0.0, 50.0, 100.0, 25.0])  # the first call only primes
    model = CpuModel(tdp_w=200.0, cpu_percent=lambda: next(utilisations), sockets=2)
    model.open()
    assert [model.read().power_w for _ in range(4)] == pytest.approx([40.0, 220.0, 400.0, 130.0])
    assert model.method == "model"
    assert model.relative_uncertainty >= 0.3
    assert "given" in model.detail()


def test_idle_fraction_and_clamping() -> None:
    values = iter([0.0, 100.0, 150.0, -5.0])
    model = CpuModel(tdp_w=100.0, cpu_percent=lambda: next(values), idle_fraction=0.5, sockets=1)
    model.open()
    assert [model.read().power_w for _ in range(3)] == pytest.approx([100.0, 100.0, 50.0])


def test_tdp_and_sockets_from_cpuinfo(tmp_path: Path) -> None:
    blocks = [
        f"processor\t: {i}\nmodel name\t: AMD EPYC 7763 64-Core Processor\nphysical id\t: {i % 2}\n"
        for i in range(4)
    ]
    (tmp_path / "cpuinfo").write_text("\n".join(blocks))
    model = CpuModel(cpu_percent=lambda: 100.0, procfs_path=tmp_path)
    model.open()
    tdp_w = codecarbon_rows()["AMD EPYC 7763"]
    assert (model.cpu_name, model.sockets, model.tdp_w) == (
        "AMD EPYC 7763 64-Core Processor",
        2,
        tdp_w,
    )
    assert model.read().power_w == pytest.approx(2 * tdp_w)
    assert "'AMD EPYC 7763'" in model.detail()


def test_unknown_cpu_uses_default_tdp() -> None:
    model = CpuModel(cpu_name="Mystery Chip 9000x", cpu_percent=lambda: 100.0, sockets=1)
    model.open()
    assert model.tdp_w == DEFAULT_TDP_W == 85.0
    assert model.read().power_w == pytest.approx(85.0)
    assert "default TDP, CPU not in table" in model.detail()


@pytest.mark.usefixtures("fresh_cache")
def test_without_codecarbon_uses_default_tdp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_model, "_cpu_power_csv", lambda: None)
    assert lookup_tdp_w("AMD EPYC 7763 64-Core Processor") is None
    model = CpuModel(cpu_name="AMD EPYC 7763 64-Core Processor", cpu_percent=lambda: 0.0, sockets=1)
    model.open()
    assert model.tdp_w == DEFAULT_TDP_W


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tdp_w": 0.0},
        {"tdp_w": -10.0},
        {"idle_fraction": -0.1},
        {"idle_fraction": 1.5},
        {"sockets": 0},
    ],
)
def test_bad_params(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        CpuModel(**kwargs)  # type: ignore[arg-type]


def test_utilisation_failure_is_read_error() -> None:
    def broken() -> float:
        raise OSError("no /proc/stat")

    model = CpuModel(tdp_w=100.0, cpu_name="x", cpu_percent=broken, sockets=1)
    with pytest.raises(DeviceReadError):
        model.read()


def test_constructor_does_no_io_and_default_source_is_psutil(tmp_path: Path) -> None:
    model = CpuModel(procfs_path=tmp_path / "absent")
    assert model.tdp_w is None
    assert "open()" in model.detail()
    model.open()  # no cpuinfo: platform.processor() or default TDP, never a crash
    power_w = model.read().power_w
    assert model.tdp_w is not None and model.sockets == 1
    assert power_w is not None and 0.1 * model.tdp_w <= power_w <= model.tdp_w
