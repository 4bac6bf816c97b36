"""Embodied (manufacturing) CO2e of the hardware a job used, charged by device-hours.

A device's manufacturing CO2e is spread over its service life: a job that holds a GPU for
``h`` hours is charged ``kg_co2e × h / (service_life_h × utilisation)``. ``utilisation``
is the share of its life the device spends on jobs (1.0 charges jobs only for the hours
they hold it; 0.5 also charges them for the idle half). The figures come from publications
(:data:`greenai.carbon._embodied_data.FACTORS`, each cited, each marked when it is a class
estimate) or from the user.

Embodied CO2e is Scope 3 (capital goods), operational CO2e is Scope 2: greenai reports the
two side by side and never adds one to the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from greenai.carbon._embodied_data import FACTORS, EmbodiedFactor
from greenai.errors import ConfigError

__all__ = [
    "DEFAULT_SERVICE_LIFE_YEARS",
    "FACTORS",
    "EmbodiedFactor",
    "EmbodiedFigures",
    "EmbodiedShare",
    "embodied_co2e",
    "gpu_job_embodied_co2e",
]

DEFAULT_SERVICE_LIFE_YEARS = 6.0
"""The service life Luccioni et al. (2023) assume for GPU servers; pass your own."""
HOURS_PER_YEAR = 365.25 * 24


@dataclass(frozen=True)
class EmbodiedShare:
    """The part of one factor's CO2e charged to the job.

    Attributes:
        factor: The figure used.
        device_hours: Hours of that device the job held (summed over units).
        co2e_kg: Charged share, kg CO2e.
    """

    factor: EmbodiedFactor
    device_hours: float
    co2e_kg: float


@dataclass(frozen=True)
class EmbodiedFigures:
    """Embodied CO2e charged to a job; reported beside operational CO2e, never added to it.

    Attributes:
        co2e_kg: Sum of the shares, kg CO2e.
        shares: One per factor used, with its source.
        service_life_years: Service life the CO2e is spread over.
        utilisation: Share of the service life spent on jobs, in (0, 1].
        class_estimate: True when any share rests on a class estimate.
        basis: One line on how the figure was made.
    """

    co2e_kg: float
    shares: tuple[EmbodiedShare, ...]
    service_life_years: float
    utilisation: float
    class_estimate: bool
    basis: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)


def _real(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        bound = f"> {low:g}" if low_open else f"≥ {low:g}"
        bound += f" and ≤ {high:g}" if math.isfinite(high) else ""
        raise ConfigError(f"{name} must be a number {bound}; got {value!r}")
    return float(value)


def _factor(item: EmbodiedFactor | str) -> EmbodiedFactor:
    if isinstance(item, EmbodiedFactor):
        return item
    if item in FACTORS:
        return FACTORS[item]
    raise ConfigError(
        f"unknown embodied factor {item!r}; built in: {', '.join(sorted(FACTORS))}, or pass "
        "an EmbodiedFactor(key, description, kg_co2e, source, class_estimate)"
    )


def embodied_co2e(
    usage: Iterable[tuple[EmbodiedFactor | str, float]],
    *,
    service_life_years: float = DEFAULT_SERVICE_LIFE_YEARS,
    utilisation: float = 1.0,
) -> EmbodiedFigures:
    """Charge a job its share of the manufacturing CO2e of the devices it held.

    Args:
        usage: ``(factor, device_hours)`` pairs: a built-in factor's key
            (``"datacenter-gpu"``) or an :class:`EmbodiedFactor`, and the hours of that
            device the job held, summed over units (4 GPUs for 2 h: 8).
        service_life_years: Years the devices serve, > 0.
        utilisation: Share of the service life spent on jobs, in (0, 1].

    Returns:
        The charged CO2e, per factor, with sources.

    Raises:
        ConfigError: An unknown factor key, negative or non-finite hours, or a service
            life or utilisation out of range.
    """
    life = _real("service_life_years", service_life_years, 0.0, math.inf, low_open=True)
    use = _real("utilisation", utilisation, 0.0, 1.0, low_open=True)
    hours_per_life = life * HOURS_PER_YEAR * use
    merged: dict[str, tuple[EmbodiedFactor, float]] = {}
    for item, hours in usage:
        factor = _factor(item)
        hours = _real(f"device_hours of {factor.key}", hours, 0.0, math.inf)
        known = merged.get(factor.key)
        if known is not None and known[0] != factor:
            raise ConfigError(f"two different embodied factors share the key {factor.key!r}")
        merged[factor.key] = (factor, hours + (known[1] if known else 0.0))
    shares = tuple(EmbodiedShare(f, h, f.kg_co2e * h / hours_per_life) for f, h in merged.values())
    basis = (
        f"manufacturing CO2e × device-hours / ({life:g} years of service × {use:.0%} "
        "utilisation); Scope 3, reported beside operational CO2e and not added to it"
    )
    return EmbodiedFigures(
        co2e_kg=math.fsum(s.co2e_kg for s in shares),
        shares=shares,
        service_life_years=life,
        utilisation=use,
        class_estimate=any(s.factor.class_estimate for s in shares),
        basis=basis,
    )


def gpu_job_embodied_co2e(
    gpus: int,
    duration_s: float,
    *,
    gpus_per_server: int = 8,
    gpu: EmbodiedFactor | str = "datacenter-gpu",
    server: EmbodiedFactor | str | None = "gpu-server-host",
    service_life_years: float = DEFAULT_SERVICE_LIFE_YEARS,
    utilisation: float = 1.0,
) -> EmbodiedFigures:
    """Embodied CO2e of a GPU job: its GPUs, and its share of their servers.

    Args:
        gpus: GPUs the job held (``Measurement.devices`` of kind ``"gpu"``), ≥ 0.
        duration_s: How long it held them, s (``Measurement.duration_s``).
        gpus_per_server: GPUs per server; the job is charged ``gpus / gpus_per_server`` of
            a server.
        gpu: Factor for one GPU.
        server: Factor for one server without its GPUs, or None to leave servers out.
        service_life_years: As :func:`embodied_co2e`.
        utilisation: As :func:`embodied_co2e`.

    Returns:
        As :func:`embodied_co2e`.

    Raises:
        ConfigError: Bad counts or duration, or as :func:`embodied_co2e`.
    """
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise ConfigError(f"gpus must be an int ≥ 0; got {gpus!r}")
    if not isinstance(gpus_per_server, int) or isinstance(gpus_per_server, bool):
        raise ConfigError(f"gpus_per_server must be an int ≥ 1; got {gpus_per_server!r}")
    if gpus_per_server < 1:
        raise ConfigError(f"gpus_per_server must be an int ≥ 1; got {gpus_per_server!r}")
    hours = _real("duration_s", duration_s, 0.0, math.inf) / 3600.0
    usage: list[tuple[EmbodiedFactor | str, float]] = [(gpu, gpus * hours)]
    if server is not None:
        usage.append((server, gpus / gpus_per_server * hours))
    return embodied_co2e(usage, service_life_years=service_life_years, utilisation=utilisation)
