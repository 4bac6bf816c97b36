"""From IT energy to facility energy, CO2e and water: PUE, grid intensity, renewables, WUE.

Conventions (each field's docstring repeats its own):

* Facility energy = IT energy × PUE (The Green Grid: PUE = facility energy / IT energy).
* Location-based CO2e = facility kWh × grid intensity (GHG Protocol Scope 2).
* Market-based CO2e = facility kWh × (1 − renewable_share) × grid intensity: energy
  covered by renewable contracts (PPAs, certificates) counts at 0 g/kWh and the rest at
  the grid average. The Scope 2 guidance wants a residual-mix factor for the rest (the grid
  with the contracted renewables taken out, which is higher than the average); codecarbon
  ships no residual-mix data, so the grid average is used and the figure is a lower bound.
* Water = IT kWh × WUE (The Green Grid: WUE = site water in litres / IT energy in kWh;
  it is per IT kWh, so PUE is not applied again).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from greenai.carbon.grid import GridIntensity, grid_intensity
from greenai.errors import ConfigError
from greenai.units import J_PER_KWH

__all__ = ["Accounting", "CarbonFigures", "account"]

NO_INTENSITY = (
    "none: pass country= (ISO alpha-3 such as 'FRA', or 'WORLD' for codecarbon's world "
    "average) or carbon_intensity_g_per_kwh= to get CO2e; greenai does not guess a location"
)

_OPTIONAL_LIMITS = (
    ("carbon_intensity_g_per_kwh", 0.0, math.inf, "grams CO2e per kWh; None to look it up"),
    ("renewable_share", 0.0, 1.0, "share of facility energy under renewable contracts"),
    ("wue_l_per_kwh", 0.0, math.inf, "litres of site water per IT kWh; None when unknown"),
)


def _check(name: str, value: Any, low: float, high: float, what: str) -> None:
    """Raise ConfigError unless ``value`` is a finite real number in [low, high]."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and low <= value <= high):
        bound = f"in [{low}, {high}]" if math.isfinite(high) else f"≥ {low}"
        raise ConfigError(f"{name} must be {bound} ({what}); got {value!r}")


@dataclass(frozen=True)
class Accounting:
    """How a facility turns IT energy into facility energy, CO2e and water.

    Values are checked on construction; the grid is looked up (in codecarbon's files, no
    network) only by :meth:`grid` and :func:`account`.

    Attributes:
        pue: Power usage effectiveness, facility energy / IT energy, ≥ 1.0. 1.0 counts IT
            energy only (a laptop, or when the provider's PUE is unknown).
        country: ISO alpha-3 code of the grid ("CHN"), a country name, or ``"WORLD"`` for
            codecarbon's world average. None: no grid, so no CO2e (unless overridden).
        region: Sub-national grid ("california", "ontario", "SE3"); needs ``country``.
        carbon_intensity_g_per_kwh: Your own grid factor, g CO2e/kWh, ≥ 0 (a supplier's
            figure, a live value). Wins over ``country``; the source says so.
        renewable_share: Share of facility energy covered by renewable contracts (PPAs,
            certificates), in [0, 1], for the market-based figure. Not the grid's own
            renewable share: that is already inside the grid average.
        wue_l_per_kwh: Water usage effectiveness, litres of site water per IT kWh, ≥ 0.
    """

    pue: float = 1.0
    country: str | None = None
    region: str | None = None
    carbon_intensity_g_per_kwh: float | None = None
    renewable_share: float | None = None
    wue_l_per_kwh: float | None = None

    def __post_init__(self) -> None:
        _check("pue", self.pue, 1.0, math.inf, "facility energy / IT energy")
        for name, low, high, what in _OPTIONAL_LIMITS:
            if getattr(self, name) is not None:
                _check(name, getattr(self, name), low, high, what)
        for name in ("country", "region"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise ConfigError(f"{name} must be a non-empty str or None; got {value!r}")
        if self.region is not None and self.country is None:
            raise ConfigError(f"region={self.region!r} needs country= (e.g. country='USA')")

    def grid(self) -> GridIntensity | None:
        """The grid intensity of ``country``/``region``, or None without a country.

        Raises:
            ConfigError: Unknown country or region (see :func:`grid_intensity`).
        """
        return None if self.country is None else grid_intensity(self.country, self.region)


@dataclass(frozen=True)
class CarbonFigures:
    """Energy, CO2e and water of one job at one facility. Build it with :func:`account`.

    Attributes:
        it_energy_kwh: Energy the IT equipment drew (kWh).
        facility_energy_kwh: ``it_energy_kwh × pue`` (kWh).
        carbon_intensity_g_per_kwh: Grid factor used (g CO2e/kWh), or None when unknown.
        carbon_intensity_source: Where the factor came from, or why there is none.
        co2e_kg: Location-based: facility kWh × grid factor / 1000 (kg CO2e); None without
            a factor.
        co2e_market_kg: Market-based: facility kWh × (1 − renewable_share) × grid factor /
            1000 (kg CO2e), the grid average standing in for a residual mix (see module
            docstring); None without a factor or without ``renewable_share``.
        water_l: On-site water, IT kWh × WUE (litres); None without WUE.
        country, region: The grid looked up, when a country was given.
    """

    it_energy_kwh: float
    facility_energy_kwh: float
    pue: float
    carbon_intensity_g_per_kwh: float | None
    carbon_intensity_source: str
    co2e_kg: float | None
    co2e_market_kg: float | None
    renewable_share: float | None
    water_l: float | None
    wue_l_per_kwh: float | None
    country: str | None = None
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)


def account(it_energy_j: float, config: Accounting | None = None) -> CarbonFigures:
    """Turn the IT energy of a job into facility energy, CO2e and water.

    Args:
        it_energy_j: Energy the IT equipment drew (J), ≥ 0, e.g. ``Measurement.energy_j``.
        config: The facility; ``Accounting()`` (PUE 1, no grid) when None.

    Returns:
        The figures, with CO2e None (and the source saying why) when no grid is known.

    Raises:
        ConfigError: ``it_energy_j`` is negative or not a number, or the country or region
            is unknown.
    """
    _check("it_energy_j", it_energy_j, 0.0, math.inf, "joules drawn by the IT equipment")
    config = config if config is not None else Accounting()
    grid = config.grid()
    intensity: float | None
    if config.carbon_intensity_g_per_kwh is not None:
        intensity = float(config.carbon_intensity_g_per_kwh)
        source = "given carbon_intensity_g_per_kwh"
        if grid is not None:
            place = grid.country + (f"/{grid.region}" if grid.region else "")
            source += f" (overrides {grid.g_per_kwh:g} g/kWh for {place} from {grid.source})"
    elif grid is not None:
        intensity, source = grid.g_per_kwh, grid.source
    else:
        intensity, source = None, NO_INTENSITY
    it_kwh = it_energy_j / J_PER_KWH
    facility_kwh = it_kwh * config.pue
    co2e = None if intensity is None else facility_kwh * intensity / 1000.0
    share = config.renewable_share
    return CarbonFigures(
        it_energy_kwh=it_kwh,
        facility_energy_kwh=facility_kwh,
        pue=config.pue,
        carbon_intensity_g_per_kwh=intensity,
        carbon_intensity_source=source,
        co2e_kg=co2e,
        co2e_market_kg=None if co2e is None or share is None else co2e * (1.0 - share),
        renewable_share=share,
        water_l=None if config.wue_l_per_kwh is None else it_kwh * config.wue_l_per_kwh,
        wue_l_per_kwh=config.wue_l_per_kwh,
        country=grid.country if grid else None,
        region=grid.region if grid else None,
    )
