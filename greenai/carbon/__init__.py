"""Climate cost of energy: PUE, grid carbon intensity (codecarbon's shipped data), WUE.

Also cloud regions (:mod:`~greenai.carbon.cloud`), hour-by-hour intensity series
(:mod:`~greenai.carbon.series`) and embodied emissions (:mod:`~greenai.carbon.embodied`).

>>> from greenai.carbon import Accounting, account
>>> figures = account(3.6e6, Accounting(pue=1.2, country="CHN", renewable_share=0.56))
>>> round(figures.facility_energy_kwh, 3)
1.2
"""

from __future__ import annotations

from greenai.carbon.accounting import MARKET_TIERS, Accounting, CarbonFigures, account
from greenai.carbon.cloud import cloud_intensity, cloud_regions
from greenai.carbon.embodied import (
    EmbodiedFactor,
    EmbodiedFigures,
    embodied_co2e,
    gpu_job_embodied_co2e,
)
from greenai.carbon.grid import WORLD, GridIntensity, default_country, grid_intensity
from greenai.carbon.series import (
    IntensitySeries,
    SeriesCO2e,
    co2e_series,
    load_intensity_series,
    start_hour_table,
)

__all__ = [
    "MARKET_TIERS",
    "WORLD",
    "Accounting",
    "CarbonFigures",
    "EmbodiedFactor",
    "EmbodiedFigures",
    "GridIntensity",
    "IntensitySeries",
    "SeriesCO2e",
    "account",
    "cloud_intensity",
    "cloud_regions",
    "co2e_series",
    "default_country",
    "embodied_co2e",
    "gpu_job_embodied_co2e",
    "grid_intensity",
    "load_intensity_series",
    "start_hour_table",
]
