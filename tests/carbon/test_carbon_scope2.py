from __future__ import annotations

import pytest

from greenai.carbon import Accounting, account
from greenai.carbon.accounting import MARKET_TIERS
from greenai.errors import ConfigError

KWH = 3.6e6  # J


def test_grid_average_is_the_labelled_last_resort() -> None:
    figures = account(KWH, Accounting(carbon_intensity_g_per_kwh=400.0, renewable_share=0.25))
    assert figures.co2e_market_kg == pytest.approx(0.75 * 400 / 1000)
    assert figures.market_tier == "grid_average"
    assert figures.market_basis is not None
    assert "last-resort" in figures.market_basis and "lower bound" in figures.market_basis


@pytest.mark.parametrize("kind", ["supplier", "residual_mix"])
def test_supplier_or_residual_mix_factor_replaces_the_grid_average(kind: str) -> None:
    config = Accounting(
        pue=1.2,
        carbon_intensity_g_per_kwh=300.0,
        renewable_share=0.5,
        market_factor_g_per_kwh=500.0,
        market_factor_kind=kind,  # type: ignore[arg-type]
    )
    figures = account(10 * KWH, config)
    # 10 kWh IT × 1.2 PUE = 12 kWh; half under contracts at 0, half at 500 g/kWh = 3 kg.
    assert figures.co2e_market_kg == pytest.approx(3.0)
    assert figures.co2e_kg == pytest.approx(12 * 300 / 1000)  # location-based unchanged
    assert figures.market_tier == kind and figures.market_factor_g_per_kwh == 500.0
    assert figures.market_basis is not None and MARKET_TIERS[kind] in figures.market_basis


def test_a_market_factor_alone_gives_a_market_figure_without_contracts() -> None:
    config = Accounting(market_factor_g_per_kwh=250.0, market_factor_kind="residual_mix")
    figures = account(2 * KWH, config)
    assert figures.co2e_market_kg == pytest.approx(0.5)
    assert figures.co2e_kg is None  # no location-based grid was given


def test_no_contracts_and_no_market_factor_no_market_figure() -> None:
    figures = account(KWH, Accounting(carbon_intensity_g_per_kwh=300.0))
    assert figures.co2e_market_kg is None and figures.market_tier is None
    assert figures.market_basis is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"market_factor_g_per_kwh": 300.0}, "go together"),
        ({"market_factor_kind": "supplier"}, "go together"),
        ({"market_factor_g_per_kwh": 3.0, "market_factor_kind": "green"}, "'supplier' or"),
        ({"market_factor_g_per_kwh": -3.0, "market_factor_kind": "supplier"}, "must be ≥ 0"),
    ],
)
def test_bad_market_factors_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Accounting(**kwargs)  # type: ignore[arg-type]


def test_round_trip_through_to_dict() -> None:
    from greenai.carbon.accounting import CarbonFigures

    figures = account(KWH, Accounting(carbon_intensity_g_per_kwh=300.0, renewable_share=0.1))
    assert CarbonFigures(**figures.to_dict()) == figures
