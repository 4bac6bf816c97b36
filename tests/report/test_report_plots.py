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
    timeline = pd.DataFrame(
        {"t_s": [0.0, float(n)], "device": "gpu0", "method": "counter", "power_w": 100.0}
    )
    touching = pd.DataFrame(
        {"phase": ["fwd"] * n, "depth": [0] * n, "start_s": range(n), "end_s": range(1, n + 1)}
    )

    def drawn(spans: pd.DataFrame) -> tuple[int, list[str]]:
        ax = power_figure(timeline, spans, max_spans=500).axes[0]
        return len(ax.patches), [t.get_text() for t in ax.texts]

    shaded, notes = drawn(touching)
    assert shaded == 1 and len(notes) == 1 and "merged" in notes[0]
    shaded, notes = drawn(touching.assign(phase=["fwd", "bwd"] * (n // 2)))
    assert shaded == 0 and len(notes) == 1 and "too many" in notes[0]
    assert drawn(touching.assign(depth=1)) == (0, [])  # nested spans are not shaded
    assert drawn(touching.iloc[:400]) == (400, [])  # within the limit: each its own


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
