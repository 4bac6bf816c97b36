"""Energy break-even: after how many inferences has a compression paid for itself?

Compressing (and fine-tuning) costs a one-off energy ``E`` (joules, measured as tracked
phases); each inference of the compressed model then saves ``s = e_base - e_row`` joules
against the baseline. The compression has paid for itself after ``n = E / s`` inferences.
When ``s <= 0`` (the compressed model costs as much or more per inference) it never does.

The interval is the range of ``E / s`` over the two 95% intervals, ``E ± u_E`` and
``s ± u_s``, with ``u_s`` the baseline's and the row's intervals added in quadrature (two
independent measurements). It is open-ended ("may never pay back") when the saving's
interval reaches zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BreakEven", "break_even", "break_even_columns"]


@dataclass(frozen=True)
class BreakEven:
    """Inferences after which the one-off energy is paid back.

    Attributes:
        saved_per_inference_j: ``e_base - e_row`` (J), negative when the row costs more.
        saved_ci_j: Its 95% interval half-width (J).
        inferences: ``E / s``; ``inf`` when ``s <= 0`` (never).
        low: Fewest inferences within the intervals.
        high: Most inferences within the intervals (``inf``: may never pay back).
    """

    saved_per_inference_j: float
    saved_ci_j: float
    inferences: float
    low: float
    high: float

    @property
    def text(self) -> str:
        """``"never"``, ``"1.2e+04 (9.1e+03–1.8e+04)"`` or ``"1.2e+04 (≥ 9.1e+03, may never)"``."""
        if math.isinf(self.inferences):
            return "never"
        if math.isinf(self.high):
            return f"{self.inferences:.3g} (≥ {self.low:.3g}, may never)"
        return f"{self.inferences:.3g} ({self.low:.3g}–{self.high:.3g})"


def break_even(
    one_off_j: float,
    one_off_uncertainty_j: float,
    baseline_j: float,
    baseline_ci_j: float,
    row_j: float,
    row_ci_j: float,
) -> BreakEven:
    """Inferences to pay back ``one_off_j`` from the per-inference saving against the baseline.

    Args:
        one_off_j: Energy spent compressing and fine-tuning (J, >= 0).
        one_off_uncertainty_j: Its 95% uncertainty (J).
        baseline_j: Energy per inference of the baseline (J).
        baseline_ci_j: Its 95% interval half-width (J).
        row_j: Energy per inference of the compressed model (J).
        row_ci_j: Its 95% interval half-width (J).

    Returns:
        The break-even point and its interval.
    """
    from greenai.windows import difference_with_uncertainty

    minus_saved, saved_ci = difference_with_uncertainty(baseline_j, baseline_ci_j, row_j, row_ci_j)
    saved = -minus_saved
    spent_lo = max(0.0, one_off_j - one_off_uncertainty_j)
    spent_hi = one_off_j + one_off_uncertainty_j
    if saved <= 0:
        return BreakEven(saved, saved_ci, math.inf, math.inf, math.inf)
    best = saved + saved_ci
    worst = saved - saved_ci
    return BreakEven(
        saved_per_inference_j=saved,
        saved_ci_j=saved_ci,
        inferences=one_off_j / saved,
        low=spent_lo / best,
        high=spent_hi / worst if worst > 0 else math.inf,
    )


def break_even_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The sweep's break-even columns, from its energy and one-off columns.

    The first row is the baseline. A row without a per-inference energy, or without the
    energy of its compression phase, gets NaN and an empty ``break_even`` text.
    """
    cols: dict[str, list[Any]] = {
        "energy_saved_per_inference_j": [],
        "energy_saved_ci_j": [],
        "break_even_inferences": [],
        "break_even_low": [],
        "break_even_high": [],
        "break_even": [],
    }
    base = frame.iloc[0]
    base_j, base_ci = _num(base.get("energy_per_inference_j")), _num(base.get("energy_ci_j"))
    for i, (_, row) in enumerate(frame.iterrows()):
        row_j, row_ci = _num(row.get("energy_per_inference_j")), _num(row.get("energy_ci_j"))
        spent = _num(row.get("compress_energy_j"))
        spent_u = _num(row.get("compress_energy_uncertainty_j"))
        tuned = _num(row.get("finetune_energy_j"))
        if not math.isnan(tuned):
            spent += tuned
            spent_u += _num(row.get("finetune_energy_uncertainty_j"))  # one device, one scale
        if i == 0 or any(math.isnan(v) for v in (base_j, row_j, spent)):
            for values in cols.values():
                values.append(math.nan)
            cols["break_even"][-1] = ""
            continue
        result = break_even(
            spent,
            0.0 if math.isnan(spent_u) else spent_u,
            base_j,
            0.0 if math.isnan(base_ci) else base_ci,
            row_j,
            0.0 if math.isnan(row_ci) else row_ci,
        )
        cols["energy_saved_per_inference_j"].append(result.saved_per_inference_j)
        cols["energy_saved_ci_j"].append(result.saved_ci_j)
        cols["break_even_inferences"].append(result.inferences)
        cols["break_even_low"].append(result.low)
        cols["break_even_high"].append(result.high)
        cols["break_even"].append(result.text)
    return cols


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out
