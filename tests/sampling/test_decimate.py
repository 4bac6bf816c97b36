"""Thinning the native loop's readings before they are stored: no counter energy is lost."""

from __future__ import annotations

import numpy as np
import pytest

from greenai.sampling.decimate import decimate

NAN = float("nan")


def nvml_like(seconds: float = 2.0, period_s: float = 0.01) -> tuple[np.ndarray, ...]:
    """Power every tick, the energy counter every 10th tick (as a GPU read at 10 ms)."""
    t = np.arange(0.0, seconds, period_s) + 0.003
    power = 100.0 + 50.0 * np.sin(t * 3.0)
    energy = np.cumsum(power) * period_s
    energy[np.arange(len(t)) % 10 != 0] = NAN
    energy[-1] = 999.0  # the stop() reading carries the counter
    return t, energy, power


def test_counter_readings_survive_and_power_is_averaged_per_bucket() -> None:
    t, e, p = nvml_like()
    kt, ke, kp = decimate(t, e, p, 0.1)
    assert len(kt) <= 2 * 21 + 2 and len(kt) < len(t) / 4
    assert (np.diff(kt) > 0).all()
    # Every counter reading's value is still there, at its own time.
    counter = np.isfinite(e)
    kept = np.isfinite(ke)
    assert np.array_equal(kt[kept], t[counter]) and np.array_equal(ke[kept], e[counter])
    # The window's first and last readings are kept as they were.
    assert (kt[0], kp[0], kt[-1], ke[-1]) == (t[0], p[0], t[-1], 999.0)
    # Averaged power keeps the integral (trapezoid over the kept samples).
    assert np.trapezoid(kp, kt) == pytest.approx(np.trapezoid(p, t), rel=2e-3)


def test_counter_only_source_keeps_the_last_reading_of_each_bucket() -> None:
    t = np.arange(0.0, 1.0, 0.01)
    e = t * 30.0
    p = np.full_like(t, NAN)
    kt, ke, _ = decimate(t, e, p, 0.1)
    assert len(kt) <= 12  # the first reading, one per bucket, the one that ends the window
    assert ke[0] == 0.0 and ke[-1] == e[-1]
    assert np.allclose(ke, kt * 30.0)


def test_run_edges_are_kept_only_when_asked() -> None:
    t = np.arange(0.0, 0.3, 0.01)
    e = t * 10.0
    p = np.full_like(t, NAN)
    kt, _, _ = decimate(t, e, p, 0.1, keep_first=False, keep_last=False)
    assert t[0] not in kt and len(kt) == 3  # one counter reading per bucket
    assert decimate(t[:2], e[:2], p[:2], 0.1)[0].tolist() == t[:2].tolist()
    assert len(decimate(t, e, p, 0.0)[0]) == len(t)  # 0: keep everything
