"""Reports of a Measurement: tables, text, markdown, self-contained HTML, plots.

Reads :class:`~greenai.measurement.Measurement` objects (and a tracker's timeline and phase
spans) only; it never talks to hardware. Needs the ``matplotlib`` and ``rich`` extras.
"""

from __future__ import annotations

from greenai.report.frames import (
    devices_frame,
    efficiency_rows,
    phases_frame,
    steps_frame,
    summary_frame,
)
from greenai.report.plots import (
    figure_to_png,
    phase_energy_figure,
    power_figure,
    step_energy_figure,
)
from greenai.report.render import export, render_html, render_markdown, render_text
from greenai.report.tables_export import TABLE_FORMATS, export_tables, run_tables

__all__ = [
    "TABLE_FORMATS",
    "devices_frame",
    "efficiency_rows",
    "export",
    "export_tables",
    "figure_to_png",
    "phase_energy_figure",
    "phases_frame",
    "power_figure",
    "render_html",
    "render_markdown",
    "render_text",
    "run_tables",
    "step_energy_figure",
    "steps_frame",
    "summary_frame",
]
