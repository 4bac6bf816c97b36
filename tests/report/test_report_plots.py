from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from greenai.measurement import Measurement
from greenai.report import (
    figure_to_png,
    phase_energy_figure,
    power_figure,
    step_energy_figure,
)
from greenai.report.plots import _top_level_spans

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_figures_render_to_png(run, model_only: Measurement) -> None:
    figures = [
        power_figure(run.timeline, run.phase_spans),
        power_figure(run.timeline),
        power_figure(run.timeline.iloc[0:0]),
        phase_energy_figure(run.measurement),
        phase_energy_figure(model_only),
        step_energy_figure(run.measurement),
        step_energy_figure(model_only),
    ]
    for fig in figures:
        assert isinstance(fig, Figure)
        png = figure_to_png(fig)
        assert png.startswith(PNG_MAGIC) and len(png) > 2000


def test_power_figure_labels(run) -> None:
    fig = power_figure(run.timeline, run.phase_spans)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time since start (s)"
    assert ax.get_ylabel() == "power (W)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "gpu0: measured (counter)" in legend
    assert "phase epoch" in legend
    figure_to_png(fig)


def test_many_spans_are_merged_or_dropped() -> None:
    n = 2000
    touching = pd.DataFrame(
        {"phase": ["fwd"] * n, "depth": [0] * n, "start_s": range(n), "end_s": range(1, n + 1)}
    )
    spans, note = _top_level_spans(touching, float(n), 500)
    assert len(spans) == 1 and note is not None and "merged" in note
    alternating = touching.assign(phase=["fwd", "bwd"] * (n // 2))
    spans, note = _top_level_spans(alternating, float(n), 500)
    assert spans == [] and note is not None and "too many" in note
    nested = touching.assign(depth=1)
    assert _top_level_spans(nested, float(n), 500) == ([], None)


def test_power_figure_with_many_spans(run) -> None:
    n = 3000
    spans = pd.DataFrame(
        {
            "phase": ["fwd", "bwd"] * (n // 2),
            "depth": [0] * n,
            "start_s": [i * 0.001 for i in range(n)],
            "end_s": [(i + 1) * 0.001 for i in range(n)],
        }
    )
    png = figure_to_png(power_figure(run.timeline, spans))
    assert png.startswith(PNG_MAGIC)
