"""greenai: measure the energy AI workloads draw, and what it buys."""

from greenai.errors import GreenAIError
from greenai.measurement import Measurement
from greenai.tracker import Tracker, current, track

__all__ = ["GreenAIError", "Measurement", "Tracker", "current", "track"]
__version__ = "0.1.0"
