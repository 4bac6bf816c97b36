"""Thin the native loop's readings before they are stored in a timeline.

The native loop reads its sources every 10 ms by default: cheap for the loop, but 100
samples per second per device would make a long run's timeline large (three Python floats
each). The feed therefore stores at most a few samples per device per :data:`STORE_PERIOD_S`
bucket, chosen so that no energy is lost:

* a counter reading is cumulative, so the last one in each bucket carries all the energy
  the earlier ones did — it is kept exactly, with its own timestamp and power;
* power read between counter readings is averaged over the bucket into one sample at the
  mean time of those reads (a boxcar filter: the power shape is kept at 100 ms resolution,
  its integral is kept, short spikes are smoothed);
* the first and last reading of every run of good readings are kept as they are, so the
  window's start and end and the edges of every failure gap stay exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["STORE_PERIOD_S", "decimate"]

STORE_PERIOD_S = 0.1
"""Bucket length (seconds) of the readings the feed stores per device."""

FloatArray = npt.NDArray[np.float64]


def decimate(
    t: FloatArray,
    energy_j: FloatArray,
    power_w: FloatArray,
    period_s: float = STORE_PERIOD_S,
    *,
    keep_first: bool = True,
    keep_last: bool = True,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Thin one device's run of good readings (sorted by time) to a few per bucket.

    Args:
        t: Reading times (seconds, the timeline's clock).
        energy_j: Cumulative counter energy (joules), NaN where the counter was not read.
        power_w: Power (watts), NaN where the source has none.
        period_s: Bucket length (seconds); 0 keeps everything.
        keep_first: Keep the first reading as it is (a window start or the end of a gap).
        keep_last: Keep the last reading as it is (a window end or the start of a gap).

    Returns:
        The kept ``(t, energy_j, power_w)``, still sorted by time.
    """
    n = len(t)
    if n <= 2 or period_s <= 0:
        return t, energy_j, power_w
    lo, hi = int(keep_first), n - int(keep_last)
    bucket = np.floor(t / period_s).astype(np.int64)
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    ends = np.append(starts[1:], n)
    has_e = np.isfinite(energy_j)
    has_p = np.isfinite(power_w)
    out_t: list[float] = [float(t[0])] if keep_first else []
    out_e: list[float] = [float(energy_j[0])] if keep_first else []
    out_p: list[float] = [float(power_w[0])] if keep_first else []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        a = max(a, lo)  # the first reading may be kept already
        b = min(b, hi)  # the last one may be kept after the loop
        if a >= b:
            continue
        counter = np.flatnonzero(has_e[a:b])
        last = a + int(counter[-1]) if len(counter) else -1
        between = np.flatnonzero(has_p[a:b]) + a
        between = between[between != last]
        if len(between):
            mean_t = float(t[between].mean())
            if last < 0 or mean_t < t[last]:
                out_t.append(mean_t)
                out_e.append(float("nan"))
                out_p.append(float(power_w[between].mean()))
                mean_t = float("nan")
        else:
            mean_t = float("nan")
        if last >= 0:
            out_t.append(float(t[last]))
            out_e.append(float(energy_j[last]))
            out_p.append(float(power_w[last]))
        if not np.isnan(mean_t):  # power after the bucket's last counter reading
            out_t.append(mean_t)
            out_e.append(float("nan"))
            out_p.append(float(power_w[between].mean()))
    if keep_last:
        out_t.append(float(t[-1]))
        out_e.append(float(energy_j[-1]))
        out_p.append(float(power_w[-1]))
    return np.array(out_t), np.array(out_e), np.array(out_p)
