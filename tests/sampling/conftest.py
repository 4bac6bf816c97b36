"""Fixtures for the sampling loops: both implementations, a fake powercap tree, a fake NVML."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from greenai.sampling import native_py
from greenai.sampling.native import SamplingLoop, native_disabled

HERE = Path(__file__).parent


def compiler() -> str | None:
    """The C compiler on PATH, if any."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def can_build_native() -> bool:
    """Whether ``pip install .`` here would have built greenai._native (compiler + headers)."""
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return compiler() is not None and headers.exists()


def native_loop_class() -> type[SamplingLoop]:
    """greenai._native.Loop; fails (not skips) where it could have been built."""
    if native_disabled():
        pytest.skip("GREENAI_NO_NATIVE is set: only the Python twin is tested")
    try:
        from greenai import _native
    except ImportError:
        if can_build_native():
            pytest.fail(
                "greenai._native is not built although a C compiler and the Python headers "
                "are here: run "
                "`python setup.py build_ext --inplace` (or reinstall greenai); set "
                "GREENAI_NO_NATIVE=1 to test the Python twin only"
            )
        pytest.skip("greenai._native is not built (no C compiler or no Python headers here)")
    loop: type[SamplingLoop] = _native.Loop
    return loop


@pytest.fixture(params=["c", "python"])
def loop_cls(request: pytest.FixtureRequest) -> type[SamplingLoop]:
    """Each test that takes this runs once per implementation, so the two cannot drift."""
    if request.param == "c":
        return native_loop_class()
    return native_py.Loop


@pytest.fixture
def make_loop(loop_cls: type[SamplingLoop]) -> Iterator[Callable[..., SamplingLoop]]:
    """Create loops that are closed (threads stopped) at the end of the test."""
    made: list[SamplingLoop] = []

    def make(period_ns: int = 10_000_000, **kw: int) -> SamplingLoop:
        loop = loop_cls(period_ns, **kw)
        made.append(loop)
        return loop

    yield make
    for loop in made:
        loop.close()
    assert not any(loop.running for loop in made)


@dataclass
class FakeNvml:
    """The compiled fake libnvidia-ml.so.1 and its control functions."""

    path: str
    lib: ctypes.CDLL

    def set(
        self, gpu: int, *, energy_mj: int = 0, step_mj: int = 0, power_mw: int = 0, fail: int = 0
    ) -> None:
        self.lib.fake_nvml_set(
            gpu,
            ctypes.c_ulonglong(energy_mj),
            ctypes.c_ulonglong(step_mj),
            ctypes.c_uint(power_mw),
            fail,
        )

    def hang(self, ms: int) -> None:
        """Make every energy read sleep ``ms`` first (0: no more)."""
        self.lib.fake_nvml_hang(ms)

    def reads(self, gpu: int, *, power: bool) -> int:
        return int(self.lib.fake_nvml_reads(gpu, int(power)))

    def inits(self) -> int:
        return int(self.lib.fake_nvml_inits())


@pytest.fixture(scope="session")
def fake_nvml_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build tests/sampling/fake_nvml.c into a libnvidia-ml.so.1 of its own."""
    cc = compiler()
    if cc is None:
        pytest.skip("no C compiler to build the fake NVML library")
    out = tmp_path_factory.mktemp("fake-nvml") / "libnvidia-ml.so.1"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(HERE / "fake_nvml.c")], check=True
    )
    return str(out)


@pytest.fixture
def fake_nvml(fake_nvml_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    """The fake NVML, reset, and named by GREENAI_NVML_LIB for the loops to load."""
    lib = ctypes.CDLL(fake_nvml_path)
    lib.fake_nvml_reset()
    lib.fake_nvml_hang(0)
    monkeypatch.setenv("GREENAI_NVML_LIB", fake_nvml_path)
    yield FakeNvml(fake_nvml_path, lib)
    lib.fake_nvml_hang(0)
