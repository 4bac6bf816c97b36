from __future__ import annotations

import pytest

import greenai
from greenai.devices.mig import MigInstance
from greenai.errors import DeviceError
from greenai.testing import FakeClock, FakeGPU


def test_a_tracked_mig_instance_is_a_model_estimate_with_a_wide_uncertainty() -> None:
    clock = FakeClock()
    parent = FakeGPU(power_w=300.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    mig = MigInstance(parent, 60 / 132, uuid="MIG-x", name="gpu0", profile="60 of 132 SMs")
    with greenai.track("mig", devices=[mig], clock=clock) as job:
        clock.advance(10.0)
    [d] = job.result.devices
    assert d.method == "model" and job.result.methods == ("model",)
    assert d.energy_j == pytest.approx(300.0 * 10.0 * 60 / 132, rel=0.02)
    assert d.uncertainty_j >= 0.4 * d.energy_j  # the share is a convention, not a reading


def test_share_out_of_range_is_refused() -> None:
    with pytest.raises(DeviceError):
        MigInstance(FakeGPU(), 0.0, uuid="MIG-x", name="gpu0", profile="")
    with pytest.raises(DeviceError):
        MigInstance(FakeGPU(), 1.5, uuid="MIG-x", name="gpu0", profile="")


def test_a_mig_instance_keeps_its_parent_s_power_window_and_its_share_of_the_limit() -> None:
    parent = FakeGPU(power_limit_w=700.0, sensor_window_s=0.02)
    mig = MigInstance(parent, 0.5, uuid="MIG-x", name="gpu0", profile="half")
    assert mig.power_window_s == 0.02 and mig.power_limit_w == 350.0
    bare = MigInstance(FakeGPU(), 0.5, uuid="MIG-y", name="gpu1", profile="half")
    assert bare.power_limit_w is None
