"""Energy per request and per token for served models.

- :mod:`greenai.serving.attribution`: the rule that splits a power curve among overlapping
  requests (pure numbers).
- :mod:`greenai.serving.meter`: :class:`ServingMeter`, requests and engine iterations marked
  on a running job, settled as the job's curve becomes final.
- :mod:`greenai.serving.proxy`: ``greenai serve-proxy``, a measuring reverse proxy for any
  OpenAI-compatible server (needs the ``serve`` extra).
"""

from __future__ import annotations

from greenai.serving.attribution import (
    Attribution,
    Iteration,
    RequestEnergy,
    RequestSpan,
    attribute,
    estimate_first_token,
    fit_token_costs,
)
from greenai.serving.meter import OpenRequest, ServingMeter, ServingTotals

__all__ = [
    "Attribution",
    "Iteration",
    "OpenRequest",
    "RequestEnergy",
    "RequestSpan",
    "ServingMeter",
    "ServingTotals",
    "attribute",
    "estimate_first_token",
    "fit_token_costs",
]
