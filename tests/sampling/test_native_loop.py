"""The sampling loop, run against both implementations (C and the Python twin)."""

from __future__ import annotations

import ctypes
import errno
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from greenai.errors import (
    ConfigError,
    DeviceError,
    DeviceUnavailableError,
    TrackerStateError,
)
from greenai.sampling.native import RECORD_DTYPE, SamplingLoop
from tests.devices.fakes import RANGE_UJ, make_zone, set_energy
from tests.sampling.conftest import FakeNvml

MakeLoop = Callable[..., SamplingLoop]


def records(loop: SamplingLoop) -> np.ndarray:
    return np.frombuffer(loop.drain(), dtype=RECORD_DTYPE)


def drain_until(loop: SamplingLoop, n: int, timeout_s: float = 10.0) -> np.ndarray:
    """Drain until at least ``n`` records came (polling with a deadline, no sleeping)."""
    got = [records(loop)]
    deadline = time.monotonic() + timeout_s
    while sum(len(r) for r in got) < n:
        assert time.monotonic() < deadline, f"fewer than {n} records within {timeout_s} s"
        time.sleep(0.001)  # yield the CPU while polling; the assertion does not depend on it
        got.append(records(loop))
    return np.concatenate(got)


# --- RAPL ------------------------------------------------------------------------------------
def test_rapl_counter_is_cumulative_joules_with_wraparound_undone(
    make_loop: MakeLoop, tmp_path: Path
) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1000)
    loop = make_loop()
    assert loop.add_rapl(zone / "energy_uj", RANGE_UJ) == 0
    before = time.monotonic_ns()
    loop.tick()
    set_energy(zone, 3000)
    loop.tick()
    set_energy(zone, 500)  # wrapped: 0..RANGE_UJ, then 0 again
    loop.tick()
    after = time.monotonic_ns()
    rec = records(loop)
    assert rec["energy_j"] == pytest.approx([0.0, 0.002, (RANGE_UJ + 1 - 3000 + 500 + 2000) * 1e-6])
    assert list(rec["source"]) == [0, 0, 0] and list(rec["status"]) == [0, 0, 0]
    assert np.isnan(rec["power_w"]).all()
    assert before <= rec["t_ns"][0] <= rec["t_ns"][1] <= rec["t_ns"][2] <= after
    assert len(records(loop)) == 0  # drained


def test_unparsable_counter_is_a_failed_record_and_reading_resumes(
    make_loop: MakeLoop, tmp_path: Path
) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=10)
    loop = make_loop()
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    set_energy(zone, "garbage")
    loop.tick()
    set_energy(zone, 1010)
    loop.tick()
    rec = records(loop)
    assert list(rec["status"]) == [-errno.EBADMSG, 0]
    assert math.isnan(rec["energy_j"][0]) and rec["energy_j"][1] == pytest.approx(0.001)


def test_missing_counter_is_refused_up_front(make_loop: MakeLoop, tmp_path: Path) -> None:
    loop = make_loop()
    with pytest.raises(DeviceUnavailableError, match="cannot open RAPL counter"):
        loop.add_rapl(tmp_path / "nope" / "energy_uj", RANGE_UJ)
    (tmp_path / "empty").write_text("")
    with pytest.raises(DeviceError, match="cannot read RAPL counter"):
        loop.add_rapl(tmp_path / "empty", RANGE_UJ)


@pytest.mark.parametrize("period_ns", [0, 999_999])
def test_period_below_a_millisecond_is_refused(
    loop_cls: type[SamplingLoop], period_ns: int
) -> None:
    with pytest.raises(ConfigError, match="period_ns must be at least"):
        loop_cls(period_ns)


def test_full_buffer_drops_the_newest_and_counts_it(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(capacity=16)
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    for i in range(20):
        set_energy(zone, i)
        loop.tick()
    rec = records(loop)
    assert len(rec) == 16 and loop.overflow == 4 and loop.stats()["overflow"] == 4
    assert rec["energy_j"] == pytest.approx(np.arange(16) * 1e-6)  # the oldest are kept


def test_drain_across_the_end_of_the_ring_keeps_order(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(capacity=16)
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    seen = []
    for batch in range(3):
        for i in range(10):
            set_energy(zone, batch * 10 + i)
            loop.tick()
        seen.extend(records(loop)["energy_j"])
    assert seen == pytest.approx(np.arange(30) * 1e-6)
    assert loop.overflow == 0


# --- the thread ----------------------------------------------------------------------------
def test_thread_reads_on_the_period(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(2_000_000)
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    loop.start()
    assert loop.running
    rec = drain_until(loop, 40)
    loop.stop()
    assert not loop.running
    rec = np.concatenate([rec, records(loop)])
    gaps = np.diff(rec["t_ns"])
    assert (gaps > 0).all()
    # Shared CI machines are noisy: only the median is held to the period, loosely.
    assert 1_000_000 <= np.median(gaps) <= 4_000_000
    stats = loop.stats()
    assert stats["ticks"] + 2 == len(rec)  # + the reads in start() and stop()
    assert stats["sources"] == 1 and stats["cpu_ns"] > 0


def test_start_and_stop_each_read_once_themselves(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(5_000_000_000)  # the thread will not tick within this test
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    loop.start()
    assert len(records(loop)) == 1  # the window's start is covered before start() returns
    set_energy(zone, 7)
    t_stop = time.monotonic_ns()
    loop.stop()  # prompt, although the period is 5 s
    (last,) = records(loop)
    assert last["t_ns"] >= t_stop and last["energy_j"] == pytest.approx(7e-6)
    loop.stop()  # idempotent
    assert len(records(loop)) == 0


def test_changes_while_running_are_refused(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(1_000_000_000)
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    loop.start()
    for call in (loop.start, loop.tick, lambda: loop.add_rapl(zone / "energy_uj", RANGE_UJ)):
        with pytest.raises(TrackerStateError, match="while the loop runs"):
            call()
    loop.close()
    assert not loop.running
    with pytest.raises(TrackerStateError, match="closed"):
        loop.start()


def test_restart_after_stop(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(1_000_000)
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    for _ in range(2):
        loop.start()
        drain_until(loop, 3)
        loop.stop()
    assert loop.stats()["ticks"] >= 2


# --- NVML ------------------------------------------------------------------------------------
def test_nvml_instant_power_every_tick_energy_at_its_own_rate(
    make_loop: MakeLoop, fake_nvml: FakeNvml
) -> None:
    fake_nvml.set(0, energy_mj=1000, step_mj=10, power_mw=250_000)
    loop = make_loop(10_000_000)
    assert loop.add_nvml(0, power="instant", energy_period_ns=30_000_000) == 0
    for _ in range(7):
        loop.tick()
    rec = records(loop)
    assert list(rec["status"]) == [0] * 7
    assert rec["power_w"] == pytest.approx([250.0] * 7)
    energy = rec["energy_j"]
    assert energy[[0, 3, 6]] == pytest.approx([1.0, 1.01, 1.02])
    assert np.isnan(energy[[1, 2, 4, 5]]).all()
    assert fake_nvml.reads(0, power=False) == 3 and fake_nvml.reads(0, power=True) == 7


def test_nvml_by_uuid_with_average_power(make_loop: MakeLoop, fake_nvml: FakeNvml) -> None:
    fake_nvml.set(1, energy_mj=5, power_mw=70_500)
    loop = make_loop()
    loop.add_nvml("GPU-fake-1", power="average", energy_period_ns=0)
    loop.tick()
    (rec,) = records(loop)
    assert rec["power_w"] == pytest.approx(70.5) and math.isnan(rec["energy_j"])
    assert fake_nvml.reads(1, power=False) == 0


def test_nvml_energy_only_gives_records_on_energy_ticks(
    make_loop: MakeLoop, fake_nvml: FakeNvml
) -> None:
    fake_nvml.set(0, energy_mj=2000, step_mj=1)
    loop = make_loop(10_000_000)
    loop.add_nvml(0, power="none", energy_period_ns=20_000_000)
    for _ in range(5):
        loop.tick()
    assert records(loop)["energy_j"] == pytest.approx([2.0, 2.001, 2.002])


def test_nvml_read_failure_is_a_record_and_reading_resumes(
    make_loop: MakeLoop, fake_nvml: FakeNvml
) -> None:
    fake_nvml.set(0, energy_mj=1, power_mw=1000, fail=15)  # NVML_ERROR_GPU_IS_LOST
    loop = make_loop()
    loop.add_nvml(0, energy_period_ns=10_000_000)
    loop.tick()
    fake_nvml.set(0, energy_mj=1, power_mw=1000)
    loop.tick()
    rec = records(loop)
    assert list(rec["status"]) == [15, 0]
    assert np.isnan(rec["power_w"][0]) and rec["power_w"][1] == pytest.approx(1.0)


def test_nvml_thread_reads_the_gpu(make_loop: MakeLoop, fake_nvml: FakeNvml) -> None:
    fake_nvml.set(0, energy_mj=0, step_mj=5, power_mw=300_000)
    loop = make_loop(1_000_000)
    loop.add_nvml("GPU-fake-0", energy_period_ns=5_000_000)
    loop.start()
    rec = drain_until(loop, 30)
    loop.stop()
    energy = rec["energy_j"][np.isfinite(rec["energy_j"])]
    assert len(energy) >= 3 and (np.diff(energy) > 0).all()
    assert rec["power_w"] == pytest.approx(300.0)


def test_nvml_unknown_gpu_and_bad_options_are_refused(
    make_loop: MakeLoop, fake_nvml: FakeNvml
) -> None:
    loop = make_loop()
    with pytest.raises(DeviceError, match=r"cannot find NVIDIA GPU GPU-nope.*fake NVML error 6"):
        loop.add_nvml("GPU-nope")
    with pytest.raises(DeviceError, match="cannot find NVIDIA GPU index 9"):
        loop.add_nvml(9)
    with pytest.raises(ConfigError, match="power must be"):
        loop.add_nvml(0, power="peak")
    with pytest.raises(ConfigError, match="energy_period_ns"):
        loop.add_nvml(0, energy_period_ns=-1)


def test_close_shuts_nvml_down_once_per_init(
    loop_cls: type[SamplingLoop], fake_nvml: FakeNvml
) -> None:
    before = fake_nvml.inits()
    loop = loop_cls()
    loop.add_nvml(0)
    loop.add_nvml("GPU-fake-1")
    with pytest.raises(DeviceError):
        loop.add_nvml("GPU-nope")  # its init is owed a shutdown too
    assert fake_nvml.inits() == before + 3
    loop.close()
    loop.close()
    assert fake_nvml.inits() == before


def test_missing_nvml_library_is_unavailable(make_loop: MakeLoop, tmp_path: Path) -> None:
    loop = make_loop()
    with pytest.raises(DeviceUnavailableError, match="cannot load NVML"):
        loop.add_nvml(0, lib=str(tmp_path / "libnvidia-ml.so.1"))


# --- fork() and interpreter exit ---------------------------------------------------------------
def test_forked_child_has_no_sampler(make_loop: MakeLoop, tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    loop = make_loop(1_000_000)
    loop.add_rapl(zone / "energy_uj", RANGE_UJ)
    loop.start()
    drain_until(loop, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded, use of fork()"
        pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            ok = not loop.running and len(records(loop)) == 0
            loop.stop()  # a no-op, not a hang
            try:
                loop.tick()
            except TrackerStateError as exc:
                ok = ok and "fork()" in str(exc)
            else:
                ok = False
            loop.close()
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert loop.running  # the parent's loop is untouched
    drain_until(loop, 2)
    loop.stop()


EXIT_SCRIPT = """
import atexit, pathlib, sys
loops = []
def check():  # registered first, so it runs after greenai's own exit handlers
    print("running at exit:", any(loop.running for loop in loops), flush=True)
atexit.register(check)
from greenai.sampling import native_py
if sys.argv[1] == "c":
    from greenai._native import Loop
else:
    Loop = native_py.Loop
loop = Loop(1_000_000)
loop.add_rapl(sys.argv[2], 1000)
loop.start()
loops.append(loop)
"""


def test_interpreter_exit_stops_the_thread(loop_cls: type[SamplingLoop], tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    impl = "python" if loop_cls.__module__.startswith("greenai.sampling") else "c"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, impl, str(zone / "energy_uj")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "running at exit: False" in done.stdout


# --- the real NVML, where there is a GPU ----------------------------------------------------------
def _real_gpu_count() -> int:
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return 0
    count = ctypes.c_uint(0)
    if lib.nvmlInit_v2() != 0:
        return 0
    try:
        return count.value if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else 0
    finally:
        lib.nvmlShutdown()


@pytest.mark.skipif(_real_gpu_count() == 0, reason="no NVIDIA GPU (or driver) on this machine")
def test_real_gpu_through_the_driver(make_loop: MakeLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENAI_NVML_LIB", raising=False)
    loop = make_loop(10_000_000)
    loop.add_nvml(0, power="instant", energy_period_ns=10_000_000)
    loop.tick()
    loop.tick()
    rec = records(loop)
    assert list(rec["status"]) == [0, 0]
    assert (rec["power_w"] > 0).all() and (rec["power_w"] < 2000).all()
    assert rec["energy_j"][1] >= rec["energy_j"][0] > 0


def test_a_read_that_hangs_is_left_behind_and_stop_returns(
    make_loop: MakeLoop, fake_nvml: FakeNvml
) -> None:
    # A wedged driver: an energy read that does not return. stop() must come back within
    # two periods plus a second, with the loop marked abandoned and taking no last reading.
    fake_nvml.set(0, energy_mj=1000, step_mj=10, power_mw=250_000)
    loop = make_loop(10_000_000)
    loop.add_nvml(0, power="instant", energy_period_ns=10_000_000)
    loop.start()
    time.sleep(0.05)
    fake_nvml.hang(2500)
    time.sleep(0.1)  # the thread is now inside a read that sleeps 2.5 s
    t = time.perf_counter()
    loop.stop()
    took = time.perf_counter() - t
    fake_nvml.hang(0)
    assert took < 1.6
    assert loop.abandoned and not loop.running
    with pytest.raises(TrackerStateError):
        loop.tick()
    time.sleep(2.6)  # let the left-behind read finish before the fake library is reset
