"""From IT energy to facility energy, CO2e and water: PUE, grid intensity, renewables, WUE.

Conventions (each field's docstring repeats its own):

* Facility energy = IT energy × PUE (The Green Grid: PUE = facility energy / IT energy).
* Location-based CO2e = facility kWh × grid intensity (GHG Protocol Scope 2).
* Market-based CO2e (GHG Protocol Scope 2 Guidance, 2015, ch. 6 and Table 6.3) =
  facility kWh × (1 − renewable_share) × factor: energy covered by contractual instruments
  (certificates, PPAs: ``renewable_share``) counts at 0 g/kWh, and the rest at the best
  factor the user has, in the Guidance's order: a supplier-specific emission rate, then a
  residual mix (the grid with contracted renewables taken out, usually above the average),
  and only as the last resort the grid average, which makes the figure a lower bound.
  :attr:`CarbonFigures.market_tier` says which was used.
* Water = IT kWh × WUE (The Green Grid: WUE = site water in litres / IT energy in kWh;
  it is per IT kWh, so PUE is not applied again).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from greenai.carbon.cloud import cloud_intensity
from greenai.carbon.grid import GridIntensity, grid_intensity
from greenai.errors import ConfigError
from greenai.units import J_PER_KWH

__all__ = ["MARKET_TIERS", "Accounting", "CarbonFigures", "account"]

MarketFactorKind = Literal["supplier", "residual_mix"]
MARKET_TIERS: dict[str, str] = {
    "supplier": "supplier-specific emission rate (Scope 2 market-based hierarchy, tier 2)",
    "residual_mix": "residual-mix factor (Scope 2 market-based hierarchy, tier 3)",
    "grid_average": (
        "grid average (Scope 2 market-based hierarchy, last-resort tier: no supplier or "
        "residual-mix factor given, so a lower bound)"
    ),
}
"""What each market-based tier means; :attr:`CarbonFigures.market_tier` is one key."""

NO_INTENSITY = (
    "none: pass country= (ISO alpha-3 such as 'FRA', or 'WORLD' for codecarbon's world "
    "average) or carbon_intensity_g_per_kwh= to get CO2e; greenai does not guess a location"
)

_OPTIONAL_LIMITS = (
    ("carbon_intensity_g_per_kwh", 0.0, math.inf, "grams CO2e per kWh; None to look it up"),
    ("renewable_share", 0.0, 1.0, "share of facility energy under renewable contracts"),
    ("wue_l_per_kwh", 0.0, math.inf, "litres of site water per IT kWh; None when unknown"),
    ("market_factor_g_per_kwh", 0.0, math.inf, "g CO2e/kWh of a supplier or residual mix"),
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
        region: Sub-national grid ("california", "ontario", "SE3") with ``country``, or
            the cloud region ("us-central1", "eu-west-1", "westeurope") with ``cloud``.
        cloud: ``"aws"``, ``"gcp"`` or ``"azure"``: the grid is the region's
            (:func:`greenai.carbon.cloud.cloud_intensity`); needs ``region``, excludes
            ``country``.
        carbon_intensity_g_per_kwh: Your own grid factor, g CO2e/kWh, ≥ 0 (a supplier's
            figure, a live value). Wins over ``country``; the source says so.
        renewable_share: Share of facility energy covered by renewable contracts (PPAs,
            certificates), in [0, 1], for the market-based figure. Not the grid's own
            renewable share: that is already inside the grid average.
        wue_l_per_kwh: Water usage effectiveness, litres of site water per IT kWh, ≥ 0.
        market_factor_g_per_kwh: For the market-based figure, the emission factor of the
            energy not covered by ``renewable_share``, g CO2e/kWh: your supplier's rate or
            the residual mix of your market (e.g. AIB's European residual mixes). Without
            it the grid average stands in (the last-resort tier).
        market_factor_kind: What ``market_factor_g_per_kwh`` is: ``"supplier"`` or
            ``"residual_mix"``; required with it.
    """

    pue: float = 1.0
    country: str | None = None
    region: str | None = None
    carbon_intensity_g_per_kwh: float | None = None
    renewable_share: float | None = None
    wue_l_per_kwh: float | None = None
    cloud: str | None = None
    market_factor_g_per_kwh: float | None = None
    market_factor_kind: MarketFactorKind | None = None

    def __post_init__(self) -> None:
        _check("pue", self.pue, 1.0, math.inf, "facility energy / IT energy")
        for name, low, high, what in _OPTIONAL_LIMITS:
            if getattr(self, name) is not None:
                _check(name, getattr(self, name), low, high, what)
        for name in ("country", "region", "cloud"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise ConfigError(f"{name} must be a non-empty str or None; got {value!r}")
        if self.cloud is not None and self.country is not None:
            raise ConfigError(
                f"cloud={self.cloud!r} and country={self.country!r}: the cloud region fixes "
                "the grid; pass one of them"
            )
        if self.cloud is not None and self.region is None:
            raise ConfigError(f"cloud={self.cloud!r} needs region= (e.g. region='us-central1')")
        if self.region is not None and self.country is None and self.cloud is None:
            raise ConfigError(
                f"region={self.region!r} needs country= (e.g. country='USA') or cloud= "
                "(e.g. cloud='gcp' with region='us-central1')"
            )
        kind, factor = self.market_factor_kind, self.market_factor_g_per_kwh
        if kind is not None and kind not in ("supplier", "residual_mix"):
            raise ConfigError(
                f"market_factor_kind must be 'supplier' or 'residual_mix'; got {kind!r}"
            )
        if (kind is None) != (factor is None):
            raise ConfigError(
                "market_factor_g_per_kwh and market_factor_kind go together: say what the "
                "factor is ('supplier' or 'residual_mix')"
            )

    def grid(self) -> GridIntensity | None:
        """The grid intensity of ``cloud``/``region`` or ``country``/``region``, or None.

        Raises:
            ConfigError: Unknown cloud, country or region (see :func:`grid_intensity` and
                :func:`~greenai.carbon.cloud.cloud_intensity`).
        """
        if self.cloud is not None and self.region is not None:
            return cloud_intensity(self.cloud, self.region)
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
        co2e_market_kg: Market-based: facility kWh × (1 − renewable_share) × market factor /
            1000 (kg CO2e), the market factor being the supplier's or residual-mix one when
            given, else the grid factor (see module docstring); None without
            ``renewable_share`` and without a market factor, or without any factor.
        water_l: On-site water, IT kWh × WUE (litres); None without WUE.
        country, region: The grid looked up, when a country or cloud region was given.
        cloud: The cloud provider, when the grid is a cloud region's.
        market_factor_g_per_kwh: The factor applied to the uncovered share in the
            market-based figure (g CO2e/kWh), or None without a market-based figure.
        market_tier: Which tier of the Scope 2 market-based hierarchy that factor is, a
            key of :data:`MARKET_TIERS` (``"supplier"``, ``"residual_mix"`` or
            ``"grid_average"``, the last resort), or None.
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
    cloud: str | None = None
    market_factor_g_per_kwh: float | None = None
    market_tier: str | None = None

    @property
    def market_basis(self) -> str | None:
        """One line on how the market-based figure was made, for reports; None without it."""
        if self.co2e_market_kg is None or self.market_tier is None:
            return None
        share = self.renewable_share or 0.0
        return (
            f"{share:.0%} covered by contractual instruments at 0 g/kWh; the rest at "
            f"{self.market_factor_g_per_kwh:g} g/kWh, the {MARKET_TIERS[self.market_tier]}"
        )

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
    tier: str | None
    if config.market_factor_g_per_kwh is not None:
        market_factor, tier = float(config.market_factor_g_per_kwh), config.market_factor_kind
    elif share is not None and intensity is not None:
        market_factor, tier = intensity, "grid_average"
    else:
        market_factor, tier = None, None
    market = (
        None
        if market_factor is None
        else facility_kwh * (1.0 - (share or 0.0)) * market_factor / 1000.0
    )
    return CarbonFigures(
        it_energy_kwh=it_kwh,
        facility_energy_kwh=facility_kwh,
        pue=config.pue,
        carbon_intensity_g_per_kwh=intensity,
        carbon_intensity_source=source,
        co2e_kg=co2e,
        co2e_market_kg=market,
        renewable_share=share,
        water_l=None if config.wue_l_per_kwh is None else it_kwh * config.wue_l_per_kwh,
        wue_l_per_kwh=config.wue_l_per_kwh,
        country=grid.country if grid else None,
        region=grid.region if grid else None,
        cloud=config.cloud.strip().lower() if config.cloud and grid else None,
        market_factor_g_per_kwh=market_factor,
        market_tier=tier,
    )
