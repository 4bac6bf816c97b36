"""The Sampler reading RAPL and NVIDIA devices through a sampling loop (the native feed)."""

from __future__ import annotations

import ctypes
import errno
import time
from pathlib import Path

import numpy as np
import pytest

import greenai
from greenai.devices.nvidia import NvidiaGPU
from greenai.devices.rapl import discover_rapl
from greenai.errors import ConfigError, DeviceFailureWarning
from greenai.sampling import Sampler, default_period_s, native
from greenai.sampling.feed import NativeFeed, loop_source
from greenai.sampling.native import SamplingLoop
from greenai.testing import FakeClock, FakeGPU
from greenai.timeline import Timeline
from tests.devices.fakes import make_zone, set_energy
from tests.sampling.conftest import FakeNvml, native_loop_class


def rapl_tree(root: Path) -> Path:
    return make_zone(root, "intel-rapl:0", "package-0", energy_uj=100)


def opened_rapl(root: Path) -> list:
    devices = discover_rapl(root)
    for d in devices:
        d.open()
    return devices


def test_feed_moves_readings_into_the_timeline_and_notes_failures_once(
    loop_cls: type[SamplingLoop], tmp_path: Path
) -> None:
    zone = rapl_tree(tmp_path)
    (device,) = opened_rapl(tmp_path)
    timeline = Timeline([device])
    notes: list[tuple[str, str]] = []
    feed = NativeFeed(loop_cls(), timeline, lambda name, msg: notes.append((name, msg)))
    assert feed.add(device) and feed.names == ["cpu0-package"]
    assert not feed.add(FakeGPU())  # read by Python, not by the loop
    for value in (100, 2100, "x", "y", 4100):
        set_energy(zone, value)
        feed.loop.tick()
    feed.drain()
    feed.stop()
    s = timeline.series["cpu0-package"]
    assert s.energy_j == pytest.approx([0.0, 0.002, 0.004])
    assert len(s.gaps) == 1 and s.gaps[0][1] == s.t[-1]  # the gap ends at the next good read
    assert feed.failed == {"cpu0-package": "the counter file held no number"}
    assert len(notes) == 1 and "failed mid-run" in notes[0][1]


def test_feed_reports_dropped_readings(loop_cls: type[SamplingLoop], tmp_path: Path) -> None:
    rapl_tree(tmp_path)
    (device,) = opened_rapl(tmp_path)
    notes: list[str] = []
    feed = NativeFeed(loop_cls(capacity=16), Timeline([device]), lambda _, m: notes.append(m))
    feed.add(device)
    for _ in range(20):
        feed.loop.tick()
    feed.stop()
    assert len(notes) == 1 and "dropped 4 readings" in notes[0]


def test_sampler_reads_rapl_natively_and_other_devices_from_python(tmp_path: Path) -> None:
    native_loop_class()
    rapl_tree(tmp_path)
    devices = [*discover_rapl(tmp_path), FakeGPU()]
    timeline = Timeline(devices)
    sampler = Sampler(devices, timeline, period_s=0.002, native=True)
    sampler.start()
    assert sampler.feed is not None and sampler.feed.names == ["cpu0-package"]
    deadline = time.monotonic() + 10
    while len(timeline.series["cpu0-package"].t) < 20:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    sampler.stop()
    assert not sampler.running and not sampler.feed.loop.running
    t = np.array(timeline.series["cpu0-package"].t)
    assert (np.diff(t) > 0).all()
    assert abs(t[-1] - time.perf_counter()) < 5.0  # on the timeline's clock
    assert len(timeline.series["gpu0"].t) >= 2


def test_native_choice_is_explicit_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rapl_tree(tmp_path)
    devices = discover_rapl(tmp_path)

    def feed_of(period_s: float = 0.01, **kw: object) -> object:
        sampler = Sampler(devices, Timeline(devices), period_s=period_s, **kw)  # type: ignore[arg-type]
        sampler.start()
        sampler.stop()
        return sampler.feed

    if native.HAS_NATIVE and not native.native_disabled():
        assert feed_of() is not None  # the default where the extension is built
        assert feed_of(period_s=0.0005, native=True) is None  # below 1 ms: Python reads
    assert feed_of(native=False) is None
    assert feed_of(native=True, clock=FakeClock()) is None  # only real time drives a loop
    monkeypatch.setenv("GREENAI_NO_NATIVE", "1")
    assert feed_of() is None
    assert "GREENAI_NO_NATIVE" in native.sampler_kind()
    # An install without a C compiler, in a process where the extension is built: the
    # module's one seam for it (listed in docs/dev-notes.md, "private reads in tests").
    monkeypatch.setattr(native, "_native", None)
    with pytest.raises(ConfigError, match="not built"):
        feed_of(native=True)
    assert "not built" in native.sampler_kind()


def test_status_descriptions() -> None:
    assert native.describe_status(-errno.EACCES) == "Permission denied"
    assert native.describe_status(15) == "NVML error 15"


@pytest.fixture
def pynvml_on_fake(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> object:
    """The real pynvml module, talking to the fake library."""
    pynvml = pytest.importorskip("pynvml")
    monkeypatch.setattr(pynvml, "nvmlLib", ctypes.CDLL(fake_nvml.path))
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    return pynvml


def test_tracker_reads_a_gpu_through_the_native_loop(
    fake_nvml: FakeNvml, pynvml_on_fake: object
) -> None:
    native_loop_class()
    fake_nvml.set(0, energy_mj=10_000, step_mj=20, power_mw=200_000)
    gpu = NvidiaGPU(0, nvml=pynvml_on_fake, uuid="GPU-fake-0")  # type: ignore[arg-type]
    gpu.open()
    assert loop_source(gpu) is not None
    gpu.close()
    job = greenai.track("native-gpu", devices=[gpu], period_s=0.005).start()
    assert job.run is not None
    sampler, timeline = job.run.sampler, job.run.timeline
    assert sampler.feed is not None
    started = time.monotonic()
    deadline = started + 10
    # past two of its declared 100 ms updates: a shorter job falls back to power
    while fake_nvml.reads(0, power=False) < 4 or time.monotonic() < started + 0.3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    result = job.stop()
    (device,) = result.devices
    assert device.method == "counter" and device.energy_j is not None and device.energy_j > 0
    series = timeline.series["gpu0"]
    assert np.nanmax(series.power_w) == pytest.approx(200.0)


def test_failing_native_gpu_is_warned_about_and_marked_partial(
    fake_nvml: FakeNvml, pynvml_on_fake: object
) -> None:
    native_loop_class()
    fake_nvml.set(0, energy_mj=10_000, step_mj=20, power_mw=200_000)
    gpu = NvidiaGPU(0, nvml=pynvml_on_fake, uuid="GPU-fake-0")  # type: ignore[arg-type]
    job = greenai.track("lost-gpu", devices=[gpu], period_s=0.005).start()
    assert job.run is not None
    loop = job.run.sampler.feed.loop  # type: ignore[union-attr]
    fake_nvml.set(0, fail=15)  # NVML_ERROR_GPU_IS_LOST from now on
    ticks, deadline = loop.stats()["ticks"], time.monotonic() + 10
    while loop.stats()["ticks"] < ticks + 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    with pytest.warns(DeviceFailureWarning, match="gpu0 failed mid-run"):
        result = job.stop()
    assert result.partial


def test_loop_defaults_to_10_ms_while_python_devices_keep_their_own_period(
    tmp_path: Path,
) -> None:
    native_loop_class()
    rapl_tree(tmp_path)
    gpu = FakeGPU()
    devices = [*discover_rapl(tmp_path), gpu]
    sampler = Sampler(devices, Timeline(devices), native=True)
    sampler.start()
    try:
        assert sampler.feed is not None
        assert sampler.feed.loop.period_ns == 10_000_000
        assert sampler.python_period_s == default_period_s([gpu])  # not the loop's 10 ms
        assert sampler.period_s == 0.01
    finally:
        sampler.stop()
    explicit = Sampler(devices, Timeline(devices), period_s=0.05, native=True)
    explicit.start()
    try:
        assert explicit.feed is not None and explicit.feed.loop.period_ns == 50_000_000
        assert explicit.python_period_s == 0.05
    finally:
        explicit.stop()
