"""pytest plugin: energy per test, and per pytest-benchmark round (``pytest --greenai``).

Registered through the ``pytest11`` entry point. Without ``--greenai`` it only registers its
options, the ``energy`` marker and two fixtures: no tracker, no thread, no import of greenai's
measuring code (numpy, torch). With it,
every test that uses the ``energy`` fixture, the ``energy`` marker or pytest-benchmark's
``benchmark`` fixture is tracked over its call (not its setup or teardown):

* ``energy``: the test's :class:`greenai.Tracker` (started just before the test function
  runs, stopped just after; call ``energy.step()``, ``energy.phase()``, ``energy.add_flops()``);
* ``@pytest.mark.energy(flops=F, samples=S)``: FLOPs and samples of one call of the
  benchmarked function (or of the whole test, without ``benchmark``), for J/TFLOP, J/sample;
  a test that knows them only at run time sets ``benchmark.extra_info["greenai_flops"]``
  and ``["greenai_samples"]`` (per call) instead (the generic ``"flops"``/``"samples"`` keys
  are read too when they hold numbers; other values there are ignored, with a warning);
* with ``benchmark``: only the timed rounds count. Calibration, warmup and the extra call
  that returns the result are left out; energy per round, average power, J/TFLOP, J/sample
  and the method go into ``benchmark.extra_info`` (so into ``--benchmark-json``);
* a table of energy per test at the end of the run.

Devices come from :func:`greenai.devices.discover`; override the ``greenai_devices`` fixture
(in a conftest) to measure others, such as :class:`greenai.testing.FakeGPU` in CI.

This module imports only pytest: the measuring part (:mod:`greenai.pytest_session`) and the
rest of greenai are imported when ``--greenai`` is given.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from greenai.tracker import Tracker

__all__ = ["InertTracker"]

_PLUGIN = "greenai-session"
MARKER = (
    "energy(flops=None, samples=None): with --greenai, measure this test's energy; flops and "
    "samples are per call of the benchmarked function (per test without `benchmark`)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--greenai`` options."""
    group = parser.getgroup("greenai", "energy measurement (greenai)")
    group.addoption(
        "--greenai",
        action="store_true",
        default=False,
        help="measure the energy of tests that use `energy`, `@pytest.mark.energy` or `benchmark`",
    )
    group.addoption(
        "--greenai-period",
        type=float,
        default=None,
        metavar="SECONDS",
        help="sampling period (default: the devices' own update period, ~0.1 s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; with ``--greenai``, the session that measures."""
    config.addinivalue_line("markers", MARKER)
    if config.getoption("greenai", default=False):
        # imported here: without --greenai, pytest never loads the tracker, numpy or torch
        from greenai.pytest_session import EnergySession

        config.pluginmanager.register(EnergySession(config), _PLUGIN)


class InertTracker:
    """What the ``energy`` fixture gives without ``--greenai``: its marks do nothing."""

    running = False

    def step(self, samples: int | None = None, tokens: int | None = None) -> None:
        """Nothing: energy is measured only with ``--greenai``."""

    def phase(self, name: str, *, in_steps: bool = True) -> AbstractContextManager[None]:
        """Nothing: energy is measured only with ``--greenai`` (reusable, like the real one)."""
        return nullcontext()

    def add_flops(self, flops: float, executed: float | None = None) -> None:
        """Nothing: energy is measured only with ``--greenai``."""

    def count_flops(self, *args: Any, **kwargs: Any) -> None:
        """Nothing (returns None): FLOPs are counted only with ``--greenai``."""

    @property
    def result(self) -> Any:
        """Always raises: there is no measurement without ``--greenai``."""
        from greenai.errors import TrackerStateError

        raise TrackerStateError("no energy was measured: run pytest with --greenai")


@pytest.fixture(scope="session")
def greenai_devices() -> Any:
    """The devices the plugin measures; None (the default) discovers them once per session.

    Override it in a conftest to return a list of devices (for example
    ``[greenai.testing.FakeGPU()]``).
    """
    return None


@pytest.fixture
def energy(request: pytest.FixtureRequest) -> Tracker | InertTracker:
    """The test's tracker with ``--greenai`` (running only while the test function runs)."""
    session = request.config.pluginmanager.get_plugin(_PLUGIN)
    if session is None:
        return InertTracker()
    probe = session.probe(request)
    return probe.tracker if probe is not None else InertTracker()
