from __future__ import annotations

import contextlib
import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from greenai.devices import cpu_model
from greenai.devices.cgroup import CpuAllowance
from greenai.devices.cpu_model import DEFAULT_W_PER_CPU, CpuModel, CpuUtilisation, lookup_tdp_w
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
    cpu_model.tdp_table.cache_clear()
    cpu_model.lookup_tdp_w.cache_clear()
    yield
    cpu_model.tdp_table.cache_clear()
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
    model = CpuModel(
        tdp_w=200.0,
        cpu_percent=lambda: next(utilisations),
        sockets=2,
        threads_per_socket=4,
        usable_cpus=8,
    )
    model.open()
    assert [model.read().power_w for _ in range(4)] == pytest.approx([40.0, 220.0, 400.0, 130.0])
    assert model.method == "model"
    assert model.relative_uncertainty >= 0.3
    assert "given" in model.detail()


def test_idle_fraction_and_clamping() -> None:
    values = iter([0.0, 100.0, 150.0, -5.0])
    model = CpuModel(
        tdp_w=100.0,
        cpu_percent=lambda: next(values),
        idle_fraction=0.5,
        sockets=1,
        threads_per_socket=2,
        usable_cpus=2,
    )
    model.open()
    assert [model.read().power_w for _ in range(3)] == pytest.approx([100.0, 100.0, 50.0])


def write_cpuinfo(
    path: Path, name: str, sockets: int, siblings: int, *, virtual: bool = False
) -> None:
    flags = "fpu sse2 avx2" + (" hypervisor" if virtual else "")
    blocks = [
        f"processor\t: {i}\nmodel name\t: {name}\nphysical id\t: {i // siblings}\n"
        f"siblings\t: {siblings}\nflags\t\t: {flags}\n"
        for i in range(sockets * siblings)
    ]
    path.mkdir(parents=True, exist_ok=True)
    (path / "cpuinfo").write_text("\n".join(blocks))


def test_tdp_sockets_and_threads_from_cpuinfo(tmp_path: Path) -> None:
    write_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", sockets=2, siblings=4)
    model = CpuModel(cpu_percent=lambda: 100.0, procfs_path=tmp_path, usable_cpus=8)
    model.open()
    tdp_w = codecarbon_rows()["AMD EPYC 7763"]
    assert (model.cpu_name, model.sockets, model.threads_per_socket, model.tdp_w) == (
        "AMD EPYC 7763 64-Core Processor",
        2,
        4,
        tdp_w,
    )
    assert model.read().power_w == pytest.approx(2 * tdp_w)
    assert "'AMD EPYC 7763'" in model.detail()


@pytest.mark.parametrize("usable_cpus", [1.0, 1.5, 3.0])
def test_power_scales_with_the_usable_cpus(tmp_path: Path, usable_cpus: float) -> None:
    # One socket of 4 threads; the process may use only part of it (affinity or quota).
    write_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", sockets=1, siblings=4)
    model = CpuModel(cpu_percent=lambda: 100.0, procfs_path=tmp_path, usable_cpus=usable_cpus)
    model.open()
    tdp_w = codecarbon_rows()["AMD EPYC 7763"]
    assert model.read().power_w == pytest.approx(tdp_w * usable_cpus / 4)
    assert f"{usable_cpus:g} usable CPU(s)" in model.detail()


def test_vm_does_not_charge_the_host_socket(tmp_path: Path) -> None:
    # A 2-vCPU VM on a known host CPU: cpuinfo describes the VM, not the host's socket, so
    # the table TDP cannot be divided; codecarbon's 4 W per thread stands in.
    write_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", 1, 2, virtual=True)
    model = CpuModel(cpu_percent=lambda: 100.0, procfs_path=tmp_path, usable_cpus=2)
    model.open()
    assert model.read().power_w == pytest.approx(2 * DEFAULT_W_PER_CPU)
    assert "host socket" in model.detail()
    model.close()
    model.open()  # a second open resolves nothing differently
    assert model.read().power_w == pytest.approx(2 * DEFAULT_W_PER_CPU)
    # Told the host's threads per socket, the table applies.
    told = CpuModel(
        cpu_percent=lambda: 100.0, procfs_path=tmp_path, usable_cpus=2, threads_per_socket=128
    )
    told.open()
    assert told.read().power_w == pytest.approx(codecarbon_rows()["AMD EPYC 7763"] * 2 / 128)


def test_unknown_cpu_uses_four_watts_per_thread() -> None:
    model = CpuModel(
        cpu_name="Mystery Chip 9000x",
        cpu_percent=lambda: 100.0,
        sockets=1,
        threads_per_socket=16,
        usable_cpus=16,
    )
    model.open()
    assert model.watts_per_cpu == DEFAULT_W_PER_CPU == 4.0
    assert model.read().power_w == pytest.approx(64.0)
    assert "CPU not in table" in model.detail()


@pytest.mark.usefixtures("fresh_cache")
def test_without_codecarbon_uses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_model, "codecarbon_cpu_power_csv", lambda: None)
    assert lookup_tdp_w("AMD EPYC 7763 64-Core Processor") is None
    model = CpuModel(cpu_name="AMD EPYC 7763 64-Core Processor", cpu_percent=lambda: 0.0, sockets=1)
    model.open()
    assert model.watts_per_cpu == DEFAULT_W_PER_CPU


def test_usable_cpus_come_from_the_cgroup_quota(tmp_path: Path) -> None:
    write_cpuinfo(tmp_path / "proc", "Mystery Chip 9000x", sockets=1, siblings=8)
    (tmp_path / "proc" / "self").mkdir()
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/job\n")
    cg = tmp_path / "cgroup"
    (cg / "job").mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory\n")
    (cg / "job" / "cpu.max").write_text("50000 100000\n")
    model = CpuModel(cpu_percent=lambda: 100.0, procfs_path=tmp_path / "proc", cgroup_root=cg)
    model.open()
    assert model.usable_cpus == 0.5
    assert model.read().power_w == pytest.approx(0.5 * DEFAULT_W_PER_CPU)
    assert "cgroup v2 CPU quota: 0.5" in model.detail()


class FakeTimes(NamedTuple):
    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    steal: float
    guest: float


def test_measured_utilisation_covers_only_the_affinity_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CPU 0 is ours and half busy; CPU 1 (another tenant's) is fully busy.
    calls = iter(
        [
            [FakeTimes(0, 0, 0, 0, 0, 0, 0), FakeTimes(0, 0, 0, 0, 0, 0, 0)],
            [FakeTimes(4, 0, 1, 4, 1, 0, 2), FakeTimes(10, 0, 0, 0, 0, 0, 0)],
        ]
    )
    monkeypatch.setattr(cpu_model.psutil, "cpu_times", lambda percpu: next(calls))
    measure = CpuUtilisation(CpuAllowance(usable_cpus=1.0, affinity=(0,)))
    assert measure() == 0.0  # primes
    # busy = user + system (guest is inside user); idle and iowait are not busy.
    assert measure() == pytest.approx(50.0)


def test_measured_utilisation_under_a_quota_reads_the_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stat = tmp_path / "cpu.stat"
    allowance = CpuAllowance(
        usable_cpus=2.0, affinity=(0, 1, 2, 3), quota_cpus=2.0, usage_file=stat
    )
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(cpu_model.time, "monotonic", lambda: next(clock))
    measure = CpuUtilisation(allowance)
    stat.write_text("usage_usec 1000000\nuser_usec 900000\n")
    assert measure() == 0.0
    stat.write_text("usage_usec 6000000\nuser_usec 5000000\n")
    assert measure() == pytest.approx(25.0)  # 5 CPU-s of 2 CPUs * 10 s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tdp_w": 0.0},
        {"tdp_w": -10.0},
        {"idle_fraction": -0.1},
        {"idle_fraction": 1.5},
        {"sockets": 0},
        {"threads_per_socket": 0},
        {"usable_cpus": 0.0},
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


def test_constructor_does_no_io_and_default_source_is_measured(tmp_path: Path) -> None:
    model = CpuModel(procfs_path=tmp_path / "absent")
    assert model.full_load_w is None
    assert "open()" in model.detail()
    model.open()  # no cpuinfo: platform.processor() or the default, never a crash
    power_w = model.read().power_w
    full_w = model.full_load_w
    assert full_w is not None and model.sockets == 1
    assert power_w is not None and 0.1 * full_w <= power_w <= full_w
