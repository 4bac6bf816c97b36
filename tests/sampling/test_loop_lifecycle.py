"""Concurrent start/stop/close of a sampling loop, and the window's last reading (both loops).

A lifecycle race can hang the process (a thread joined twice), so those tests run the race
in a subprocess with a deadline: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from greenai.errors import ConfigError
from greenai.sampling.native import RECORD_DTYPE, SamplingLoop
from tests.devices.fakes import make_zone
from tests.sampling.conftest import FakeNvml

PRELUDE = """
import sys, threading
from greenai.errors import TrackerStateError
from greenai.sampling import native_py
if sys.argv[1] == "c":
    from greenai._native import Loop
else:
    Loop = native_py.Loop
COUNTER = sys.argv[2]
"""


def impl_of(loop_cls: type[SamplingLoop]) -> str:
    return "python" if loop_cls.__module__.startswith("greenai.sampling") else "c"


def run_script(
    script: str, loop_cls: type[SamplingLoop], counter: Path, timeout_s: float = 60.0
) -> str:
    """Run ``script`` in a fresh interpreter; fail (not hang) if it does not exit in time."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", PRELUDE + script, impl_of(loop_cls), str(counter)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script hung (no exit within {timeout_s} s): {exc.stderr!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout


CONCURRENT_STOP = """
for _ in range(30):
    loop = Loop(1_000_000)
    loop.add_rapl(COUNTER, 1000)
    loop.start()
    go = threading.Barrier(3)
    errors = []
    def stop():
        go.wait()
        try:
            loop.stop()
        except BaseException as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=stop) for _ in range(2)]
    for t in threads:
        t.start()
    go.wait()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not loop.running
    loop.drain()
    loop.stop()  # idempotent: no reading, no hang
    assert len(loop.drain()) == 0
    loop.close()
print("ok")
"""


def test_concurrent_stops_join_the_thread_once(
    loop_cls: type[SamplingLoop], tmp_path: Path
) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    assert run_script(CONCURRENT_STOP, loop_cls, zone / "energy_uj") == "ok\n"


CONCURRENT_STOP_AND_CLOSE = """
for _ in range(30):
    loop = Loop(1_000_000)
    loop.add_rapl(COUNTER, 1000)
    loop.start()
    go = threading.Barrier(2)
    def stop():
        go.wait()
        loop.stop()
    t = threading.Thread(target=stop)
    t.start()
    go.wait()
    loop.close()
    t.join()
    assert not loop.running
print("ok")
"""


def test_stop_and_close_at_once(loop_cls: type[SamplingLoop], tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    assert run_script(CONCURRENT_STOP_AND_CLOSE, loop_cls, zone / "energy_uj") == "ok\n"


DAEMON_STOP_AT_EXIT = """
loop = Loop(1_000_000)
loop.add_rapl(COUNTER, 1000)
loop.start()
ready = threading.Event()
def stop():
    ready.set()
    loop.stop()
threading.Thread(target=stop, daemon=True).start()
ready.wait()
"""  # the main thread exits now: greenai's atexit handler stops the loop meanwhile


def test_daemon_thread_stopping_a_loop_while_the_interpreter_exits(
    loop_cls: type[SamplingLoop], tmp_path: Path
) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    for _ in range(6):
        run_script(DAEMON_STOP_AT_EXIT, loop_cls, zone / "energy_uj", timeout_s=30.0)


CONCURRENT_START = """
for _ in range(50):
    loop = Loop(1_000_000)
    loop.add_rapl(COUNTER, 1000)
    go = threading.Barrier(4)
    outcomes = []
    def start():
        go.wait()
        try:
            loop.start()
        except TrackerStateError as exc:
            assert "while the loop runs" in str(exc), exc
            outcomes.append("refused")
        else:
            outcomes.append("started")
    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 3 + ["started"], outcomes
    loop.stop()
    assert not loop.running
    loop.close()
assert not [t for t in threading.enumerate() if t.name == "greenai-sampler"]
print("ok")
"""


def test_concurrent_starts_start_one_thread(loop_cls: type[SamplingLoop], tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0")
    assert run_script(CONCURRENT_START, loop_cls, zone / "energy_uj") == "ok\n"


# --- the window's last reading ---------------------------------------------------------------
def test_stop_reads_the_energy_counter_whatever_its_period(
    loop_cls: type[SamplingLoop], fake_nvml: FakeNvml
) -> None:
    fake_nvml.set(0, energy_mj=1000, step_mj=10, power_mw=100_000)
    loop = loop_cls(10_000_000)
    try:
        loop.add_nvml(0, power="instant", energy_period_ns=3_600_000_000_000)  # once an hour
        loop.start()
        loop.stop()
        rec = np.frombuffer(loop.drain(), dtype=RECORD_DTYPE)
    finally:
        loop.close()
    assert rec["energy_j"][0] == pytest.approx(1.0)  # start() reads the counter
    last = rec[-1]
    assert not math.isnan(last["energy_j"]), "stop()'s reading lacks the energy counter"
    assert last["energy_j"] == pytest.approx(1.01)
    assert last["power_w"] == pytest.approx(100.0)


# --- bad arguments ---------------------------------------------------------------------------
def test_period_above_an_hour_is_refused(loop_cls: type[SamplingLoop]) -> None:
    loop_cls(3_600_000_000_000).close()
    with pytest.raises(ConfigError, match=r"at most 3600000000000 \(1 hour\)"):
        loop_cls(3_600_000_000_001)


@pytest.mark.parametrize("index", [-1, 2**32, 2**64])
def test_nvml_index_out_of_range_is_refused(
    loop_cls: type[SamplingLoop], fake_nvml: FakeNvml, index: int
) -> None:
    loop = loop_cls()
    try:
        with pytest.raises(ConfigError, match=r"NVML index must be 0\.\.4294967295"):
            loop.add_nvml(index)  # 2**32 must not wrap round to GPU 0
        assert loop.stats()["sources"] == 0
    finally:
        loop.close()


def test_one_loop_reads_one_nvml_library(
    loop_cls: type[SamplingLoop], fake_nvml: FakeNvml, tmp_path: Path
) -> None:
    other = tmp_path / "libnvidia-ml.so.1"
    other.write_bytes(Path(fake_nvml.path).read_bytes())
    first, second = loop_cls(), loop_cls()
    try:
        first.add_nvml(0)
        second.add_nvml(1)
        with pytest.raises(ConfigError, match="one loop per NVML library"):
            first.add_nvml(1, lib=str(other))
        first.close()  # the library stays loaded: the other loop still reads through it
        second.tick()
        (rec,) = np.frombuffer(second.drain(), dtype=RECORD_DTYPE)
        assert rec["status"] == 0
    finally:
        first.close()
        second.close()
