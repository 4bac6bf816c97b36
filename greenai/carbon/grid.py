"""Grid carbon intensity by country and region, from codecarbon's shipped data.

Countries come from ``data/private_infra/global_energy_mix.json`` (field
``carbon_intensity``, gCO2e/kWh of generation, per-country ``year``), keyed by ISO 3166
alpha-3 code; country names as written there ("France") are accepted too. Alpha-2 codes
are not: codecarbon ships no alpha-2 table and greenai does not guess one. Regions are
read by :mod:`greenai.carbon.regions` (USA states, Canadian provinces, Chinese provinces,
Nordic bidding zones, where the installed codecarbon ships them).

Unlike codecarbon, nothing falls back silently: an unknown country or region is an error,
and the world average is used only when asked for with ``country="WORLD"``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from greenai.carbon.codecarbon_data import PRIVATE_INFRA, codecarbon_version, load_json
from greenai.carbon.regions import PER_SOURCE, countries_with_regions, normalise, regions
from greenai.errors import ConfigError

__all__ = ["WORLD", "GridIntensity", "default_country", "grid_intensity"]

GLOBAL_MIX = f"{PRIVATE_INFRA}/global_energy_mix.json"
WORLD = "WORLD"
"""Pseudo-country: codecarbon's ``world_average`` (gCO2e/kWh, from an IEA 2019 report)."""


@dataclass(frozen=True)
class GridIntensity:
    """Average carbon intensity of a grid's electricity.

    Attributes:
        g_per_kwh: Grams CO2e (CO2 only for Chinese provinces, see ``source``) per kWh.
        country: ISO alpha-3 code, or ``"WORLD"``.
        region: The region's name as codecarbon's file spells it, or None for the country.
        source: Installed codecarbon version, file, field, unit conversion and data year.
        renewable_share_of_grid: Renewable share of the grid's generation in [0, 1] where the
            file gives the mix (countries, Canadian provinces), else None. Informational:
            it is already inside ``g_per_kwh``; do not pass it as a market-based
            ``renewable_share``.
    """

    g_per_kwh: float
    country: str
    region: str | None
    source: str
    renewable_share_of_grid: float | None = None


def default_country() -> str | None:
    """The country assumed when none is given: None, always.

    greenai does no network geolocation (codecarbon asks an IP service); pass ``country=``
    so that a figure never depends on where a CI runner happens to be.
    """
    return None


def grid_intensity(country: str, region: str | None = None) -> GridIntensity:
    """Look up a grid's carbon intensity in codecarbon's shipped data.

    Args:
        country: ISO 3166 alpha-3 code ("CHN", "FRA", "USA"; any case), a country name as
            in codecarbon's data ("France"), or ``"WORLD"`` for codecarbon's world average.
        region: A sub-national region ("california" or "CA", "ontario", "beijing", "SE3"),
            where codecarbon ships regional data for ``country``; None for the country.

    Returns:
        The intensity with its source. Files are read once per process.

    Raises:
        ConfigError: Unknown country or region (the message suggests close matches), no
            regional data for the country, or codecarbon's data is not installed.
    """
    if not isinstance(country, str) or not country.strip():
        raise ConfigError(f"country must be an ISO alpha-3 code such as 'FRA'; got {country!r}")
    if region is not None and not isinstance(region, str):
        raise ConfigError(f"region must be a str such as 'california' or None; got {region!r}")
    code = _country_code(country)
    if region is not None:
        return _regional(code, region)
    if code == WORLD:
        per_source = load_json(PER_SOURCE)
        source = (
            f"codecarbon {codecarbon_version()} {PER_SOURCE}.world_average "
            f"({per_source.get('unit', 'gCO2.eq/kWh')}; {per_source.get('world_average_source')})"
        )
        return GridIntensity(float(per_source["world_average"]), WORLD, None, source)
    entry: dict[str, Any] = load_json(GLOBAL_MIX)[code]
    if entry.get("carbon_intensity") is None:
        raise ConfigError(
            f"codecarbon's {GLOBAL_MIX} has no carbon_intensity for {code}; "
            "pass carbon_intensity_g_per_kwh= directly"
        )
    total, renewables = entry.get("total_TWh"), entry.get("renewables_TWh")
    share = renewables / total if total and renewables is not None else None
    source = (
        f"codecarbon {codecarbon_version()} {GLOBAL_MIX}[{code!r}].carbon_intensity "
        f"(gCO2e/kWh; year {entry.get('year')})"
    )
    return GridIntensity(float(entry["carbon_intensity"]), code, None, source, share)


def _country_code(country: str) -> str:
    mix = load_json(GLOBAL_MIX)
    wanted = country.strip()
    if wanted.upper() == WORLD or wanted.upper() in mix:
        return wanted.upper()
    names = {str(e.get("country_name", "")).lower(): code for code, e in mix.items()}
    if wanted.lower() in names:
        return names[wanted.lower()]
    alpha2 = (
        " codecarbon's data is keyed by ISO alpha-3 codes, not alpha-2." if len(wanted) == 2 else ""
    )
    raise ConfigError(
        f"unknown country {country!r}.{alpha2}{_suggest(wanted, mix)} Pass an ISO alpha-3 "
        f"code or a country name, or country={WORLD!r} for codecarbon's world average"
    )


def _suggest(wanted: str, mix: dict[str, Any]) -> str:
    """Close codes and names as a "Did you mean" clause, scored on both (FRN → FRA first)."""

    def ratio(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b).ratio()

    scored = []
    for code, entry in mix.items():
        name = str(entry.get("country_name", ""))
        by_code, by_name = ratio(wanted.upper(), code), ratio(wanted.lower(), name.lower())
        if max(by_code, by_name) >= 0.6:
            scored.append((-(by_code + by_name), code, name))
    best = [f"{code} ({name})" for _, code, name in sorted(scored)[:5]]
    return f" Did you mean {', '.join(best)}?" if best else ""


def _regional(code: str, region: str) -> GridIntensity:
    table = regions(code)
    if not table:
        raise ConfigError(
            f"codecarbon ships no sub-national data for {code}; omit region= for the "
            f"national figure (regional data exists for {', '.join(countries_with_regions())})"
        )
    found = table.get(normalise(region))
    if found is None:
        close = difflib.get_close_matches(normalise(region), list(table), n=3)
        known = sorted({r.name for r in table.values()})
        raise ConfigError(
            f"unknown region {region!r} for {code}"
            + (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ".")
            + f" Known regions: {', '.join(known)}. Omit region= for the national figure"
        )
    return GridIntensity(
        found.g_per_kwh, code, found.name, found.source, found.renewable_share_of_grid
    )
