"""track(..., scope=): process attribution applied by the tracker, and summed across ranks."""

from __future__ import annotations

import os
import time

import pytest

import greenai
from greenai.devices.attribution import Attributed
from greenai.devices.base import Device, Reading
from greenai.distributed import RankInfo, aggregate, device_id, own_devices
from greenai.distributed.session import rank_payload
from greenai.errors import ConfigError
from greenai.testing import FakeClock, FakeGPU

WATTS = 40.0


class SteadyCpu(Device):
    name = "cpu-steady"
    kind = "cpu"
    method = "model"
    relative_uncertainty = 0.3

    def read(self) -> Reading:
        return Reading(power_w=WATTS)


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_scope_is_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match="scope must be 'machine'"):
        greenai.track("job", scope="host")
    with pytest.raises(ConfigError, match="scope must be 'machine'"):
        greenai.Tracker("job", scope=None)  # type: ignore[arg-type]


def test_machine_scope_is_the_default_and_unchanged() -> None:
    clock = FakeClock()
    with greenai.track("job", devices=[SteadyCpu()], clock=clock, period_s=0.5) as job:
        clock.advance(4.0)
    (device,) = job.result.devices  # type: ignore[union-attr]
    assert (device.name, device.scope) == ("cpu-steady", "machine")
    assert device.energy_j == pytest.approx(WATTS * 4.0)


def test_process_scope_wraps_given_devices() -> None:
    with greenai.track("job", devices=[SteadyCpu()], period_s=0.05, scope="process") as job:
        assert [d.scope for d in job.devices] == ["process"]
        burn(0.6)
    result = job.result
    assert result is not None
    (device,) = result.devices
    assert (device.name, device.scope, device.method) == ("cpu-steady@process", "process", "model")
    # This process's share of the busy CPU time: some, and never more than the whole.
    assert 0.0 < device.energy_j <= WATTS * result.duration_s * 1.001
    attributed = job.devices[0]
    assert isinstance(attributed, Attributed) and attributed.pid == os.getpid()


def test_process_scope_wraps_found_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    import greenai.devices.discovery as discovery

    monkeypatch.setattr(discovery, "discover", lambda: [SteadyCpu()])
    with greenai.track("job", period_s=0.05, scope="process", distributed=False) as job:
        burn(0.3)
    assert [(d.name, d.scope) for d in job.result.devices] == [  # type: ignore[union-attr]
        ("cpu-steady@process", "process")
    ]


def test_process_scope_refuses_devices_attributed_already() -> None:
    wrapped = Attributed(SteadyCpu(), lambda: 0.5, pid=os.getpid(), how="test")
    job = greenai.track("job", devices=[wrapped], scope="process")
    with pytest.raises(ConfigError, match="already attributed"):
        job.start()


def test_an_attributed_gpu_keeps_its_power_limit_and_window() -> None:
    gpu = FakeGPU(power_limit_w=700.0, sensor_window_s=0.02)
    wrapped = Attributed(gpu, lambda: 0.5, pid=os.getpid(), how="test")
    assert wrapped.power_limit_w == 700.0 and wrapped.power_window_s == 0.02


# --- distributed: each rank's share is its own device ---------------------------------------


def rank(r: int, local_world_size: int = 2) -> RankInfo:
    return RankInfo(
        rank=r,
        world_size=2,
        local_rank=r,
        local_world_size=local_world_size,
        host="node0",
        backend="gloo",
    )


def test_every_rank_keeps_host_devices_in_process_scope() -> None:
    gpus = [FakeGPU("gpu0", uuid="GPU-0"), FakeGPU("gpu1", uuid="GPU-1")]
    cpu = SteadyCpu()
    found = [*gpus, cpu]
    assert own_devices(found, rank(1)) == [gpus[1]]  # machine scope: local rank 0 has the CPU
    assert own_devices(found, rank(1), scope="process") == [gpus[1], cpu]
    assert own_devices(found, rank(0), scope="process") == [gpus[0], cpu]


def test_attributed_device_identity_names_its_process() -> None:
    host = FakeGPU("host", uuid="HOST")
    a = Attributed(host, lambda: 0.5, pid=100, how="test")
    b = Attributed(host, lambda: 0.5, pid=101, how="test")
    assert device_id(host) == "HOST"
    assert device_id(a) == "HOST@pid100" != device_id(b)
    assert device_id(Attributed(SteadyCpu(), lambda: 1.0, pid=7, how="t")) == "cpu:cpu-steady@pid7"


@pytest.mark.parametrize("scope", ["machine", "process"])
def test_ranks_shares_of_one_host_device_are_summed(scope: str) -> None:
    # Two ranks on one host read the same host device (same UUID). Whole, it is counted
    # once; as each rank's share (process scope), the shares are two devices and add up.
    payloads, energies = [], []
    for r in (0, 1):
        clock = FakeClock()
        device: Device = FakeGPU("host", power_w=100.0, uuid="HOST", seed=r, clock=clock)
        if scope == "process":
            device = Attributed(device, lambda: 0.25, pid=1000 + r, how="test")
        job = greenai.Tracker("sim", devices=[device], clock=clock, distributed=False)
        with job:
            clock.advance(10.0)
        assert job.result is not None
        energies.append(job.result.energy_j)
        payloads.append(rank_payload(job, job.result, rank(r)))
    total = aggregate(payloads, world_size=2)
    assert total.energy_j is not None
    if scope == "process":
        assert energies[0] == pytest.approx(0.25 * 100.0 * 10.0, rel=0.02)
        assert total.energy_j == pytest.approx(energies[0] + energies[1], rel=1e-12)
    else:
        assert total.energy_j == pytest.approx(energies[0], rel=1e-12)
