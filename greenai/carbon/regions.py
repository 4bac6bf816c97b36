"""Sub-national grid intensities from codecarbon's shipped files, one reader per country.

Each reader returns ``{alias: Region}`` (aliases lower-case). Units and conventions follow
the files, which differ: eGRID (USA) is lbs CO2e/MWh of generation; the Canadian file has
generation shares only; the Chinese factors are CO2 only; the Nordic ones are lifecycle
factors weighted by generation. Every :class:`Region` source string says which applies.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from greenai.carbon.codecarbon_data import (
    PRIVATE_INFRA,
    codecarbon_version,
    exists,
    latest,
    load_json,
)

__all__ = [
    "LB_PER_MWH_TO_G_PER_KWH",
    "NORDIC",
    "PER_SOURCE",
    "Region",
    "countries_with_regions",
    "normalise",
    "regions",
]

LB_PER_MWH_TO_G_PER_KWH = 0.45359237
"""1 lb = 453.59237 g and 1 MWh = 1000 kWh."""

PER_SOURCE = f"{PRIVATE_INFRA}/carbon_intensity_per_source.json"
NORDIC = f"{PRIVATE_INFRA}/nordic_emissions.json"
_NORDIC_PREFIX = {"SWE": "SE", "NOR": "NO", "FIN": "FI"}
# The Canadian file's fossil sources and the factors (g CO2/kWh) codecarbon's own code applies
# to them (codecarbon.core.emissions.Emissions._region_energy_mix_to_emissions_rate, from
# the energy-usage project). Its carbon_intensity_per_source.json rounds these (995, 816,
# 743): using the JSON read provinces ~0.1% low against codecarbon (issue 23).
_CAN_FOSSIL_G_PER_KWH = {"coal": 995.725971, "petroleum": 816.6885263, "naturalGas": 743.8415916}
_CAN_RENEWABLE = ("hydro", "wind", "solar", "biomass", "tidal")
_CHINA_SUFFIX = re.compile(r"\s+(autonomous region|municipality|province|sheng|shi|zizhiqu)$")


@dataclass(frozen=True)
class Region:
    """One region's grid intensity, as read from codecarbon's data."""

    name: str
    g_per_kwh: float
    source: str
    renewable_share_of_grid: float | None = None


def normalise(region: str) -> str:
    """Lower-case, single-spaced, without China's administrative suffixes."""
    return _CHINA_SUFFIX.sub("", " ".join(region.lower().split()))


def _year(relpath: str) -> str:
    return PurePosixPath(relpath).parent.name


def _usa() -> dict[str, Region]:
    path = latest("usa_emissions.json")
    if path is None:
        return {}
    data = load_json(path)
    unit = data.get("_unit", {}).get("emissions", "lbs/MWh")
    if unit.lower() != "lbs/mwh":  # a new unit would need a new conversion, not a guess
        return {}
    meta = data.get("_source", {})
    origin = f"{meta.get('name', 'EPA eGRID')}, field {meta.get('field', '?')}"
    table: dict[str, Region] = {}
    for name, entry in data.items():
        if name.startswith("_") or name == "usa":  # "usa" is the national average
            continue
        source = (
            f"codecarbon {codecarbon_version()} {path}[{name!r}].emissions "
            f"(lbs/MWh × {LB_PER_MWH_TO_G_PER_KWH}; {origin}; year {meta.get('year', _year(path))})"
        )
        region = Region(name, entry["emissions"] * LB_PER_MWH_TO_G_PER_KWH, source)
        table[name] = table[str(entry.get("regionCode", name)).lower()] = region
    return table


def _canada() -> dict[str, Region]:
    path = latest("canada_energy_mix.json")
    if path is None:
        return {}
    table: dict[str, Region] = {}
    factors = ", ".join(f"{k} {v:g}" for k, v in _CAN_FOSSIL_G_PER_KWH.items())
    for name, mix in load_json(path).items():
        total = mix["total"]
        g_per_kwh = sum(mix.get(k, 0.0) / total * f for k, f in _CAN_FOSSIL_G_PER_KWH.items())
        renewable = sum(mix.get(k, 0.0) for k in _CAN_RENEWABLE) / total
        source = (
            f"codecarbon {codecarbon_version()} {path}[{name!r}] generation shares × the "
            f"factors codecarbon's code applies ({factors} g/kWh); fossil combustion only, "
            f"other sources at 0, as codecarbon counts them; year {_year(path)}"
        )
        table[name] = Region(name, g_per_kwh, source, renewable)
    return table


def _china() -> dict[str, Region]:
    path = latest("china_provincial_emissions.json")
    if path is None:
        return {}
    data = load_json(path)
    table: dict[str, Region] = {}
    for code, entry in data["data"].items():
        source = (
            f"codecarbon {codecarbon_version()} {path}[data][{code!r}].emission_factor "
            f"({entry.get('unit', 'gCO2/kWh')}, CO2 only, MEE/NBS; year {entry.get('year')})"
        )
        region = Region(entry.get("description") or code, entry["emission_factor"], source)
        names = [code, code.split("-")[-1], entry.get("description", ""), *entry["names"]]
        table.update({normalise(n): region for n in names if n})
    return table


def _nordic(country: str) -> dict[str, Region]:
    if not exists(NORDIC):
        return {}
    table: dict[str, Region] = {}
    for zone, entry in load_json(NORDIC)["data"].items():
        if not zone.startswith(_NORDIC_PREFIX[country]):
            continue
        source = (
            f"codecarbon {codecarbon_version()} {NORDIC}[data][{zone!r}].emission_factor "
            f"({entry.get('unit', 'gCO2eq/kWh')}; year {entry.get('year')})"
        )
        table[zone.lower()] = Region(zone, entry["emission_factor"], source)
    return table


_READERS: dict[str, Callable[[], dict[str, Region]]] = {
    "USA": _usa,
    "CAN": _canada,
    "CHN": _china,
    **{c: functools.partial(_nordic, c) for c in _NORDIC_PREFIX},
}


@functools.cache
def regions(country: str) -> dict[str, Region]:
    """``{alias: Region}`` for an ISO alpha-3 country; empty when no regional data ships."""
    reader = _READERS.get(country)
    return reader() if reader else {}


def countries_with_regions() -> list[str]:
    """Alpha-3 codes that have sub-national data in the installed codecarbon."""
    return sorted(c for c in _READERS if regions(c))
