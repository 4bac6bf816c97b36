"""Which sampling loop is in use: the C one (``greenai._native``) or its Python twin.

``HAS_NATIVE`` is true when the extension was built (``pip install .`` with a C compiler)
and ``GREENAI_NO_NATIVE`` is not set. Both loops have one API (``greenai/_native.pyi``) and
record layout (:data:`RECORD_DTYPE`); :mod:`greenai.sampling.feed` wires either into a
:class:`~greenai.timeline.Timeline`.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Protocol

from greenai.errors import ConfigError
from greenai.sampling import native_py
from greenai.sampling.native_py import MIN_PERIOD_NS, RECORD_DTYPE

__all__ = [
    "HAS_NATIVE",
    "MIN_PERIOD_NS",
    "RECORD_DTYPE",
    "SamplingLoop",
    "describe_status",
    "loop_class",
    "native_disabled",
    "sampler_kind",
    "to_clock_s",
]


def _import_native() -> ModuleType | None:
    try:
        from greenai import _native
    except ImportError:
        return None
    if RECORD_DTYPE.itemsize != _native.RECORD_SIZE:  # pragma: no cover - a stale build
        return None
    return _native


_native = _import_native()


def native_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``GREENAI_NO_NATIVE`` asks for the Python sampler (any value but ``""``/``0``)."""
    return (os.environ if environ is None else environ).get("GREENAI_NO_NATIVE", "") not in (
        "",
        "0",
    )


HAS_NATIVE: bool = _native is not None and not native_disabled()
"""Whether the C sampling loop is built and enabled in this process."""


class SamplingLoop(Protocol):
    """The API both loops implement (see ``greenai/_native.pyi`` for the details)."""

    def __init__(self, period_ns: int = ..., *, capacity: int = ...) -> None:
        """Create a loop with no sources."""
        ...

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        ...

    @property
    def period_ns(self) -> int:
        """The period in nanoseconds."""
        ...

    @property
    def overflow(self) -> int:
        """Records dropped because the buffer was full."""
        ...

    def add_rapl(self, path: str | os.PathLike[str], max_energy_range_uj: int) -> int:
        """Add a RAPL ``energy_uj`` file; return its source index."""
        ...

    def add_nvml(
        self,
        device: int | str,
        *,
        power: str = ...,
        energy_period_ns: int = ...,
        lib: str | None = ...,
    ) -> int:
        """Add an NVIDIA GPU by NVML index or UUID; return its source index."""
        ...

    def start(self) -> None:
        """Read once, then start the thread."""
        ...

    def stop(self) -> None:
        """Stop the thread, then read once more."""
        ...

    def tick(self) -> None:
        """Read every source once (not while running)."""
        ...

    def drain(self) -> bytes:
        """Take the buffered records."""
        ...

    def close(self) -> None:
        """Stop and release files and NVML."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: ticks, missed, overflow, late_max_ns, late_sum_ns, cpu_ns, sources."""
        ...


def loop_class(native: bool | None = None) -> type[SamplingLoop]:
    """The loop class to use.

    Args:
        native: True for the C loop, False for the Python twin, None for the C loop when
            :data:`HAS_NATIVE` (re-reading ``GREENAI_NO_NATIVE`` now).

    Raises:
        ConfigError: ``native=True`` but the extension is not built.
    """
    if native is None:
        native = _native is not None and not native_disabled()
    if not native:
        return native_py.Loop
    if _native is None:
        raise ConfigError(
            "the native sampler (greenai._native) is not built: reinstall greenai where a C "
            "compiler and the Python headers are present (pip install .), or pass native=False"
        )
    loop: type[SamplingLoop] = _native.Loop
    return loop


def sampler_kind(readable: Sequence[str] | None = None) -> str:
    """One line for ``greenai devices``: which sampler runs here, and why.

    Args:
        readable: The names of the opened devices the native loop can read itself
            (``device.capabilities().native_loop``: RAPL zones, NVIDIA GPUs); None when not
            known (the line then says only which loop is built).
    """
    if _native is None:
        return "python (greenai._native is not built: no C compiler at install time)"
    if native_disabled():
        return "python (GREENAI_NO_NATIVE is set)"
    if readable is None:
        return "native (C thread, greenai._native) for RAPL zones and NVIDIA GPUs"
    if not readable:
        return (
            "python (greenai._native is built, but no RAPL zone or NVIDIA GPU is readable"
            " here: every device is read by the Python sampler thread)"
        )
    return f"native (C thread, greenai._native; reads {', '.join(readable)} without the GIL)"


def describe_status(status: int) -> str:
    """Say what a record's nonzero ``status`` means (``-errno`` or an NVML return code)."""
    if status < 0:
        if -status == errno.EBADMSG:
            return "the counter file held no number"
        return os.strerror(-status)
    return f"NVML error {status}"


def _clock_offset_s() -> float:
    """``time.perf_counter()`` minus the loops' CLOCK_MONOTONIC, in seconds (0 on Linux)."""
    if time.get_clock_info("perf_counter").implementation == (
        time.get_clock_info("monotonic").implementation
    ):
        return 0.0
    return time.perf_counter() - time.monotonic_ns() * 1e-9  # pragma: no cover - not Linux


_OFFSET_S = _clock_offset_s()


def to_clock_s(t_ns: int) -> float:
    """Convert a loop timestamp (ns, CLOCK_MONOTONIC) to the timeline's clock (seconds)."""
    return t_ns * 1e-9 + _OFFSET_S
