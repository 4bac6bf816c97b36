"""The job record's classes, where :mod:`greenai.distributed` has always offered them.

They live in :mod:`greenai.jobrecord`, below the Measurement that carries them.
"""

from __future__ import annotations

from greenai.jobrecord import JobDevice, JobRecord, NodeEnergy, RankEnergy

__all__ = ["JobDevice", "JobRecord", "NodeEnergy", "RankEnergy"]
