"""greenai: measure the energy AI workloads draw, and what it buys.

The public names are imported on first use (PEP 562), so ``import greenai`` (and the pytest
plugin, which lives in this package) costs nothing until a tracker is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from greenai.errors import GreenAIError

if TYPE_CHECKING:
    from greenai.measurement import Measurement
    from greenai.tracker import Tracker, current, track

__all__ = ["GreenAIError", "Measurement", "Tracker", "current", "track"]
__version__ = "0.1.0"

_LAZY = {
    "Measurement": "greenai.measurement",
    "Tracker": "greenai.tracker",
    "current": "greenai.tracker",
    "track": "greenai.tracker",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (``greenai.Tracker``, ``from greenai import track``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext greenai``: register the ``%%greenai`` cell magic (imported only then)."""
    from greenai.integrations.notebook import load_ipython_extension as load

    load(ipython)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
