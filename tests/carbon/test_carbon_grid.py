from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from greenai.carbon import WORLD, codecarbon_data, default_country, grid_intensity
from greenai.errors import ConfigError

Loader = Callable[[str], Any]


@pytest.mark.parametrize("country", ["CHN", "FRA", "USA", "chn"])
def test_country_intensity_is_the_files_value(cc_json: Loader, country: str) -> None:
    entry = cc_json("private_infra/global_energy_mix.json")[country.upper()]
    grid = grid_intensity(country)
    assert grid.g_per_kwh == entry["carbon_intensity"]  # already gCO2e/kWh
    assert grid.country == country.upper() and grid.region is None
    assert grid.renewable_share_of_grid == pytest.approx(
        entry["renewables_TWh"] / entry["total_TWh"]
    )
    assert "global_energy_mix.json" in grid.source and "carbon_intensity" in grid.source
    assert str(entry["year"]) in grid.source


def test_country_name_is_accepted(cc_json: Loader) -> None:
    expected = cc_json("private_infra/global_energy_mix.json")["FRA"]["carbon_intensity"]
    assert grid_intensity("France").g_per_kwh == expected
    assert grid_intensity(" france ").country == "FRA"


def test_world_is_codecarbons_world_average(cc_json: Loader) -> None:
    per_source = cc_json("private_infra/carbon_intensity_per_source.json")
    grid = grid_intensity(WORLD)
    assert grid.g_per_kwh == per_source["world_average"]
    assert "world_average" in grid.source


@pytest.mark.parametrize("region", ["california", "California", "CA"])
def test_us_state_converts_lbs_per_mwh(cc_json: Loader, region: str) -> None:
    data = cc_json("private_infra/2023/usa_emissions.json")
    assert data["_unit"]["emissions"] == "lbs/MWh"
    lbs_per_mwh = data["california"]["emissions"]
    grid = grid_intensity("USA", region)
    # 1 lb = 453.59237 g, 1 MWh = 1000 kWh
    assert grid.g_per_kwh == pytest.approx(lbs_per_mwh * 453.59237 / 1000)
    assert (grid.country, grid.region) == ("USA", "california")
    assert "usa_emissions.json" in grid.source and "lbs/MWh" in grid.source


def test_canadian_province_weights_fossil_generation(cc_json: Loader) -> None:
    mix = cc_json("private_infra/2023/canada_energy_mix.json")["ontario"]
    factor = cc_json("private_infra/carbon_intensity_per_source.json")
    rounded = (
        mix["coal"] * factor["coal"]
        + mix["petroleum"] * factor["petroleum"]
        + mix["naturalGas"] * factor["natural_gas"]
    ) / mix["total"]
    grid = grid_intensity("CAN", "Ontario")
    # codecarbon's code applies unrounded factors; its JSON's rounded ones differ by <0.2%
    assert grid.g_per_kwh == pytest.approx(rounded, rel=2e-3)
    assert "as codecarbon counts them" in grid.source and "995.726" in grid.source
    renewable = mix["hydro"] + mix["wind"] + mix["solar"] + mix["biomass"] + mix["tidal"]
    assert grid.renewable_share_of_grid == pytest.approx(renewable / mix["total"])


def test_canadian_province_agrees_with_codecarbons_own_code(cc_json: Loader) -> None:
    emissions = pytest.importorskip("codecarbon.core.emissions")
    mix = cc_json("private_infra/2023/canada_energy_mix.json")["alberta"]
    theirs = emissions.Emissions._region_energy_mix_to_emissions_rate(mix).kgs_per_kWh * 1000
    assert grid_intensity("CAN", "alberta").g_per_kwh == pytest.approx(theirs, rel=1e-12)


def test_every_canadian_province_equals_codecarbons_own_figure(cc_json: Loader) -> None:
    """Issue 23: equal, not 0.1% off (codecarbon's code, not its rounded JSON factors)."""
    emissions = pytest.importorskip("codecarbon.core.emissions")
    provinces = cc_json("private_infra/2023/canada_energy_mix.json")
    assert len(provinces) >= 10
    for name, mix in provinces.items():
        rate = emissions.Emissions._region_energy_mix_to_emissions_rate(mix)
        assert grid_intensity("CAN", name).g_per_kwh == pytest.approx(
            rate.kgs_per_kWh * 1000, rel=1e-12
        ), name


def test_chinese_province_and_nordic_zone(cc_json: Loader) -> None:
    china = cc_json("private_infra/2023/china_provincial_emissions.json")["data"]["CN-BJ"]
    for name in ("beijing", "Beijing Municipality", "CN-BJ"):
        assert grid_intensity("CHN", name).g_per_kwh == china["emission_factor"]
    nordic = cc_json("private_infra/nordic_emissions.json")["data"]["SE3"]
    assert grid_intensity("SWE", "se3").g_per_kwh == nordic["emission_factor"]


def test_unknown_country_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match="XYZ"):
        grid_intensity("XYZ")
    with pytest.raises(ConfigError) as info:
        grid_intensity("FRN")
    assert "FRA (France)" in str(info.value)
    assert str(info.value).index("FRA") < str(info.value).index("FRO")


def test_alpha2_is_refused_with_the_alpha3_code() -> None:
    with pytest.raises(ConfigError, match="alpha-3") as info:
        grid_intensity("CN")
    assert "CHN (China)" in str(info.value)


def test_unknown_region_lists_and_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'california'") as info:
        grid_intensity("USA", "californa")
    assert "texas" in str(info.value)
    with pytest.raises(ConfigError, match="no sub-national data for FRA"):
        grid_intensity("FRA", "paris")


@pytest.mark.parametrize(("country", "region"), [("", None), (None, None), ("USA", 3)])
def test_bad_types_are_config_errors(country: Any, region: Any) -> None:
    with pytest.raises(ConfigError):
        grid_intensity(country, region)


def test_default_country_never_guesses() -> None:
    assert default_country() is None


def test_missing_codecarbon_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    monkeypatch.setattr(codecarbon_data, "data_root", lambda: None)
    with pytest.raises(ConfigError, match="install codecarbon"):
        grid_intensity("FRA")


def test_files_are_read_once(monkeypatch: pytest.MonkeyPatch, fresh_caches: None) -> None:
    opened: list[str] = []
    real_open = open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    for _ in range(3):
        grid_intensity("USA", "texas")
        grid_intensity("CHN")
    assert len(opened) == len(set(opened))
