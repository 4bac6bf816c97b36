"""Machine scope on a busy machine says so (issue 23)."""

from __future__ import annotations

import warnings

import pytest

import greenai
from greenai.busy import BUSY_SHARE, CpuWatch, busy_note
from greenai.errors import MeasurementWarning
from greenai.testing import FakeClock, FakeGPU


class Counters:
    """Cumulative CPU seconds and a wall clock that a test moves by hand."""

    def __init__(self) -> None:
        self.own = self.busy = self.wall = 0.0

    def watch(self, cpus: int = 2) -> CpuWatch:
        return CpuWatch(lambda: self.own, lambda: self.busy, cpus, lambda: self.wall)

    def run(self, wall_s: float, own_s: float, other_s: float) -> None:
        self.wall += wall_s
        self.own += own_s
        self.busy += own_s + other_s


def test_share_is_other_processes_cpu_time_over_the_machines() -> None:
    c = Counters()
    w = c.watch(cpus=2)
    assert w.share() is None  # not started
    w.start()
    c.run(wall_s=10.0, own_s=4.0, other_s=8.0)  # 8 of 2 × 10 CPU seconds
    assert w.share() == pytest.approx(0.4)
    note = w.note()
    assert note is not None and "40%" in note and 'scope="process"' in note


def test_a_quiet_machine_or_a_short_job_gets_no_note() -> None:
    c = Counters()
    w = c.watch(cpus=2)
    w.start()
    c.run(wall_s=10.0, own_s=10.0, other_s=6.0)  # 30% of the CPUs: under a third
    assert w.share() == pytest.approx(0.3) and BUSY_SHARE > 0.3
    assert w.note() is None
    short = Counters()
    s = short.watch()
    s.start()
    short.run(wall_s=0.5, own_s=0.0, other_s=1.0)
    assert s.share() is None


def test_a_machine_scope_cpu_job_warns_once_and_notes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greenai.devices.cpu_model import CpuModel

    c = Counters()
    monkeypatch.setattr(CpuWatch, "for_process", classmethod(lambda cls, pid=None: c.watch()))
    clock = FakeClock()
    cpu = CpuModel(tdp_w=100.0, cpu_percent=lambda: 50.0, sockets=1, threads_per_socket=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MeasurementWarning)
        with greenai.track("busy", devices=[cpu], clock=clock) as job:
            clock.advance(10.0)
            c.run(wall_s=10.0, own_s=2.0, other_s=15.0)
    busy = [w for w in caught if "other processes used" in str(w.message)]
    assert len(busy) == 1 and "75%" in str(busy[0].message)
    assert any(n == busy_note(0.75) for n in job.result.notes)


def test_a_gpu_only_job_is_not_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(cls: type, pid: int | None = None) -> CpuWatch:
        raise AssertionError("a GPU-only job needs no CPU watch")

    monkeypatch.setattr(CpuWatch, "for_process", classmethod(refuse))
    clock = FakeClock()
    with greenai.track("gpu", devices=[FakeGPU(clock=clock)], clock=clock) as job:
        clock.advance(1.0)
    assert not any("other processes used" in n for n in job.result.notes)


def test_the_demo_says_which_scope_it_used() -> None:
    from greenai.demo import scope_line

    clock = FakeClock()
    with greenai.track("d", devices=[FakeGPU(clock=clock)], clock=clock) as job:
        clock.advance(1.0)
    line = scope_line(job.result)
    assert line.startswith("scope: machine") and 'scope="process"' in line


def test_devices_attributed_to_a_process_tree_are_not_watched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`greenai serve-proxy` (a command, or --pid) hands the tracker devices attributed to
    the server's tree already: those figures are process scope, so no busy note telling
    the user to switch to process scope (it once came, wrongly, on every busy machine)."""
    import os

    from greenai.devices.attribution import apply_scope
    from greenai.devices.cpu_model import CpuModel

    c = Counters()  # a busy machine, as in the machine-scope test above
    monkeypatch.setattr(CpuWatch, "for_process", classmethod(lambda cls, pid=None: c.watch()))
    clock = FakeClock()
    results = []
    for attributed in (False, True):
        cpu = CpuModel(tdp_w=100.0, cpu_percent=lambda: 50.0, sockets=1, threads_per_socket=2)
        devices = apply_scope([cpu], "process", pid=os.getpid()) if attributed else [cpu]
        with greenai.track("served", devices=devices, clock=clock) as job:
            clock.advance(10.0)
            c.run(wall_s=10.0, own_s=2.0, other_s=15.0)
        results.append(any("other processes used" in n for n in job.result.notes))
    assert results == [True, False]  # the machine-scope one noted, the attributed one not
