"""The pytest plugin, run inside pytester sessions with a steady FakeGPU."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

# Imported up front: pytester's in-process runs restore sys.modules after each run, and
# numpy/torch cannot be imported twice in one process.
import pytest_benchmark.plugin  # noqa: F401
import torch  # noqa: F401

import greenai.bench.machine
import greenai.pytest_plugin
import greenai.testing

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from greenai.testing import FakeGPU

@pytest.fixture(scope="session")
def greenai_devices():
    return [FakeGPU(power_w=300.0, noise_w=0.0, sensor_noise_w=0.0, seed=3)]
"""

SPIN = """
import time

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run pytest in-process with the plugin loaded by -p, whether or not it is installed."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST)

    def go(*args: str) -> pytest.RunResult:
        plugins = ["-p", "greenai.pytest_plugin", "-p", "pytest_benchmark.plugin"]
        quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
        return pytester.runpytest(*plugins, *quiet, "-p", "no:cacheprovider", *args)

    return go


def test_entry_point_is_declared() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    section = text.split("[project.entry-points.pytest11]")[1].split("[")[0]
    assert 'greenai = "greenai.pytest_plugin"' in section


def test_inert_without_the_flag(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        """
        import threading

        def test_energy_marks_do_nothing(energy, benchmark):
            energy.step()
            with energy.phase("x"):
                energy.add_flops(1e9)
            block = energy.phase("eval", in_steps=False)
            with block, block:  # reusable and re-entrant, like the measuring one
                pass
            with block:
                pass
            benchmark(lambda: None)
            names = [t.name for t in threading.enumerate()]
            assert "greenai-sampler" not in names
        """
    )
    result = run("--benchmark-json=out.json", "--strict-markers")
    result.assert_outcomes(passed=1)
    assert "greenai energy" not in result.stdout.str()
    bench = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]
    assert bench["extra_info"] == {}


def test_benchmark_extra_info_covers_the_timed_rounds_only(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        SPIN
        + """
import pytest

calls = []

def work():
    calls.append(1)
    # warmup calls are slow: if they counted as rounds, timed seconds would show it
    spin(0.1 if len(calls) <= 2 else 0.04)

@pytest.mark.energy(flops=4e9, samples=8)
def test_pedantic(benchmark):
    benchmark.pedantic(work, rounds=6, iterations=2, warmup_rounds=1)

@pytest.mark.energy(flops=1e6)
def test_auto(benchmark):
    benchmark(spin, 0.002)
"""
    )
    result = run("--greenai", "--benchmark-json=out.json", "--benchmark-max-time=0.2")
    result.assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "out.json").read_text())
    assert doc["machine_info"]["greenai"]["fingerprint"]
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    for bench in by_name.values():
        info, stats = bench["extra_info"], bench["stats"]
        assert info["energy_rounds"] == stats["rounds"]
        assert info["energy_method"] in ("counter", "power")
        assert info["energy_machine"] == doc["machine_info"]["greenai"]["fingerprint"]
        # the tracked windows are pytest-benchmark's own rounds (its stats are per call)
        total_s = stats["total"] * info["energy_iterations"]
        assert info["energy_timed_s"] == pytest.approx(total_s, rel=0.05, abs=2e-3)
        per_round_s = info["energy_timed_s"] / info["energy_rounds"]
        assert info["avg_power_w"] == pytest.approx(info["energy_per_round_j"] / per_round_s)
        # steady 300 W: the estimate is within its stated uncertainty (plus 10% slack for
        # a loaded CI machine, where the sampler thread runs late)
        error = abs(info["energy_per_round_j"] - 300.0 * per_round_s)
        assert error <= info["energy_per_round_uncertainty_j"] + 0.1 * 300.0 * per_round_s
        per_call = info["energy_per_round_j"] / info["energy_iterations"]
        assert info["energy_per_call_j"] == pytest.approx(per_call)
    pedantic = by_name["test_pedantic"]["extra_info"]
    assert pedantic["energy_iterations"] == 2
    assert pedantic["j_per_tflop"] == pytest.approx(pedantic["energy_per_call_j"] / 4e-3)
    assert pedantic["j_per_sample"] == pytest.approx(pedantic["energy_per_call_j"] / 8)
    assert pedantic["energy_per_round_uncertainty_j"] >= 0
    assert by_name["test_auto"]["extra_info"]["j_per_sample"] is None
    out = result.stdout.str()
    assert "greenai energy" in out
    assert "round (6 × 2 calls)" in out
    # the summary's J/call is extra_info's per-call energy, the unit of pytest-benchmark's table
    # the table's row, after its header (a warnings summary may name the test earlier)
    table = out.split("greenai energy", 1)[1]
    line = next(x for x in table.splitlines() if x.startswith("test_") and "test_pedantic" in x)
    assert format(pedantic["energy_per_call_j"], ".4g") in line.split()
    assert "J/call: per call of the benchmarked function (the unit of pytest-benchmark" in out


def test_energy_fixture_and_marker_without_benchmark(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        SPIN
        + """
import pytest

def test_fixture(energy):
    with energy.phase("spin"):
        spin(0.15)
    energy.step(samples=10)
    energy.add_flops(3e12)
    assert energy.running

@pytest.mark.energy(flops=1e12, samples=5)
def test_marker():
    spin(0.05)

def test_unmeasured():
    pass
"""
    )
    result = run("--greenai", "--junitxml=out.xml")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "test_fixture" in out.split("greenai energy")[1]
    assert "test_unmeasured" not in out.split("greenai energy")[1]
    xml = (pytester.path / "out.xml").read_text()
    assert xml.count('name="greenai_energy_j"') == 2
    assert 'name="greenai_j_per_tflop"' in xml


def test_bad_marker_is_an_error_that_says_what_to_do(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.energy(flops=-1)
        def test_it():
            pass
        """
    )
    result = run("--greenai")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*flops=...) must be a number >= 0*"])


def test_no_device_still_passes_and_says_so(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def greenai_devices():
            return []
        """
    )
    pytester.makepyfile(
        """
        def test_it(benchmark):
            benchmark(sum, range(100))
        """
    )
    result = run("--greenai", "--benchmark-json=out.json", "--benchmark-max-time=0.05")
    result.assert_outcomes(passed=1)
    info = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    assert info["energy_per_round_j"] is None
    assert info["energy_method"] == "-"


def test_disabled_benchmark_reports_the_test(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.energy(flops=1e12)
        def test_it(benchmark):
            benchmark(sum, range(100))
        """
    )
    result = run("--greenai", "--benchmark-disable")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_it*test*"])
    assert not [t for t in threading.enumerate() if t.name == "greenai-sampler"]


def test_without_the_flag_pytest_never_imports_the_measuring_code(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # the child imports this greenai, wherever the test runs from
    root = str(Path(greenai.pytest_plugin.__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(
        """
        import sys

        import pytest

        @pytest.mark.energy(flops=1e9)
        def test_nothing_heavy_was_imported(energy):
            energy.step()
            assert type(energy).__name__ == "InertTracker"
            heavy = {"numpy", "torch", "greenai.tracker", "greenai.pytest_session"}
            assert sorted(heavy & set(sys.modules)) == []
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "greenai.pytest_plugin", "-p", "no:cacheprovider", "--strict-markers"
    )
    result.assert_outcomes(passed=1)


def test_extra_info_flops_and_samples_never_fail_a_test(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        """
        import numpy as np

        def test_numpy_and_text(benchmark):
            # generic keys a test may use for itself: a numpy int counts, text is ignored
            benchmark.extra_info.update(flops=np.int64(10**9), samples="one batch")
            benchmark(sum, range(10))

        def test_text_again(benchmark):
            benchmark.extra_info.update(flops="n/a", samples="n/a")
            benchmark(sum, range(10))

        def test_greenai_keys_win(benchmark):
            benchmark.extra_info.update(samples="x", greenai_samples=np.float32(8))
            benchmark(sum, range(10))
        """
    )
    result = run("--greenai", "--benchmark-json=out.json", "--benchmark-max-time=0.02")
    result.assert_outcomes(passed=3)
    doc = json.loads((pytester.path / "out.json").read_text())
    info = {b["name"]: b["extra_info"] for b in doc["benchmarks"]}
    first = info["test_numpy_and_text"]
    assert first["j_per_tflop"] == pytest.approx(first["energy_per_call_j"] / 1e-3)
    assert first["j_per_sample"] is None
    assert info["test_text_again"]["j_per_tflop"] is None
    last = info["test_greenai_keys_win"]
    assert last["j_per_sample"] == pytest.approx(last["energy_per_call_j"] / 8)
    out = result.stdout.str()
    assert out.count("is not a number >= 0, so it is not used as samples") == 1
    assert out.count("is not a number >= 0, so it is not used as flops") == 1


def test_summary_lines_show_per_round_and_per_call() -> None:
    from greenai.pytest_session import summary_lines

    row = {"test": "t.py::b", "per": "round", "energy_j": 0.5, "uncertainty_j": 0.01}
    row.update(avg_power_w=300.0, j_per_tflop=None, j_per_sample=None, method="counter")
    lines = summary_lines([dict(row, rounds=4, iterations=10, per_call_j=0.05)])
    assert lines[0].split()[:6] == ["test", "per", "energy", "J", "±", "J"]
    assert "J/call" in lines[0]
    cells = lines[1].split("  ")
    assert "round (4 × 10 calls)" in [c.strip() for c in cells]
    assert "0.05" in lines[1].split()
    one = summary_lines([dict(row, rounds=4, iterations=1, per_call_j=0.5)])
    assert "round (4 × 1 call)" in one[1]
