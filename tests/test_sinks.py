from __future__ import annotations

import ast
import pathlib
import threading
import time
from collections.abc import Callable

import pytest

import greenai
from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.testing import FakeClock, FakeGPU


def _poll(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        threading.Event().wait(0.005)


class Recorder:
    def __init__(self) -> None:
        self.started = None
        self.updates: list[Measurement] = []
        self.final: Measurement | None = None

    def start(self, job) -> None:  # type: ignore[no-untyped-def]
        self.started = job.name

    def update(self, snapshot: Measurement) -> None:
        self.updates.append(snapshot)

    def finish(self, result: Measurement) -> None:
        self.final = result


def test_sinks_get_start_snapshots_and_the_final_result() -> None:
    clock = FakeClock()
    sink = Recorder()
    with greenai.track(
        "j",
        devices=[FakeGPU(clock=clock, power_w=400.0)],
        clock=clock,
        sinks=[sink],
        checkpoint_s=1.0,
    ) as job:
        for i in range(50):
            clock.advance(0.1)
            job.step(samples=4)
            if i % 10 == 9:  # each sink runs on its own thread: wait for this second's update
                _poll(lambda n=i // 10: len(sink.updates) > n)
    assert sink.started == "j"
    assert len(sink.updates) >= 4
    assert all(u.status == "running" for u in sink.updates)
    energies = [u.energy_j for u in sink.updates]
    assert energies == sorted(energies) and energies[-1] > 0
    assert sink.final is job.result


def test_snapshot_energy_never_decreases_across_a_load_drop() -> None:
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(2.0, 700.0), (10.0, 100.0)], noise_w=0.0)
    seen = []
    with greenai.track(devices=[gpu], clock=clock) as job:
        for _ in range(40):
            clock.advance(0.1)
            seen.append(job.snapshot().energy_j)
    assert seen == sorted(seen)
    assert job.result.energy_j == pytest.approx(
        gpu.true_energy_j(job.start_s, job.start_s + job.result.duration_s), rel=0.01
    )


def test_snapshot_has_steps_phases_and_per_unit_figures() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock, power_w=400.0)], clock=clock) as job:
        for _ in range(30):
            with job.phase("fwd"):
                clock.advance(0.1)
            job.step(samples=8)
        snap = job.snapshot()
    assert snap.status == "running"
    assert snap.steps.count == 30
    assert 0 < snap.steps.measured_count <= 30
    assert snap.phase("fwd").energy_j > 0
    assert snap.steps.energy_per_sample_j == pytest.approx(400 * 0.1 / 8, rel=0.05)


def test_per_sample_uncertainty_comes_from_the_total_not_the_steps() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock, power_w=400.0)], clock=clock) as job:
        for _ in range(200):
            clock.advance(0.01)
            job.step(samples=1)
    s = job.result.steps
    rel_total = s.measured_uncertainty_j / s.measured_energy_j
    rel_sample = s.energy_per_sample_uncertainty_j / s.energy_per_sample_j
    assert rel_sample == pytest.approx(rel_total)
    assert rel_sample < 0.05  # summing 200 per-step uncertainties gave ~19%


def test_a_failing_sink_never_costs_the_result() -> None:
    class Broken(Recorder):
        def update(self, snapshot: Measurement) -> None:
            raise OSError("disk full")

    clock = FakeClock()
    with pytest.warns(greenai.errors.MeasurementWarning, match="disk full"):
        with greenai.track(
            devices=[FakeGPU(clock=clock)], clock=clock, sinks=[Broken()], checkpoint_s=0.5
        ) as job:
            clock.advance(2.0)
    assert job.result.energy_j > 0
    assert any("disk full" in n for n in job.result.notes)


def test_a_sink_must_have_the_three_methods() -> None:
    with pytest.raises(ConfigError, match="sink"):
        greenai.track(sinks=[object()])


def test_step_counts_and_options_are_checked_where_given() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
        with pytest.raises(ConfigError, match="non-negative integer"):
            job.step(samples="3")  # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            job.step(tokens=-1)
    with pytest.raises(ConfigError):
        greenai.track(devices=["gpu0"])  # type: ignore[list-item]
    with pytest.raises(ConfigError):
        greenai.track(period_s=float("inf"))
    with pytest.raises(ConfigError):
        greenai.track(123)  # type: ignore[arg-type]


def test_three_deep_phases_get_their_paths_and_out_of_order_exit_raises() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
        with job.phase("a"), job.phase("b"), job.phase("c"):
            clock.advance(0.5)
        a = job.phase("x")
        b = job.phase("y")
        a.__enter__()
        b.__enter__()
        with pytest.raises(greenai.errors.TrackerStateError, match="nest"):
            a.__exit__(None, None, None)
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)
    names = {p.name for p in job.result.phases}
    assert "a/b/c" in names and "a/a/b/c" not in names


def test_async_and_generator_functions_are_tracked_over_their_bodies() -> None:
    import asyncio

    clock = FakeClock()

    @greenai.track("co", devices=[FakeGPU(clock=clock)], clock=clock)
    async def work() -> int:
        clock.advance(1.0)
        return 3

    assert asyncio.run(work()) == 3
    assert work.last_result.duration_s == pytest.approx(1.0)  # type: ignore[attr-defined]

    @greenai.track("gen", devices=[FakeGPU(clock=clock)], clock=clock)
    def items():  # type: ignore[no-untyped-def]
        for i in range(3):
            clock.advance(0.5)
            yield i

    assert list(items()) == [0, 1, 2]
    assert items.last_result.duration_s == pytest.approx(1.5)  # type: ignore[attr-defined]


def test_no_module_outside_the_tracker_touches_its_private_attributes() -> None:
    root = pathlib.Path(greenai.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "tracker.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in {"tracker", "job", "t"}
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno} {node.attr}")
    assert not offenders, offenders


def test_a_model_whose_dtype_has_no_peak_keeps_its_result_and_the_users_exception() -> None:
    import torch

    class Gpu(FakeGPU):
        model = "NVIDIA H100 80GB HBM3"

    clock = FakeClock()
    model = torch.nn.Linear(4, 4).to(torch.complex64)
    job = greenai.track(devices=[Gpu(clock=clock)], clock=clock)
    with pytest.raises(ValueError, match="the user's own"):
        with job:
            job.count_flops(model, torch.randn(2, 4, dtype=torch.complex64))
            clock.advance(1.0)
            raise ValueError("the user's own")
    assert job.result.status == "failed"
    assert job.result.energy_j is not None and job.result.energy_j > 0
    assert any("MFU not computed" in n for n in job.result.notes)


def test_a_running_snapshots_phases_add_up_to_its_total() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock, power_w=300.0)], clock=clock) as job:
        for _ in range(40):
            with job.phase("fwd"):
                clock.advance(0.1)
        snap = job.snapshot()
    top = [p for p in snap.phases if "/" not in p.name]
    assert "(not yet attributed)" in {p.name for p in top}
    assert sum(p.energy_j for p in top) == pytest.approx(snap.energy_j, rel=1e-9)


def test_a_sink_that_hangs_does_not_hold_up_the_end_for_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from greenai import sinks

    release = threading.Event()

    class Slow(Recorder):
        def finish(self, result: Measurement) -> None:
            release.wait(10.0)

    monkeypatch.setattr(sinks, "FINISH_TIMEOUT_S", 0.5)
    job = greenai.track(devices=[FakeGPU()], sinks=[Slow()]).start()
    t = time.perf_counter()
    try:
        with pytest.warns(greenai.errors.MeasurementWarning, match="did not return"):
            result = job.stop()
    finally:
        release.set()  # its thread, left behind, ends now
    assert time.perf_counter() - t < 2.5
    assert any("did not return" in n for n in result.notes)


def test_devices_must_be_a_list_of_devices() -> None:
    with pytest.raises(ConfigError, match="list"):
        greenai.track(devices=FakeGPU())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="list"):
        greenai.track(devices=3)  # type: ignore[arg-type]
