from __future__ import annotations

import threading

import pytest

from greenai.devices.base import Device, Reading
from greenai.errors import DeviceUnavailableError


class Counted(Device):
    """Records each real open and close."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def open(self) -> None:
        self.events.append("open")

    def read(self) -> Reading:
        return Reading(power_w=1.0)

    def close(self) -> None:
        self.events.append("close")


class Child(Counted):
    """Calls super() from its own hooks, as subclasses of real devices do."""

    def open(self) -> None:
        super().open()
        self.events.append("child-open")

    def close(self) -> None:
        self.events.append("child-close")
        super().close()


class CloseOnly(Device):
    def __init__(self) -> None:
        self.closed = 0

    def read(self) -> Reading:
        return Reading(power_w=1.0)

    def close(self) -> None:
        self.closed += 1


class FailsOnce(Counted):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def open(self) -> None:
        if self.fail:
            self.fail = False
            raise DeviceUnavailableError("not yet")
        super().open()


def test_only_the_first_open_and_the_last_close_run() -> None:
    device = Counted()
    device.open()
    device.open()
    assert device.open_count == 2
    device.close()
    assert device.events == ["open"]
    device.close()
    device.close()  # an extra close releases nothing twice
    assert device.events == ["open", "close"]
    assert device.open_count == 0
    device.open()
    assert device.events == ["open", "close", "open"]


def test_super_calls_inside_hooks_are_not_counted_again() -> None:
    device = Child()
    device.open()
    device.open()
    device.close()
    assert device.events == ["open", "child-open"]
    device.close()
    assert device.events == ["open", "child-open", "child-close", "close"]
    assert device.open_count == 0


def test_a_device_with_only_close_still_counts_opens() -> None:
    device = CloseOnly()
    device.open()
    device.open()
    device.close()
    assert device.closed == 0
    device.close()
    assert device.closed == 1


def test_a_failed_open_is_not_counted() -> None:
    device = FailsOnce()
    with pytest.raises(DeviceUnavailableError):
        device.open()
    assert device.open_count == 0
    device.close()
    assert device.events == []
    device.open()
    assert device.open_count == 1 and device.events == ["open"]


def test_concurrent_opens_run_the_hook_once() -> None:
    device = Counted()
    barrier = threading.Barrier(8)

    def open_it() -> None:
        barrier.wait()
        device.open()

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert device.events == ["open"] and device.open_count == 8


def test_describe_and_repr_say_the_scope() -> None:
    device = Counted()
    assert device.describe()["scope"] == "machine"
    assert "scope" not in repr(device)
