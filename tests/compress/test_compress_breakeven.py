from __future__ import annotations

import math

import pandas as pd
import pytest

from greenai.compress import break_even
from greenai.compress.breakeven import break_even_columns


def test_pays_back_after_spent_over_saved_with_an_interval() -> None:
    # 100 J spent ± 10 J; 0.010 J -> 0.006 J per inference, each ± 0.0003 J
    result = break_even(100.0, 10.0, 0.010, 0.0003, 0.006, 0.0003)
    assert result.saved_per_inference_j == pytest.approx(0.004)
    assert result.saved_ci_j == pytest.approx(math.hypot(0.0003, 0.0003))
    assert result.inferences == pytest.approx(25_000)
    assert result.low == pytest.approx(90.0 / (0.004 + result.saved_ci_j))
    assert result.high == pytest.approx(110.0 / (0.004 - result.saved_ci_j))
    assert result.low < result.inferences < result.high
    assert result.text == "2.5e+04 (2.03e+04–3.08e+04)"


@pytest.mark.parametrize("row_j", [0.010, 0.02])
def test_never_when_it_costs_as_much_or_more_per_inference(row_j: float) -> None:
    result = break_even(5.0, 0.5, 0.010, 0.001, row_j, 0.001)
    assert math.isinf(result.inferences) and math.isinf(result.low) and result.text == "never"
    assert result.saved_per_inference_j == pytest.approx(0.010 - row_j)


def test_may_never_when_the_saving_is_within_the_noise() -> None:
    result = break_even(5.0, 0.5, 0.010, 0.002, 0.009, 0.002)
    assert result.inferences == pytest.approx(5000)
    assert math.isinf(result.high)
    assert result.text.endswith("may never)")


def test_columns_add_fine_tuning_and_leave_gaps_where_nothing_was_measured() -> None:
    frame = pd.DataFrame(
        {
            "energy_per_inference_j": [0.01, 0.005, 0.02, math.nan, 0.005],
            "energy_ci_j": [0.0, 0.0, 0.0, math.nan, 0.0],
            "compress_energy_j": [math.nan, 10.0, 1.0, 3.0, math.nan],
            "compress_energy_uncertainty_j": [math.nan, 1.0, 0.1, 0.1, math.nan],
            "finetune_energy_j": [math.nan, 40.0, math.nan, math.nan, math.nan],
            "finetune_energy_uncertainty_j": [math.nan, 4.0, math.nan, math.nan, math.nan],
        }
    )
    cols = break_even_columns(frame)
    assert cols["break_even"] == ["", "1e+04 (9e+03–1.1e+04)", "never", "", ""]
    assert cols["break_even_inferences"][1] == pytest.approx(50.0 / 0.005)
    assert math.isnan(cols["break_even_inferences"][0])
    assert math.isinf(cols["break_even_inferences"][2])
