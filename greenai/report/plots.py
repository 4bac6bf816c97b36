"""Figures of a Measurement and its timeline (matplotlib, Agg; nothing is displayed).

Figures are built with :class:`matplotlib.figure.Figure` directly rather than pyplot, so no
global figure registry fills up and no GUI backend is ever chosen.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from greenai.report.frames import (
    PHASE_DEPTH,
    TOP_PHASES,
    hidden_phases_note,
    method_label,
    methods_tag,
    select_phases,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from greenai.measurement import Measurement

__all__ = [
    "MAX_SHADED_PHASES",
    "MAX_SPANS",
    "distinct_colours",
    "figure_to_png",
    "learning_figure",
    "phase_energy_figure",
    "power_figure",
    "step_energy_figure",
]

MAX_SPANS = 500
"""Most phase spans shaded on a power plot; beyond it neighbours merge, then shading stops."""

MAX_SHADED_PHASES = 8
"""Top-level phases shaded in their own colour on a power plot; beyond, the rest share grey."""

_SHADES = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")
_OTHER_SHADE = "#9e9e9e"
# matplotlib's Set1 without its grey, blue and orange last (the first devices' line colours):
# vivid enough to read at 20% opacity under the lines
_PHASE_SHADES = ("#4daf4a", "#984ea3", "#e41a1c", "#a65628", "#f781bf", "#ffff33", "#377eb8",
                 "#ff7f00")  # fmt: skip


def distinct_colours(n: int) -> list[str]:
    """``n`` colours, none repeated: tab10 up to 10, tab20 up to 20, then a sampled map."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if n <= 10:
        return [to_hex(c) for c in colormaps["tab10"].colors[:n]]  # type: ignore[attr-defined]
    if n <= 20:
        return [to_hex(c) for c in colormaps["tab20"].colors[:n]]  # type: ignore[attr-defined]
    cmap = colormaps["turbo"]
    return [to_hex(cmap(0.05 + 0.9 * i / (n - 1))) for i in range(n)]


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=100, layout="tight")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes and release it (the figure is cleared afterwards)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    fig.clear()
    try:  # a figure made with pyplot is also registered there; let it go
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:  # pragma: no cover - pyplot ships with matplotlib
        pass
    return buf.getvalue()


def _top_level_spans(
    phase_spans: pd.DataFrame, t_end: float, limit: int
) -> tuple[list[tuple[str, float, float]], str | None]:
    """Top-level spans to shade, merged when there are too many; and a note if dropped."""
    top = phase_spans[phase_spans["depth"] == 0].sort_values("start_s")
    spans = [(str(p), float(a), float(b)) for p, a, b in top[["phase", "start_s", "end_s"]].values]
    if len(spans) <= limit:
        return spans, None
    # Gaps narrower than a pixel or so are invisible: join same-phase neighbours across them.
    gap = max(t_end, 1e-9) / 1000.0
    merged: list[tuple[str, float, float]] = []
    for name, a, b in spans:
        if merged and merged[-1][0] == name and a - merged[-1][2] <= gap:
            merged[-1] = (name, merged[-1][1], max(b, merged[-1][2]))
        else:
            merged.append((name, a, b))
    if len(merged) <= limit:
        return merged, f"{len(spans)} phase spans merged into {len(merged)}"
    return [], f"{len(spans)} phase spans: too many to shade"


def power_figure(
    timeline: pd.DataFrame, phase_spans: pd.DataFrame | None = None, *, max_spans: int = MAX_SPANS
) -> Figure:
    """Power (W) over time (s) per device, with top-level phases shaded.

    Args:
        timeline: ``Tracker.timeline()``: columns ``t_s``, ``device``, ``method``, ``power_w``.
        phase_spans: ``Tracker.phase_spans()``: ``phase``, ``depth``, ``start_s``, ``end_s``.
        max_spans: Most spans shaded; more are merged, or left unshaded with a note.
    """
    fig, ax = _figure(10.0, 4.0)
    ax.set_title("Power over time")
    if timeline.empty:
        _empty(ax, "no power readings (no energy source was measured)")
        return fig
    groups = list(timeline.groupby("device", sort=True))
    for (device, rows), colour in zip(groups, distinct_colours(len(groups)), strict=True):
        method = str(rows["method"].iloc[0])
        label = f"{device}: {method_label(method)}"
        ax.plot(rows["t_s"], rows["power_w"], lw=1.2, color=colour, label=label)
    handles, _ = ax.get_legend_handles_labels()
    note = None
    if phase_spans is not None and not phase_spans.empty:
        t_end = float(timeline["t_s"].max())
        spans, note = _top_level_spans(phase_spans, t_end, max_spans)
        # the phases that take the most time get a colour each; the rest share a grey
        time_in: dict[str, float] = {}
        for name, a, b in spans:
            time_in[name] = time_in.get(name, 0.0) + (b - a)
        ranked = sorted(time_in, key=lambda n: -time_in[n])
        named = ranked if len(ranked) <= MAX_SHADED_PHASES else ranked[: MAX_SHADED_PHASES - 1]
        colours = dict(zip(named, _PHASE_SHADES, strict=False))
        for i, (name, a, b) in enumerate(spans):
            colour = colours.get(name, _OTHER_SHADE)
            # alternate the shade so back-to-back spans of one phase stay distinct
            ax.axvspan(a, b, color=colour, alpha=0.10 if i % 2 else 0.20, lw=0)
        order = [n for n in dict.fromkeys(name for name, _, _ in spans) if n in colours]
        handles += [Patch(color=colours[n], alpha=0.3, label=f"phase {n}") for n in order]
        if len(named) < len(ranked):
            others = len(ranked) - len(named)
            handles.append(Patch(color=_OTHER_SHADE, alpha=0.3, label=f"{others} other phases"))
    if note:
        ax.text(0.01, 0.02, note, transform=ax.transAxes, fontsize=8, color="0.3")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("power (W)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def phase_energy_figure(
    m: Measurement, *, max_depth: int | None = PHASE_DEPTH, top: int | None = TOP_PHASES
) -> Figure:
    """Energy (J) per phase as horizontal bars with ±uncertainty error bars.

    Shows phases at most ``max_depth`` deep (0: top level only), the ``top`` with the most
    energy (None: no limit); a note under the title counts what is left out. Top-level
    phases (they add up to the job) are drawn in the first panel; nested phases (each a
    part of its parent's bar, never beside it) in a second one below. Bars start at zero
    and the axis never goes below it (an error bar wider than its bar is cut there).
    """
    chosen = select_phases(m, max_depth, top)
    phases = [p for p in chosen.shown if p.energy_j is not None]
    parents = [p for p in phases if "/" not in p.name]
    children = [p for p in phases if "/" in p.name]
    groups = [g for g in (parents, children) if g]
    if len(groups) < 2:
        fig, ax = _figure(10.0, max(2.5, 0.4 * len(phases) + 1.5))
        axes = [ax]
    else:
        fig = Figure(figsize=(10.0, 0.4 * len(phases) + 2.6), dpi=100, layout="tight")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 1, height_ratios=[len(parents) + 1, len(children) + 1])
    axes[0].set_title(f"Energy per phase {methods_tag(m.methods)}")
    if not phases:
        _empty(axes[0], "no phase energy (no phases, or no energy source)")
        return fig
    for ax, group in zip(axes, groups, strict=True):
        labels = [p.name for p in group]
        energy = [p.energy_j or 0.0 for p in group]
        errors = [p.uncertainty_j or 0.0 for p in group]
        low = [min(u, e) for e, u in zip(energy, errors, strict=True)]  # never below zero
        colours = [_SHADES[min(p.name.count("/"), len(_SHADES) - 1)] for p in group]
        y = list(range(len(group)))
        ax.barh(y, energy, xerr=[low, errors], color=colours, capsize=3, alpha=0.85)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
        if group is children and len(groups) == 2:
            ax.set_title("inside them (each a part of its parent's bar above)", fontsize=9)
    axes[-1].set_xlabel("energy (J), error bars: ±95% uncertainty")
    if chosen.hidden:
        axes[0].text(0.99, 0.01, hidden_phases_note(chosen, max_depth, top),
                     transform=axes[0].transAxes, ha="right", va="bottom", fontsize=8,
                     color="0.3")  # fmt: skip
    return fig


def _between_steps(m: Measurement, phase_spans: pd.DataFrame | None) -> dict[int, str]:
    """Steps (1-based) whose window holds a top-level phase span with no step mark inside.

    Step ``k`` runs from the previous ``step()`` (or the start) to its own; an ``eval`` pass
    between two training steps therefore lands in the next step's window, unless it was
    opened with ``in_steps=False`` (then its energy is in no step).
    """
    if phase_spans is None or phase_spans.empty or not m.steps.duration_s:
        return {}
    import numpy as np

    ends = np.cumsum(np.asarray(m.steps.duration_s, dtype=float))
    out: dict[int, str] = {}
    top = phase_spans[phase_spans["depth"] == 0]
    top = top[~top["phase"].isin(m.steps.apart_phases)]  # kept out of steps: not in one
    for name, a, b in top[["phase", "start_s", "end_s"]].itertuples(index=False):
        inside = (ends > float(a)) & (ends < float(b))
        if inside.any():
            continue  # a phase that holds steps (train): step work
        k = int(np.searchsorted(ends, float(b), side="left"))
        if k < len(ends):
            out.setdefault(k + 1, str(name))
    return out


def step_energy_figure(m: Measurement, phase_spans: pd.DataFrame | None = None) -> Figure:
    """Energy (J) of each step, with the ±uncertainty band when there is one.

    With ``phase_spans``, a step whose window also holds a phase run between steps (an
    ``eval`` pass at an epoch's edge) is drawn as a hollow red ring and named in the
    legend: its energy includes that phase's, which the phase chart charges to the phase.
    """
    s = m.steps
    fig, ax = _figure(10.0, 3.5)
    ax.set_title(f"Energy per step {methods_tag(m.methods)}")
    if not s.count or not s.energy_j:
        _empty(ax, "no step energy (no job.step() calls, or no energy source)")
        return fig
    x = list(range(1, len(s.energy_j) + 1))
    ax.plot(x, s.energy_j, marker="o" if len(x) <= 50 else None, ms=3, lw=1.2, label="energy")
    holders = {k: n for k, n in _between_steps(m, phase_spans).items() if k <= len(x)}
    if holders:
        names = ", ".join(sorted(set(holders.values())))
        ax.plot(
            list(holders),
            [s.energy_j[k - 1] for k in holders],
            "o",
            mfc="none",
            mec="#c62828",
            ms=8,
            label=f"step that also holds {names} (its energy is in the phase chart too)",
        )
        ax.legend(fontsize=8, loc="upper right")
    if s.uncertainty_j and len(s.uncertainty_j) == len(s.energy_j):
        low = [max(e - u, 0.0) for e, u in zip(s.energy_j, s.uncertainty_j, strict=True)]
        high = [e + u for e, u in zip(s.energy_j, s.uncertainty_j, strict=True)]
        ax.fill_between(x, low, high, alpha=0.2, lw=0, label="±95% uncertainty")
        ax.legend(fontsize=8, loc="upper right")
    spread = s.uncertainty_j if len(s.uncertainty_j) == len(x) else (0.0,) * len(x)
    top = max(e + u for e, u in zip(s.energy_j, spread, strict=True))
    ax.set_ylim(0, top * 1.1 if math.isfinite(top) and top > 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("energy (J)")
    ax.grid(alpha=0.3)
    return fig


def learning_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Accuracy (left axis) and loss (right axis) against the energy spent so far (J).

    ``rows``: per epoch, ``loss``, ``accuracy`` and ``energy_j`` (J); epochs without
    energy are left out (the x axis would be a guess).
    """
    fig, ax = _figure(8.0, 3.8)
    x: list[float] = []
    total = 0.0
    kept = []
    for r in rows:
        if r.get("energy_j") is None:
            continue
        total += float(r["energy_j"])
        x.append(total)
        kept.append(r)
    if not kept:
        _empty(ax, "no energy per epoch: nothing to plot against")
        return fig
    ax.set_title("What the model learned for the energy spent")
    ax.set_xlabel("energy so far (J)")
    accuracy = [r.get("accuracy") for r in kept]
    if any(a is not None for a in accuracy):
        ax.plot(x, [math.nan if a is None else a for a in accuracy], "o-", color="#2e7d32",
                label="accuracy")  # fmt: skip
        ax.set_ylabel("accuracy", color="#2e7d32")
    loss = [r.get("loss") for r in kept]
    if any(v is not None for v in loss):
        right = ax.twinx()
        right.plot(x, [math.nan if v is None else v for v in loss], "s--", color="#c62828",
                   label="loss")  # fmt: skip
        right.set_ylabel("loss", color="#c62828")
    ax.grid(alpha=0.3)
    return fig
