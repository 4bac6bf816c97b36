"""Climate cost of energy: PUE, grid carbon intensity (codecarbon's shipped data), WUE.

>>> from greenai.carbon import Accounting, account
>>> figures = account(3.6e6, Accounting(pue=1.2, country="CHN", renewable_share=0.56))
>>> round(figures.facility_energy_kwh, 3)
1.2
"""

from __future__ import annotations

from greenai.carbon.accounting import Accounting, CarbonFigures, account
from greenai.carbon.grid import WORLD, GridIntensity, default_country, grid_intensity

__all__ = [
    "WORLD",
    "Accounting",
    "CarbonFigures",
    "GridIntensity",
    "account",
    "default_country",
    "grid_intensity",
]
