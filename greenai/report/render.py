"""A Measurement as text, markdown, HTML, JSON or CSV.

Every renderer shows the same sections: the header (name, status, date), how each device
was measured (method, uncertainty, partial), the efficiency figures, the phases and the
notes. Estimated (``model``) figures are labelled as such; missing figures read ``—``.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from greenai.errors import ConfigError
from greenai.report.frames import (
    PHASE_DEPTH,
    TOP_PHASES,
    efficiency_rows,
    format_number,
    hidden_phases_note,
    select_phases,
    summary_frame,
)
from greenai.report.html_page import render_html
from greenai.report.sections import (
    DEVICE_COLUMNS,
    PHASE_COLUMNS,
    all_notes,
    device_rows,
    header_line,
    phase_rows,
)

if TYPE_CHECKING:
    import pandas as pd

    from greenai.measurement import Measurement

__all__ = ["FORMATS", "export", "render_html", "render_markdown", "render_text"]

Format = Literal["text", "md", "html", "json", "csv"]
FORMATS: tuple[str, ...] = ("text", "md", "html", "json", "csv")


def render_text(
    m: Measurement,
    width: int = 100,
    *,
    color: bool = False,
    phase_depth: int | None = PHASE_DEPTH,
    top_phases: int | None = TOP_PHASES,
    requests: pd.DataFrame | None = None,
) -> str:
    """A text report (rich tables); ANSI colour codes only when ``color`` is true.

    ``phase_depth`` and ``top_phases`` choose the phases shown, as in :func:`render_html`;
    ``requests`` (a serving job's request rows, ``StoredRun.requests``) adds a Requests
    table: J/request median and mean, J/token of prefill and decode, each with its ± (J),
    how measured and the attribution rule.
    """
    console = Console(
        record=True,
        width=width,
        file=io.StringIO(),
        color_system="standard" if color else None,
        force_terminal=color,
    )
    console.print(header_line(m))
    console.print()
    console.print(_rich_table("How measured", DEVICE_COLUMNS, device_rows(m), "no device"))
    console.print(_rich_table("Figures", ("figure", "value"), efficiency_rows(m), ""))
    rows = phase_rows(m, phase_depth, top_phases)
    console.print(_rich_table("Phases", PHASE_COLUMNS, rows, "no phases"))
    if requests is not None and len(requests):
        console.print(_rich_table("Requests", ("figure", "value"), _request_rows(requests), ""))
    notes = all_notes(m)
    hidden = _hidden(m, phase_depth, top_phases)
    if hidden:
        notes.insert(0, hidden)
    if notes:
        console.print("Notes")
        for note in notes:
            console.print(f"  - {note}", markup=False, highlight=False)
    return console.export_text(styles=color)


def _rich_table(
    title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]], empty: str
) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: "[...]" is not rich markup
    if not rows and empty:
        table.add_row(empty, *[""] * (len(columns) - 1))
    return table


def _request_rows(requests: pd.DataFrame) -> list[tuple[str, str]]:
    from greenai.report.requests_html import request_summary_rows

    return request_summary_rows(requests)


def _md_cell(text: str) -> str:
    # Markdown renders raw HTML: a name like "<script>" must show, not run.
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _md_table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _hidden(m: Measurement, phase_depth: int | None, top_phases: int | None) -> str:
    note = hidden_phases_note(select_phases(m, phase_depth, top_phases), phase_depth, top_phases)
    return note and note + ": every phase is in the JSON and CSV exports"


def render_markdown(
    m: Measurement,
    timeline: pd.DataFrame | None = None,
    phase_spans: pd.DataFrame | None = None,
    *,
    phase_depth: int | None = PHASE_DEPTH,
    top_phases: int | None = TOP_PHASES,
    requests: pd.DataFrame | None = None,
) -> str:
    """A markdown report: header, how measured, figures, phases, requests, power, notes.

    ``timeline`` adds a per-device power summary (markdown carries no images);
    ``phase_spans`` is accepted for symmetry with :func:`render_html`; ``phase_depth`` and
    ``top_phases`` choose the phases shown, as there; ``requests`` (a serving job's request
    rows) adds a Requests table, as :func:`render_text` does.
    """
    del phase_spans  # the spans only matter to the power plot
    lines = [f"# {_md_cell(m.name)}", "", f"*{_md_cell(header_line(m))}*", ""]
    lines += ["## How measured", ""]
    lines += _md_table(DEVICE_COLUMNS, device_rows(m)) if m.devices else ["No device."]
    lines += ["", "## Figures", ""]
    lines += _md_table(("figure", "value"), efficiency_rows(m))
    if m.phases:
        lines += ["", "## Phases", ""]
        lines += _md_table(PHASE_COLUMNS, phase_rows(m, phase_depth, top_phases))
        hidden = _hidden(m, phase_depth, top_phases)
        if hidden:
            lines += ["", f"*{_md_cell(hidden)}*"]
    if requests is not None and len(requests):
        lines += ["", "## Requests", ""]
        lines += _md_table(("figure", "value"), _request_rows(requests))
    if timeline is not None and not timeline.empty:
        lines += ["", "## Power", ""]
        rows = [
            (
                str(device),
                str(len(g)),
                f"{format_number(float(g['power_w'].mean()))} W",
                f"{format_number(float(g['power_w'].max()))} W",
            )
            for device, g in timeline.groupby("device", sort=True)
        ]
        lines += _md_table(("device", "readings", "mean power", "max power"), rows)
    notes = all_notes(m)
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {_md_cell(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def export(
    m: Measurement,
    fmt: str,
    path: str | Path | None = None,
    timeline: pd.DataFrame | None = None,
    phase_spans: pd.DataFrame | None = None,
    *,
    phase_depth: int | None = PHASE_DEPTH,
    top_phases: int | None = TOP_PHASES,
    learning: Sequence[Mapping[str, Any]] | None = None,
    requests: pd.DataFrame | None = None,
) -> str:
    """Render ``m`` as ``fmt`` (text, md, html, json or csv); write it to ``path`` if given.

    ``csv`` is the one-row summary frame; ``json`` is ``m.to_json(indent=2)``, which
    :meth:`Measurement.from_dict` reads back (every phase). ``phase_depth`` and
    ``top_phases`` choose the phases the text, md and html reports show (see
    :func:`render_html`); ``learning`` (html) the loss and accuracy drawn beside the
    energy; ``requests`` (text, md, html: a serving job's request rows) its Requests
    section. Returns the rendered text.

    Raises:
        ConfigError: ``fmt`` is not one of :data:`FORMATS`.
    """
    phases = {"phase_depth": phase_depth, "top_phases": top_phases}
    if fmt == "text":
        text = render_text(m, phase_depth=phase_depth, top_phases=top_phases, requests=requests)
    elif fmt == "md":
        text = render_markdown(m, timeline, phase_spans, **phases, requests=requests)
    elif fmt == "html":
        text = render_html(m, timeline, phase_spans, **phases, learning=learning, requests=requests)
    elif fmt == "json":
        text = m.to_json(indent=2)
    elif fmt == "csv":
        text = summary_frame(m).to_csv(index=False)
    else:
        raise ConfigError(f"fmt must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
