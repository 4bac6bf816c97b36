from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from greenai.devices import rapl
from greenai.devices.rapl import RaplDomain, discover_rapl
from greenai.errors import (
    DeviceReadError,
    DeviceUnavailableError,
    MeasurementWarning,
    PermissionWarning,
)
from tests.devices.fakes import RANGE_UJ, make_zone, set_energy


def make_socket(root: Path, n: int) -> None:
    make_zone(root, f"intel-rapl:{n}", f"package-{n}")
    make_zone(root, f"intel-rapl:{n}:0", "core")
    make_zone(root, f"intel-rapl:{n}:1", "uncore")
    make_zone(root, f"intel-rapl:{n}:2", "dram")
    make_zone(root, f"intel-rapl-mmio:{n}", f"package-{n}")


def test_discovers_only_package_and_dram(tmp_path: Path) -> None:
    make_socket(tmp_path, 0)
    (tmp_path / "intel-rapl").mkdir()  # the control-type directory, not a zone
    domains = discover_rapl(tmp_path)
    assert [(d.name, d.kind, d.zone_dir.name) for d in domains] == [
        ("cpu0-package", "cpu", "intel-rapl:0"),
        ("cpu0-dram", "dram", "intel-rapl:0:2"),
    ]
    assert all(d.method == "counter" for d in domains)


def test_two_sockets_and_psys_ignored(tmp_path: Path) -> None:
    make_socket(tmp_path, 1)
    make_socket(tmp_path, 0)
    make_zone(tmp_path, "intel-rapl:2", "psys")
    names = [d.name for d in discover_rapl(tmp_path)]
    assert names == ["cpu0-package", "cpu0-dram", "cpu1-package", "cpu1-dram"]


def test_amd_package_without_dram(tmp_path: Path) -> None:
    # AMD Zen: the same intel-rapl names, a package zone and core sub-zones, no dram.
    make_zone(tmp_path, "intel-rapl:0", "package-0")
    make_zone(tmp_path, "intel-rapl:0:0", "core")
    assert [d.name for d in discover_rapl(tmp_path)] == ["cpu0-package"]


def test_missing_tree_gives_empty_list(tmp_path: Path) -> None:
    assert discover_rapl(tmp_path / "nope") == []
    assert discover_rapl(tmp_path) == []


def test_read_is_the_absolute_counter(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=5_000_000)
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    domain.open()
    assert domain.read().energy_j == pytest.approx(5.0)
    set_energy(zone, 7_500_000)
    reading = domain.read()
    assert reading.energy_j == pytest.approx(7.5)
    assert reading.power_w is None


def test_wraparound_is_undone(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=RANGE_UJ - 1_000_000)
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    domain.open()
    start_j = domain.read().energy_j
    assert start_j is not None
    set_energy(zone, RANGE_UJ)
    assert domain.read().energy_j == pytest.approx(start_j + 1.0)
    # The counter goes RANGE_UJ -> 0 -> ... 2_000_000: one wrap is RANGE_UJ + 1 µJ.
    set_energy(zone, 2_000_000)
    assert domain.read().energy_j == pytest.approx(start_j + 3.000001, abs=1e-6)
    # Nearly a whole range later the raw value is just below the previous one: one wrap.
    set_energy(zone, 1_000_000)
    expected_j = start_j + (RANGE_UJ + 2_000_002) * 1e-6
    assert domain.read().energy_j == pytest.approx(expected_j, abs=1e-6)


def test_overlapping_opens_share_one_running_total(tmp_path: Path) -> None:
    # Nested trackers given one zone: the inner open must not restart the outer's count,
    # and the inner close must leave the zone readable for the outer.
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=RANGE_UJ - 50_000_000)
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    domain.open()  # outer
    outer_origin = domain.read().energy_j
    set_energy(zone, RANGE_UJ - 50_000_000 + 100_000_000 - RANGE_UJ - 1)  # +100 J, one wrap
    domain.open()  # inner
    inner_origin = domain.read().energy_j
    set_energy(zone, 150_000_000 - 1)  # +100 J more
    inner_end = domain.read().energy_j
    domain.close()  # inner
    assert domain.open_count == 1
    set_energy(zone, 250_000_000 - 1)  # +100 J more
    outer_end = domain.read().energy_j
    domain.close()  # outer
    assert domain.open_count == 0
    assert outer_origin is not None and inner_origin is not None
    assert inner_end is not None and outer_end is not None
    assert inner_end - inner_origin == pytest.approx(100.0)
    assert outer_end - outer_origin == pytest.approx(300.0)


def test_reopen_after_close_stays_monotonic(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=9_000_000)
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    domain.open()
    first = domain.read().energy_j
    domain.close()
    set_energy(zone, 1_000_000)  # wrapped while nobody watched
    domain.open()
    second = domain.read().energy_j
    assert first is not None and second is not None and second > first


def test_missing_range_file_is_named_and_falls_back(tmp_path: Path) -> None:
    make_socket(tmp_path, 0)
    (tmp_path / "intel-rapl:0" / "max_energy_range_uj").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domains = discover_rapl(tmp_path)
    assert [d.name for d in domains] == ["cpu0-dram"]
    assert len(caught) == 1
    assert issubclass(caught[0].category, MeasurementWarning)
    message = str(caught[0].message)
    assert str(tmp_path / "intel-rapl:0" / "max_energy_range_uj") in message
    assert "model" in message and "vanished" not in message


def test_missing_range_file_at_open_is_named(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1)
    (zone / "max_energy_range_uj").unlink()
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    with pytest.raises(DeviceUnavailableError, match="max_energy_range_uj"):
        domain.open()
    assert domain.open_count == 0  # a failed open is not counted


def test_permission_denied_warns_once_and_excludes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_socket(tmp_path, 0)
    make_socket(tmp_path, 1)
    real_read_text = rapl._read_text

    def read_text(path: Path) -> str:
        # Root-only energy_uj on socket 1 (chmod cannot stop root, which runs the tests).
        if path.name == "energy_uj" and path.parent.name.startswith("intel-rapl:1"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path)

    monkeypatch.setattr(rapl, "_read_text", read_text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domains = discover_rapl(tmp_path)
    assert [d.name for d in domains] == ["cpu0-package", "cpu0-dram"]
    assert len(caught) == 1
    assert issubclass(caught[0].category, PermissionWarning)
    message = str(caught[0].message)
    assert "chmod a+r" in message and "energy_uj" in message
    assert "intel-rapl:1, intel-rapl:1:2" in message
    assert "model" in message


def test_read_error_mid_run(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1)
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    domain.open()
    (zone / "energy_uj").unlink()
    with pytest.raises(DeviceReadError, match="energy_uj"):
        domain.read()


def test_garbage_counter_is_read_error(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1)
    domain = RaplDomain(zone, "cpu0-package", "cpu")
    domain.open()
    (zone / "energy_uj").write_text("")
    with pytest.raises(DeviceReadError):
        domain.read()


def test_read_before_open_and_constructor_does_no_io(tmp_path: Path) -> None:
    domain = RaplDomain(tmp_path / "absent", "cpu0-package", "cpu")  # no I/O, no error
    with pytest.raises(DeviceReadError, match="open"):
        domain.read()


def test_nested_trackers_share_a_zone(tmp_path: Path) -> None:
    # The outer tracker must see all 300 J, the inner only the 100 J inside it. On the fake
    # clock the Python sampler reads the zone through RaplDomain (the native loop reads the
    # file itself and keeps its own state, so it cannot reset anything).
    import greenai
    from greenai.testing import FakeClock

    clock = FakeClock()
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=10_000_000)
    domain = RaplDomain(zone, "cpu0-package", "cpu")

    def later(energy_uj: int) -> None:
        set_energy(zone, energy_uj)
        clock.advance(1.0)

    with greenai.track("outer", devices=[domain], period_s=30.0, clock=clock) as outer:
        later(110_000_000)
        with greenai.track("inner", devices=[domain], period_s=30.0, clock=clock) as inner:
            later(210_000_000)
        later(310_000_000)
    assert domain.open_count == 0
    assert inner.result.device("cpu0-package").energy_j == pytest.approx(100.0, abs=1e-3)
    assert outer.result.device("cpu0-package").energy_j == pytest.approx(300.0, abs=1e-3)
