"""Sampling: the loop that reads devices in the background.

``HAS_NATIVE`` says whether RAPL and NVIDIA devices are read by the C loop
(``greenai._native``, built by ``pip install .`` where a C compiler is present, disabled by
``GREENAI_NO_NATIVE=1``) or, as everywhere else, by the Python sampler thread.
"""

from greenai.sampling.native import HAS_NATIVE
from greenai.sampling.sampler import Sampler, default_period_s

__all__ = ["HAS_NATIVE", "Sampler", "default_period_s"]
