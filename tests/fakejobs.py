"""One tracked job on a FakeGPU, for tests that measure coverage over many seeds."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import greenai
from greenai.testing import FakeClock, FakeGPU


@dataclass(frozen=True)
class FakeJob:
    """A finished job: its GPU (the truth), the tracker, start and end (s), the result."""

    gpu: FakeGPU
    job: Any
    t0: float
    t1: float
    result: greenai.Measurement

    @property
    def error_j(self) -> float:
        """The job's energy less the GPU's exact energy over it (J)."""
        assert self.result.energy_j is not None and self.result.uncertainty_j is not None
        return self.result.energy_j - self.gpu.true_energy_j(self.t0, self.t1)

    @property
    def covered(self) -> bool:
        """Whether the stated ± covers the error."""
        assert self.result.uncertainty_j is not None
        return abs(self.error_j) <= self.result.uncertainty_j

    def noted(self, words: str) -> bool:
        """Whether a note on the result holds ``words``."""
        return any(words in n for n in self.result.notes)


def fake_job(
    seconds: float, *, seed: int = 0, period_s: float = 0.01, power_w: Any = 700.0, **gpu: Any
) -> FakeJob:
    """Track a FakeGPU drawing ``power_w`` for ``seconds``, read every ``period_s``.

    The end is taken before ``stop()``, which waits for the counter's next update.
    """
    clock = FakeClock()
    device = FakeGPU(clock=clock, seed=seed, power_w=power_w, **gpu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = greenai.track("job", devices=[device], clock=clock, period_s=period_s).start()
        t0 = clock.now()
        clock.advance(seconds)
        t1 = clock.now()
        result = job.stop()
    return FakeJob(device, job, t0, t1, result)
