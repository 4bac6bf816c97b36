"""Grid carbon intensity of a cloud region (AWS, GCP, Azure), offline.

A region's figure comes from codecarbon's ``data/cloud/impact.csv`` (column ``impact``,
g CO2e/kWh) when the installed codecarbon lists it: the GCP rows are Google's published
grid factors per region. Recent codecarbon releases list no AWS or Azure rows (neither
provider publishes a per-region factor); for those, codecarbon itself falls back to the grid
of the region's location, and so does greenai: :data:`LOCATIONS` says where each region
is (the providers' region lists), and the grid comes from :func:`grid_intensity`. The
figure's ``source`` says which of the two applies.
"""

from __future__ import annotations

import difflib

from greenai.carbon.codecarbon_data import codecarbon_version, exists, load_csv
from greenai.carbon.grid import GridIntensity, grid_intensity
from greenai.errors import ConfigError

__all__ = ["LOCATIONS", "PROVIDERS", "cloud_intensity", "cloud_regions"]

IMPACT = "data/cloud/impact.csv"
PROVIDERS = ("aws", "azure", "gcp")

_AWS = "AWS Regions and Availability Zones, docs.aws.amazon.com/global-infrastructure"
_AZURE = "Azure geographies, azure.microsoft.com/explore/global-infrastructure/geographies"

LOCATIONS: dict[str, dict[str, tuple[str, str | None]]] = {
    # region -> (ISO alpha-3 country, sub-national grid as codecarbon spells it, or None).
    # Where the provider names a city, the state or province is the one it lies in.
    "aws": {
        "us-east-1": ("USA", "virginia"),
        "us-east-2": ("USA", "ohio"),
        "us-west-1": ("USA", "california"),
        "us-west-2": ("USA", "oregon"),
        "ca-central-1": ("CAN", "quebec"),
        "ca-west-1": ("CAN", "alberta"),
        "sa-east-1": ("BRA", None),
        "eu-central-1": ("DEU", None),
        "eu-central-2": ("CHE", None),
        "eu-west-1": ("IRL", None),
        "eu-west-2": ("GBR", None),
        "eu-west-3": ("FRA", None),
        "eu-north-1": ("SWE", None),
        "eu-south-1": ("ITA", None),
        "eu-south-2": ("ESP", None),
        "il-central-1": ("ISR", None),
        "me-south-1": ("BHR", None),
        "me-central-1": ("ARE", None),
        "af-south-1": ("ZAF", None),
        "ap-east-1": ("HKG", None),
        "ap-south-1": ("IND", None),
        "ap-south-2": ("IND", None),
        "ap-northeast-1": ("JPN", None),
        "ap-northeast-2": ("KOR", None),
        "ap-northeast-3": ("JPN", None),
        "ap-southeast-1": ("SGP", None),
        "ap-southeast-2": ("AUS", None),
        "ap-southeast-3": ("IDN", None),
        "ap-southeast-4": ("AUS", None),
        "cn-north-1": ("CHN", "beijing"),
        "cn-northwest-1": ("CHN", "ningxia"),
    },
    "azure": {
        "eastus": ("USA", "virginia"),
        "eastus2": ("USA", "virginia"),
        "centralus": ("USA", "iowa"),
        "northcentralus": ("USA", "illinois"),
        "southcentralus": ("USA", "texas"),
        "westus": ("USA", "california"),
        "westus2": ("USA", "washington"),
        "westus3": ("USA", "arizona"),
        "westcentralus": ("USA", "wyoming"),
        "canadacentral": ("CAN", "ontario"),
        "canadaeast": ("CAN", "quebec"),
        "brazilsouth": ("BRA", None),
        "northeurope": ("IRL", None),
        "westeurope": ("NLD", None),
        "uksouth": ("GBR", None),
        "ukwest": ("GBR", None),
        "francecentral": ("FRA", None),
        "germanywestcentral": ("DEU", None),
        "swedencentral": ("SWE", None),
        "norwayeast": ("NOR", None),
        "switzerlandnorth": ("CHE", None),
        "italynorth": ("ITA", None),
        "polandcentral": ("POL", None),
        "spaincentral": ("ESP", None),
        "israelcentral": ("ISR", None),
        "qatarcentral": ("QAT", None),
        "uaenorth": ("ARE", None),
        "southafricanorth": ("ZAF", None),
        "eastasia": ("HKG", None),
        "southeastasia": ("SGP", None),
        "japaneast": ("JPN", None),
        "japanwest": ("JPN", None),
        "koreacentral": ("KOR", None),
        "australiaeast": ("AUS", None),
        "australiasoutheast": ("AUS", None),
        "centralindia": ("IND", None),
        "southindia": ("IND", None),
        "westindia": ("IND", None),
    },
    "gcp": {},  # Google publishes per-region factors; codecarbon ships them.
}
"""Where each AWS and Azure region is, from the providers' region lists."""

_LOCATION_SOURCES = {"aws": _AWS, "azure": _AZURE}


# Misspellings in codecarbon's impact.csv, keyed by the provider's real region name.
_MISSPELT = {"gcp": {"me-central1": "me-cenrtal1"}}  # Doha, in codecarbon 3.3.2


def _impact_rows(provider: str) -> dict[str, dict[str, str]]:
    if not exists(IMPACT):
        return {}
    rows = {row["region"]: row for row in load_csv(IMPACT) if row.get("provider") == provider}
    for right, wrong in _MISSPELT.get(provider, {}).items():
        if wrong in rows and right not in rows:
            rows[right] = rows.pop(wrong)
    return rows


def cloud_regions(cloud: str) -> list[str]:
    """The regions greenai can resolve for a provider, sorted.

    Raises:
        ConfigError: Unknown provider.
    """
    provider = _provider(cloud)
    return sorted(set(_impact_rows(provider)) | set(LOCATIONS[provider]))


def cloud_intensity(cloud: str, region: str) -> GridIntensity:
    """The grid intensity of a cloud region, without network access.

    Args:
        cloud: ``"aws"``, ``"azure"`` or ``"gcp"`` (any case).
        region: The provider's region name: ``"us-central1"`` (GCP), ``"eu-west-1"`` (AWS),
            ``"westeurope"`` (Azure).

    Returns:
        The intensity, with ``country`` the region's ISO alpha-3 country, ``region`` the
        cloud region, and ``source`` saying whether the figure is the provider's own (from
        codecarbon's ``impact.csv``) or the grid of the region's location.

    Raises:
        ConfigError: Unknown provider, or a region neither codecarbon nor greenai knows
            (the message lists the known ones), or codecarbon's data is not installed.
    """
    provider = _provider(cloud)
    if not isinstance(region, str) or not region.strip():
        raise ConfigError(f"region must be a {provider} region name such as 'us-central1'")
    name = region.strip().lower()
    row = _impact_rows(provider).get(name)
    if row is not None and row.get("impact"):
        source = (
            f"codecarbon {codecarbon_version()} {IMPACT}[{provider}, {name}].impact "
            f"(gCO2e/kWh; {row.get('source') or 'no source given'})"
        )
        # Old codecarbon rows give "USA" as the country of every AWS region: prefer ours.
        country = LOCATIONS[provider].get(name, (row.get("countryIsoCode") or "?", None))[0]
        return GridIntensity(float(row["impact"]), country, name, source)
    if name in LOCATIONS[provider]:
        country, subregion = LOCATIONS[provider][name]
        grid = grid_intensity(country, subregion)
        place = country + (f"/{subregion}" if subregion else "")
        source = (
            f"grid of {place}, where {provider} {name} is ({_LOCATION_SOURCES[provider]}); "
            f"codecarbon {codecarbon_version()} ships no figure of {provider}'s own: "
            f"{grid.source}"
        )
        return GridIntensity(grid.g_per_kwh, country, name, source, grid.renewable_share_of_grid)
    known = cloud_regions(provider)
    close = difflib.get_close_matches(name, known, n=3)
    raise ConfigError(
        f"unknown {provider} region {region!r}"
        + (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ".")
        + f" Known {provider} regions: {', '.join(known)}. Or pass country= (and region=) "
        "for the grid where the data centre is, or carbon_intensity_g_per_kwh="
    )


def _provider(cloud: str) -> str:
    provider = cloud.strip().lower() if isinstance(cloud, str) else ""
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown cloud {cloud!r}; use one of {', '.join(PROVIDERS)}")
    return provider
