"""The fleet KPI page: one self-contained HTML file with tables and plots (no JS)."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from greenai.report.kpi import METRICS
from greenai.report.plots import distinct_colours, figure_to_png

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["render_kpi_html"]

_CSS = """
body { font-family: system-ui, sans-serif; color: #1d2329; max-width: 1100px; margin: 2rem auto;
       padding: 0 1.5rem; line-height: 1.45; }
h1 { border-bottom: 3px solid #2e7d32; padding-bottom: .4rem; }
h2 { font-size: 1.2rem; color: #2e7d32; margin-top: 1.8rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #e3e6e8; text-align: right; }
th { background: #f3f6f4; }
.note { color: #b26a00; }
img { max-width: 100%; }
"""


def _png(fig: Figure) -> str:
    data = base64.b64encode(figure_to_png(fig)).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _energy_figure(frame: pd.DataFrame, by: list[str]) -> Figure:
    """IT kWh per period, stacked by the first grouping tag, with facility kWh on top."""
    fig = Figure(figsize=(8.0, 3.8), dpi=100, layout="tight")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    periods = list(dict.fromkeys(frame["period"].astype(str)))
    x = range(len(periods))
    if by:
        table = frame.pivot_table(
            index="period", columns=by[0], values="it_kwh", aggfunc="sum"
        ).reindex(periods)
        bottom = [0.0] * len(periods)
        for colour, group in zip(distinct_colours(len(table.columns)), table.columns, strict=True):
            values = table[group].fillna(0.0).tolist()
            ax.bar(x, values, bottom=bottom, color=colour, label=f"{by[0]}={group}")
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    else:
        ax.bar(x, frame["it_kwh"].fillna(0.0), color="#2e7d32", label="IT")
        ax.plot(x, frame["facility_kwh"], "o-", color="#1d2329", label="PUE-weighted")
    ax.set_xticks(list(x), periods, rotation=45, ha="right")
    ax.set_ylabel("kWh")
    ax.legend(fontsize=8)
    return fig


def _progress_figure(track: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(8.0, 3.6), dpi=100, layout="tight")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = list(range(len(track)))
    ax.errorbar(x, track["value"], yerr=track["value_u"], fmt="o-", color="#2e7d32", label="fleet")
    ax.plot(
        x, track["path"], "--", color="#c62828", label=f"path to {track['target_year'].iloc[0]}"
    )
    ax.set_xticks(x, track["period"].astype(str).tolist(), rotation=45, ha="right")
    ax.set_ylabel(METRICS.get(str(track["metric"].iloc[0]), ""))
    ax.legend(fontsize=8)
    return fig


def _table(frame: pd.DataFrame) -> str:
    html: str = frame.to_html(
        index=False, escape=True, na_rep="–", float_format=lambda v: f"{v:.4g}"
    )
    return f'<div class="table-wrap">{html}</div>'


def render_kpi_html(
    frame: pd.DataFrame,
    *,
    by: list[str],
    notes: list[str],
    progress: list[pd.DataFrame],
    avoided: list[dict[str, Any]],
    title: str,
) -> str:
    """The page: notes, plots, the KPI table, progress against each target, avoided energy."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    parts += [f'<p class="note">{escape(n)}</p>' for n in notes]
    if not frame.empty:
        parts += ["<h2>Energy per period</h2>", _png(_energy_figure(frame, by))]
    for track in progress:
        metric = str(track["metric"].iloc[0])
        parts += [f"<h2>Target: {escape(METRICS[metric])}</h2>"]
        if len(track):
            parts.append(_png(_progress_figure(track)))
        parts.append(_table(track))
    if avoided:
        import pandas as pd

        parts += ["<h2>Avoided by compression</h2>", _table(pd.DataFrame(avoided))]
    parts += ["<h2>KPIs</h2>", _table(frame), "</body></html>"]
    return "\n".join(parts)
