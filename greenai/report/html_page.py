"""One self-contained HTML report: inline CSS, plots as base64 PNG ``data:`` URIs, no JS."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from greenai.report.frames import (
    PHASE_DEPTH,
    TOP_PHASES,
    efficiency_rows,
    format_number,
    hidden_phases_note,
    methods_label,
    select_phases,
)
from greenai.report.plots import (
    figure_to_png,
    phase_energy_figure,
    power_figure,
    step_energy_figure,
)
from greenai.report.sections import (
    DEVICE_COLUMNS,
    PHASE_COLUMNS,
    all_notes,
    device_rows,
    phase_rows,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from greenai.measurement import Measurement

__all__ = ["PAGE_CSS", "html_figure", "html_table", "render_html"]

PAGE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2329;
       max-width: 1100px; margin: 2rem auto; padding: 0 1.5rem; line-height: 1.45; }
header { border-bottom: 3px solid #2e7d32; padding-bottom: .6rem; margin-bottom: 1.2rem; }
h1 { margin: 0 0 .2rem 0; font-size: 1.8rem; }
h2 { font-size: 1.2rem; margin: 1.8rem 0 .6rem; color: #2e7d32; }
.meta { color: #555; }
.status { display: inline-block; padding: .05rem .5rem; border-radius: .6rem; color: #fff;
          background: #2e7d32; font-size: .85rem; }
.status.failed, .status.interrupted { background: #c62828; }
.status.running { background: #f9a825; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
table.wide { font-size: .78rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6e8;
         vertical-align: top; overflow-wrap: anywhere; }
table.wide th, table.wide td { padding: .3rem .35rem; }
th { background: #f3f6f4; font-weight: 600; overflow-wrap: normal; }
td.label { white-space: nowrap; font-weight: 500; width: 14rem; }
.estimated { color: #b26a00; font-weight: 600; }
figure { margin: 1rem 0; }
figure img { width: 100%; max-width: 1000px; height: auto; border: 1px solid #e3e6e8; }
ul.notes li { margin: .2rem 0; }
footer { margin-top: 2rem; color: #777; font-size: .8rem; }
"""
"""The style sheet of every greenai HTML page (run, sweep, comparison): tables scroll
inside the page (``.table-wrap``), wide ones in smaller type."""


def html_table(
    columns: tuple[str, ...], rows: Sequence[tuple[str, ...]], label: bool = False
) -> str:
    """An HTML table of text cells (escaped) in a ``table-wrap`` div that scrolls sideways.

    Shared by every greenai HTML page (run, sweep, comparison). Tables of more than eight
    columns get ``class="wide"`` (smaller type, in :data:`PAGE_CSS`); "estimated (model)"
    in a cell is highlighted.

    Args:
        columns: The header cells.
        rows: The body rows, one text per column.
        label: Whether the first cell of each row is a row label (``class="label"``).
    """
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="label"' if label and i == 0 else ""
            text = escape(cell).replace(
                "estimated (model)", '<span class="estimated">estimated (model)</span>'
            )
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    wide = ' class="wide"' if len(columns) > 8 else ""  # e.g. the compression table
    return (
        f'<div class="table-wrap"><table{wide}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _learning(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table and plot of accuracy and loss beside the energy, per epoch."""
    from greenai.report.plots import learning_figure

    total = 0.0
    table = []
    evals = any(r.get("eval_loss") is not None for r in rows)  # the callbacks' evaluations

    def figure(value: Any) -> str:
        return "—" if value is None else f"{float(value):.4f}"

    for r in rows:
        energy, u = r.get("energy_j"), r.get("uncertainty_j")
        total += energy or 0.0
        row = (
            str(r.get("epoch", "")),
            figure(r.get("loss")),
            *((figure(r.get("eval_loss")),) if evals else ()),
            figure(r.get("accuracy")),
            "—" if energy is None else f"{format_number(energy)} ± {format_number(u or 0.0)} J",
            "—" if energy is None else f"{format_number(total)} J",
        )
        table.append(row)
    columns = ("epoch", "loss", *(("eval loss",) if evals else ()), "accuracy", "energy",
               "energy so far")  # fmt: skip
    return [
        html_table(columns, table, label=True),
        html_figure(learning_figure(rows), "accuracy and loss against energy"),
    ]


def _requests(requests: pd.DataFrame) -> list[str]:
    """A serving job's summary table and J/request histogram."""
    from greenai.report.requests_html import request_summary_rows, requests_figure

    return [
        html_table(("figure", "value"), request_summary_rows(requests), label=True),
        html_figure(requests_figure(requests), "energy per request histogram"),
    ]


def html_figure(fig: Figure, alt: str) -> str:
    """A matplotlib figure as an HTML ``<figure>`` holding an inline PNG with ``alt`` text."""
    data = base64.b64encode(figure_to_png(fig)).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}"></figure>'


def render_html(
    m: Measurement,
    timeline: pd.DataFrame | None = None,
    phase_spans: pd.DataFrame | None = None,
    *,
    phase_depth: int | None = PHASE_DEPTH,
    top_phases: int | None = TOP_PHASES,
    learning: Sequence[Mapping[str, Any]] | None = None,
    requests: pd.DataFrame | None = None,
) -> str:
    """One self-contained HTML page (no external resources, no JavaScript).

    Args:
        m: The measurement.
        timeline: ``Tracker.timeline()``, for the power plot (omitted when None).
        phase_spans: ``Tracker.phase_spans()``, to shade top-level phases on the power plot.
        phase_depth: Deepest phase level in the phase chart and table (0: top level only;
            None: all).
        top_phases: Phases shown, the most energy first (None: all); the page says how many
            were left out.
        learning: Per epoch (or evaluation), what the model learned beside what it drew:
            ``epoch``, ``loss``, ``accuracy`` (either may be None), ``energy_j`` and
            ``uncertainty_j`` (J): a table and a plot of accuracy and loss against the
            energy spent so far.
        requests: A serving job's request rows (``StoredRun.requests``; columns of
            :data:`~greenai.store.requests.REQUEST_COLUMNS`): a J/request histogram and a
            J/request and J/token (prefill, decode) summary with ± and the attribution rule
            (omitted when None or empty).
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>greenai report: {escape(m.name)}</title>",
        f"<style>{PAGE_CSS}</style></head><body>",
        "<header>",
        f"<h1>{escape(m.name)}</h1>",
        f'<div class="meta"><span class="status {escape(m.status)}">{escape(m.status)}</span> ',
        f"started {escape(m.started_at)} · {escape(format_number(m.duration_s))} s</div>",
        "</header>",
        "<h2>How measured</h2>",
        f"<p>Methods behind the total: {escape(methods_label(m.methods))}. "
        "Uncertainties are about 95% coverage.</p>",
    ]
    if m.devices:
        parts.append(html_table(DEVICE_COLUMNS, device_rows(m)))
    else:
        parts.append("<p>No device was measured: only time is reported.</p>")
    parts += ["<h2>Figures</h2>", html_table(("figure", "value"), efficiency_rows(m), label=True)]
    plots = []
    if timeline is not None:
        plots.append(html_figure(power_figure(timeline, phase_spans), "power over time per device"))
    if any(p.energy_j is not None for p in m.phases):
        figure = phase_energy_figure(m, max_depth=phase_depth, top=top_phases)
        plots.append(html_figure(figure, "energy per phase"))
    if m.steps.count and m.steps.energy_j:
        plots.append(html_figure(step_energy_figure(m, phase_spans), "energy per step"))
    if plots:
        parts += ["<h2>Plots</h2>", *plots]
    if learning:
        parts += ["<h2>Learning and energy</h2>", *_learning(learning)]
    if requests is not None and len(requests):
        parts += ["<h2>Requests</h2>", *_requests(requests)]
    if m.phases:
        phase_table = html_table(PHASE_COLUMNS, phase_rows(m, phase_depth, top_phases))
        parts += ["<h2>Phases</h2>", phase_table]
        hidden = hidden_phases_note(
            select_phases(m, phase_depth, top_phases), phase_depth, top_phases
        )
        if hidden:
            parts.append(f'<p class="meta">{escape(hidden)}: every phase is in the JSON and '
                         "CSV exports (<code>greenai export</code>).</p>")  # fmt: skip
    notes = all_notes(m)
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        parts += ["<h2>Notes</h2>", f'<ul class="notes">{items}</ul>']
    parts += ["<footer>Generated by greenai.</footer>", "</body></html>"]
    return "\n".join(parts) + "\n"
