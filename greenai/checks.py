"""Checks of the tracker's option values: each kind of value checked in one place.

:class:`greenai.options.TrackOptions` calls these once, on construction; the CLI uses
:func:`seconds` as an argparse type. Each raises :class:`~greenai.errors.ConfigError`
saying what the option takes.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
from collections.abc import Iterable
from typing import Any

from greenai.devices.base import Device
from greenai.errors import ConfigError

__all__ = [
    "check_count",
    "check_devices",
    "check_flops",
    "check_seconds",
    "check_series",
    "check_sinks",
    "check_store",
    "is_number",
    "is_sink_factory",
    "megabytes",
    "positive",
    "seconds",
]


def seconds(text: str) -> float:
    """An argparse type: a finite, positive number of seconds (``inf`` and ``nan`` refused)."""
    return positive(text, "seconds")


def megabytes(text: str) -> float:
    """An argparse type: a finite, positive size in MB."""
    return positive(text, "MB")


def positive(text: str, unit: str) -> float:
    """``text`` as a finite number > 0 of ``unit``, for argparse types.

    Raises:
        argparse.ArgumentTypeError: Not a number, not finite, or not above 0.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of {unit}: {text!r}")
    return value


def check_devices(value: Any) -> tuple[Device, ...] | None:
    """``devices=``: None, or a list of greenai Devices with unique names (as a tuple).

    Raises:
        ConfigError: Not a list, not Devices, or repeated names.
    """
    if value is None:
        return None
    if isinstance(value, Device | str | bytes):
        raise ConfigError(f"devices takes a list of devices: devices=[{value!r}]")
    try:
        devices = tuple(value)
    except TypeError:
        raise ConfigError(
            f"devices takes a list of greenai Device objects, got {value!r}"
        ) from None
    bad = [d for d in devices if not isinstance(d, Device)]
    if bad:
        raise ConfigError(
            "devices must be greenai Device objects (greenai.devices.discover() lists"
            f" this machine's); got {bad[0]!r}"
        )
    names = [d.name for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"device names must be unique; repeated: {dupes}")
    return devices


def is_sink_factory(sink: Any) -> bool:
    """A sink factory (a class, a function) rather than a sink: called once per job."""
    from greenai.sinks import Sink

    return isinstance(sink, type) or (callable(sink) and not isinstance(sink, Sink))


def check_sinks(value: Any) -> tuple[Any, ...]:
    """``sinks=``: a list of sinks and sink factories (as a tuple).

    Raises:
        ConfigError: Not a list, or an item that is neither a sink nor a factory.
    """
    from greenai.sinks import Sink
    from greenai.sinks import check_sinks as check_sink_objects

    if value is None:
        return ()
    if isinstance(value, str | bytes | Sink) or not isinstance(value, Iterable):
        check_sink_objects(value)  # raises, saying what sinks= takes
    sinks = tuple(value)
    check_sink_objects([sink for sink in sinks if not is_sink_factory(sink)])
    return sinks


def check_series(value: Any) -> None:
    """``carbon_intensity_series=``: of a usable kind (it is loaded at start)."""
    if value is None or isinstance(value, str | os.PathLike):
        return
    from greenai.carbon.series import IntensitySeries

    if isinstance(value, IntensitySeries):
        return
    if type(value).__name__ == "Series" and type(value).__module__.startswith("pandas"):
        return
    raise ConfigError(
        "carbon_intensity_series takes a CSV path (UTC times, g CO2e/kWh) or a pandas"
        f" Series with a DatetimeIndex; got {type(value).__name__}"
    )


def check_store(value: Any) -> None:
    """``store=``: True, False/None, a path or a RunStore (opened at start)."""
    if value is None or isinstance(value, bool | str | os.PathLike):
        return
    from greenai.store import RunStore

    if not isinstance(value, RunStore):
        raise ConfigError(f"store must be True, a path or a RunStore, got {value!r}")


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_seconds(name: str, value: Any, *, allow_none: bool = False) -> None:
    """A finite positive number of seconds (or None, with ``allow_none``).

    Raises:
        ConfigError: It is not.
    """
    if value is None and allow_none:
        return
    if not (is_number(value) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite positive number of seconds, got {value!r}")


def check_flops(name: str, value: Any) -> None:
    """A FLOP count: a finite number >= 0.

    Raises:
        ConfigError: It is not.
    """
    if not (is_number(value) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a non-negative number of FLOPs, got {value!r}")


def check_count(name: str, value: Any) -> int:
    """A step's samples or tokens: a non-negative integer (numpy integers too).

    Raises:
        ConfigError: It is not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(
            f"step({name}=...) takes a non-negative integer count, got {value!r}"
            f" (for a batch, pass len(batch) or the batch size)"
        )
    return int(value)
