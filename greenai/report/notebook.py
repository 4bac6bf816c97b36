"""A Measurement in a notebook: a compact HTML table and a small power plot (inline SVG).

``greenai`` registers :func:`measurement_html` with IPython, so a Measurement at
the end of a Jupyter cell shows itself. No JavaScript, no images to fetch, no matplotlib:
the plot is a few lines of SVG.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from greenai.report.frames import efficiency_rows, format_number, method_label
from greenai.report.sections import all_notes, header_line

if TYPE_CHECKING:
    from greenai.measurement import Measurement

__all__ = ["HEADLINE", "measurement_html", "power_svg"]

HEADLINE = (
    "Energy (IT)",
    "Average power",
    "J/step (mean)",
    "J/sample",
    "J/token",
    "kWh/TFLOP (IT)",
    "CO2e (location)",
)
"""The figures (labels of :func:`greenai.report.frames.efficiency_rows`) the table shows."""

_WIDTH, _HEIGHT, _PAD = 360, 90, 4


def power_svg(m: Measurement) -> str:
    """A small SVG plot of power over the job, or ``""`` when there is nothing to plot.

    With per-step energies (a finished job with steps) it is each step's mean power
    (energy / duration) against time; otherwise one bar per device, average power.
    """
    s = m.steps
    if s.energy_j and len(s.energy_j) == len(s.duration_s) and len(s.energy_j) >= 2:
        t, points = 0.0, []
        for e, dur in zip(s.energy_j, s.duration_s, strict=True):
            if dur > 0:
                points.append((t, e / dur))
                points.append((t + dur, e / dur))
            t += dur
        if len(points) < 2:
            return ""
        top = max(p for _, p in points) or 1.0
        end = points[-1][0] or 1.0
        xy = " ".join(
            f"{_PAD + x / end * (_WIDTH - 2 * _PAD):.1f},"
            f"{_HEIGHT - _PAD - p / top * (_HEIGHT - 2 * _PAD):.1f}"
            for x, p in points
        )
        title = f"power per step, 0–{format_number(top)} W over {format_number(end)} s"
        shape = f'<polyline fill="none" stroke="#2e7d32" stroke-width="1.5" points="{xy}"/>'
    elif m.devices:
        top_w = max(d.avg_power_w for d in m.devices) or 1.0
        width = (_WIDTH - 2 * _PAD) / len(m.devices)
        bars = []
        for i, d in enumerate(m.devices):
            h = d.avg_power_w / top_w * (_HEIGHT - 2 * _PAD - 12)
            x = _PAD + i * width
            bars.append(
                f'<rect x="{x + 2:.1f}" y="{_HEIGHT - _PAD - h:.1f}" width="{width - 4:.1f}"'
                f' height="{h:.1f}" fill="#2e7d32"/>'
                f'<text x="{x + 4:.1f}" y="12" font-size="10">{html.escape(d.name)}'
                f" {format_number(d.avg_power_w, 3)} W</text>"
            )
        title = "average power per device"
        shape = "".join(bars)
    else:
        return ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}"'
        f' role="img" aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>'
        f'<rect width="100%" height="100%" fill="#f6f8f6"/>{shape}</svg>'
        f'<div style="font-size:smaller;color:#555">{html.escape(title)}</div>'
    )


def measurement_html(m: Measurement) -> str:
    """A compact HTML view of ``m``: headline figures with their methods, devices, plot."""
    esc = html.escape
    rows = [(k, v) for k, v in efficiency_rows(m) if k in HEADLINE]
    left = 'style="text-align:left"'
    figures = "".join(f"<tr><th {left}>{esc(k)}</th><td {left}>{esc(v)}</td></tr>" for k, v in rows)
    devices = "".join(
        f"<tr><td>{esc(d.name)}</td><td>{esc(d.kind)}</td><td>{esc(method_label(d.method))}</td>"
        f"<td>{format_number(d.energy_j)} J ± {format_number(d.uncertainty_j, 2)} J</td></tr>"
        for d in m.devices
    )
    devices_table = (
        "<table><tr><th>device</th><th>kind</th><th>method</th><th>energy</th></tr>"
        f"{devices}</table>"
        if devices
        else "<p>No device was measured: only time is reported.</p>"
    )
    notes = all_notes(m)
    notes_html = (
        "<details><summary>notes</summary><ul>"
        + "".join(f"<li>{esc(n)}</li>" for n in notes)
        + "</ul></details>"
        if notes
        else ""
    )
    return (
        f'<div class="greenai-measurement"><strong>{esc(header_line(m))}</strong>'
        f"<table>{figures}</table>{devices_table}{power_svg(m)}{notes_html}</div>"
    )
