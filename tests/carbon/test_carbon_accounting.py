from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from greenai.carbon import Accounting, CarbonFigures, account
from greenai.errors import ConfigError

Loader = Callable[[str], Any]
KWH = 3.6e6  # J


@pytest.fixture
def chn(cc_json: Loader) -> float:
    return float(cc_json("private_infra/global_energy_mix.json")["CHN"]["carbon_intensity"])


def test_issue_example(chn: float) -> None:
    figures = account(1 * KWH, Accounting(pue=1.2, country="CHN", renewable_share=0.56))
    assert figures.it_energy_kwh == pytest.approx(1.0)
    assert figures.facility_energy_kwh == pytest.approx(1.2)
    assert figures.carbon_intensity_g_per_kwh == chn
    assert figures.co2e_kg == pytest.approx(1.2 * chn / 1000)
    assert figures.co2e_market_kg == pytest.approx(0.44 * 1.2 * chn / 1000)
    assert figures.country == "CHN" and figures.region is None
    assert "global_energy_mix.json" in figures.carbon_intensity_source


def test_pue_multiplies_facility_energy_and_co2e(chn: float) -> None:
    base = account(5 * KWH, Accounting(country="CHN"))
    heavy = account(5 * KWH, Accounting(pue=1.5, country="CHN"))
    assert heavy.facility_energy_kwh == pytest.approx(1.5 * base.facility_energy_kwh)
    assert base.co2e_kg is not None and heavy.co2e_kg is not None
    assert heavy.co2e_kg == pytest.approx(1.5 * base.co2e_kg) == pytest.approx(7.5 * chn / 1e3)


def test_market_based_counts_renewable_share_at_zero() -> None:
    figures = account(2 * KWH, Accounting(pue=1.1, country="FRA", renewable_share=0.56))
    assert figures.co2e_kg is not None
    assert figures.co2e_market_kg == pytest.approx(0.44 * figures.co2e_kg)
    assert account(KWH, Accounting(country="FRA")).co2e_market_kg is None  # no contracts given


def test_override_wins_and_source_says_so(chn: float) -> None:
    figures = account(KWH, Accounting(country="CHN", carbon_intensity_g_per_kwh=100.0))
    assert figures.carbon_intensity_g_per_kwh == 100.0
    assert figures.co2e_kg == pytest.approx(0.1)
    assert "given" in figures.carbon_intensity_source
    assert f"overrides {chn:g}" in figures.carbon_intensity_source
    alone = account(KWH, Accounting(carbon_intensity_g_per_kwh=0.0))
    assert alone.co2e_kg == 0.0 and alone.country is None


def test_region_reaches_the_figures(cc_json: Loader) -> None:
    lbs = cc_json("private_infra/2023/usa_emissions.json")["texas"]["emissions"]
    figures = account(KWH, Accounting(country="USA", region="texas"))
    assert figures.co2e_kg == pytest.approx(lbs * 0.45359237 / 1000)
    assert (figures.country, figures.region) == ("USA", "texas")


def test_water_is_per_it_kwh() -> None:
    figures = account(3 * KWH, Accounting(pue=1.4, wue_l_per_kwh=1.8))
    assert figures.water_l == pytest.approx(3 * 1.8)  # WUE is per IT kWh: no PUE
    assert account(KWH).water_l is None


def test_no_country_no_co2e_and_says_why() -> None:
    figures = account(KWH, Accounting(pue=1.2))
    assert figures.co2e_kg is None and figures.co2e_market_kg is None
    assert figures.carbon_intensity_g_per_kwh is None
    assert "country=" in figures.carbon_intensity_source
    assert "carbon_intensity_g_per_kwh=" in figures.carbon_intensity_source


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pue": 0.9}, r"pue must be ≥ 1\.0 \(facility energy / IT energy\); got 0\.9"),
        ({"pue": float("nan")}, "pue must be"),
        ({"renewable_share": 1.2}, r"renewable_share must be in \[0\.0, 1\.0\]"),
        ({"renewable_share": -0.1}, "renewable_share must be in"),
        ({"carbon_intensity_g_per_kwh": -1.0}, "carbon_intensity_g_per_kwh must be ≥ 0"),
        ({"wue_l_per_kwh": -0.5}, "wue_l_per_kwh must be ≥ 0"),
        ({"region": "california"}, "needs country="),
        ({"country": ""}, "country must be"),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Accounting(**kwargs)


def test_unknown_places_fail_at_account_time() -> None:
    config = Accounting(country="FRN")  # constructing does no lookup
    with pytest.raises(ConfigError, match="FRA"):
        account(KWH, config)
    with pytest.raises(ConfigError, match="unknown region"):
        account(KWH, Accounting(country="USA", region="atlantis"))


@pytest.mark.parametrize("energy", [-1.0, float("nan"), None])
def test_bad_energy_is_refused(energy: Any) -> None:
    with pytest.raises(ConfigError, match="it_energy_j"):
        account(energy, Accounting())


def test_to_dict_is_json_ready() -> None:
    figures = account(KWH, Accounting(pue=1.2, country="CHN", renewable_share=0.5))
    data = json.loads(json.dumps(figures.to_dict()))
    assert set(data) == {f for f in CarbonFigures.__dataclass_fields__}
    assert data["co2e_kg"] == figures.co2e_kg
