"""greenai: measure the energy AI workloads draw, and what it buys.

The public names are imported on first use (PEP 562), so ``import greenai`` (and the pytest
plugin, which lives in this package) costs nothing until a tracker is needed.
"""

from __future__ import annotations

import importlib
import sys
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

    show_measurements_as_html(ipython)
    load(ipython)


def show_measurements_as_html(ipython: Any) -> None:
    """Make IPython and Jupyter show a Measurement as HTML (:mod:`greenai.report.notebook`).

    Done when greenai is imported into a running IPython shell, and by ``%load_ext
    greenai``; the report module is imported only when a Measurement is first shown.
    """
    formatter = ipython.display_formatter.formatters["text/html"]
    formatter.for_type_by_name("greenai.measurement", "Measurement", _measurement_html)


def _measurement_html(m: Any) -> str:
    from greenai.report.notebook import measurement_html

    return measurement_html(m)


def _running_shell() -> Any:
    ipython = sys.modules.get("IPython")  # imported by every notebook before greenai
    try:
        return None if ipython is None else ipython.get_ipython()
    except Exception:  # an IPython that cannot say: no HTML view, never an import error
        return None


if _running_shell() is not None:
    show_measurements_as_html(_running_shell())


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
