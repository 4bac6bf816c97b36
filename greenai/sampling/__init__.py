"""Sampling: the loop that reads devices in the background."""

from greenai.sampling.sampler import Sampler, default_period_s

__all__ = ["Sampler", "default_period_s"]
