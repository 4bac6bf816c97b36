"""Reports of a compression sweep: table, Pareto plots, markdown and self-contained HTML.

The sweep is :func:`greenai.compress.sweep`'s DataFrame.

Reads the sweep's DataFrame only. What got worse shows as plainly as what got better:
ratios below 1 and energy above the baseline are printed as they are, and an energy that
was estimated (``model``) says so in the table and in the notes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError
from greenai.report.frames import format_number
from greenai.report.plots import _empty, _figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "DETAIL_COLUMNS",
    "MAIN_COLUMNS",
    "SUFFIXES",
    "break_even_figure",
    "check_export_path",
    "compression_notes",
    "compression_table",
    "energy_accuracy_figure",
    "export_compression",
    "pareto_rows",
    "render_compression_html",
    "render_compression_markdown",
    "size_accuracy_figure",
    "terminal_table",
]

TABLE_COLUMNS = (
    "method",
    "status",
    "sparsity",
    "size",
    "ratio",
    "GFLOP nom/exec",
    "accuracy (Δ)",
    "p50 / p99 ms",
    "J/inference ± 95% CI",
    "× baseline",
    "verdict",
    "kWh/1k",
    "g CO2e/1k",
    "how",
    "compress s (+tune) / J",
    "break-even inferences",
    "pareto",
)

MAIN_COLUMNS = (
    "method",
    "size",
    "ratio",
    "accuracy (Δ)",
    "J/inference ± 95% CI",
    "× baseline",
    "verdict",
    "pareto",
)
"""The columns of the report's first table (a skipped row shows its reason as verdict)."""

DETAIL_COLUMNS = (
    "method",
    "sparsity",
    "GFLOP nom/exec",
    "p50 / p99 ms",
    "kWh/1k",
    "g CO2e/1k",
    "how",
    "compress s (+tune) / J",
    "break-even inferences",
)
"""The columns of the details table, below the first one."""


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _size(nbytes: float | None) -> str:
    if nbytes is None:
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def _how(method: Any) -> str:
    text = str(method) if isinstance(method, str) else "—"
    return text.replace("model", "estimated (model)")


def _one_off(r: Mapping[Any, Any]) -> str:
    """``"0.12 s / 3.4 J"``, ``"0.12 + 5.0 s / 90 J"`` with fine-tuning, ``"—"`` for none."""
    seconds = _num(r.get("compress_s"))
    if seconds is None:
        return "—"
    tune = _num(r.get("finetune_s"))
    time_text = f"{seconds:.3g}" + ("" if tune is None else f" + {tune:.3g}") + " s"
    spent = _num(r.get("compress_energy_j"))
    if spent is None:
        return time_text
    spent += _num(r.get("finetune_energy_j")) or 0.0
    return f"{time_text} / {format_number(spent)} J"


def compression_table(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """The sweep as display rows (strings), one per method, in :data:`TABLE_COLUMNS` order."""
    rows: list[tuple[str, ...]] = []
    for r in frame.to_dict("records"):
        if r["status"] != "ok":
            rows.append(
                (str(r["label"]), f"skipped: {r['reason']}", *("—",) * (len(TABLE_COLUMNS) - 3), "")
            )
            continue
        nom, ex = _num(r["flops_nominal"]), _num(r["flops_executed"])
        acc, delta = _num(r["accuracy"]), _num(r["accuracy_delta"])
        energy, ci = _num(r["energy_per_inference_j"]), _num(r["energy_ci_j"])
        vs = _num(r["energy_vs_baseline"])
        low, high = _num(r.get("energy_vs_baseline_low")), _num(r.get("energy_vs_baseline_high"))
        times = "—" if vs is None else f"{vs:.2f}×"
        if vs is not None and low is not None and high is not None and low != high:
            times += f" ({low:.2f}–{high:.2f})" if math.isfinite(high) else " (±∞)"
        kwh, co2 = _num(r["kwh_per_1k_inferences"]), _num(r["co2e_g_per_1k_inferences"])
        rows.append(
            (
                str(r["label"]),
                "ok",
                f"{float(r['sparsity']):.1%}",
                _size(_num(r["size_bytes"])),
                f"{float(r['compression_ratio']):.2f}×",
                "—" if nom is None or ex is None else f"{nom / 1e9:.4g} / {ex / 1e9:.4g}",
                "—" if acc is None else f"{acc:.4f} ({delta or 0.0:+.4f})",
                f"{float(r['latency_p50_ms']):.3g} / {float(r['latency_p99_ms']):.3g}",
                "—" if energy is None else f"{format_number(energy)} ± {format_number(ci or 0)}",
                times,
                str(r.get("verdict") or "—") if isinstance(r.get("verdict"), str) else "—",
                "—" if kwh is None else f"{kwh:.3g}",
                "—" if co2 is None else f"{co2:.3g}",
                _how(r["energy_method"]),
                _one_off(r),
                str(r.get("break_even") or "—"),
                "✓" if r["pareto"] else "",
            )
        )
    return rows


def _select(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``columns`` of :func:`compression_table`; a skipped row's reason goes to ``verdict``."""
    out = []
    for row in compression_table(frame):
        cells = dict(zip(TABLE_COLUMNS, row, strict=True))
        if cells["status"] != "ok":
            cells["verdict"] = cells["status"]
        out.append(tuple(cells.get(c, "—") for c in columns))
    return out


def _short_verdict(text: str) -> str:
    """``"38% less energy"``, ``"no difference (±6%)"``: a verdict for a narrow terminal."""
    if text.startswith("no measurable difference"):
        noise = re.search(r"±[0-9.e+-]+%", text)
        star = "*" if "implausible" in text else ""
        return f"no difference{star}" + (f" ({noise.group(0)})" if noise else "")
    return text.split(" (", 1)[0]


def terminal_table(frame: pd.DataFrame, width: int = 100) -> str:
    """The sweep as a plain-text table no wider than ``width`` columns.

    Columns: method (cut with … to fit), size ratio, accuracy (Δ), p50 ms, energy ×
    baseline with its 95% interval, and a short verdict (``no difference*``: an
    implausible saving, see the notes). Everything else is in the notes and the exports.
    """
    head = ("method", "size", "accuracy (Δ)", "p50 ms", "energy × base", "verdict")
    rows = []
    for r, cells in zip(frame.to_dict("records"), compression_table(frame), strict=True):
        if r["status"] != "ok":
            rows.append((str(r["label"]), "—", "—", "—", "—", f"skipped: {r['reason']}"))
            continue
        full = dict(zip(TABLE_COLUMNS, cells, strict=True))
        verdict_text = r.get("verdict")
        rows.append(
            (
                str(r["label"]),
                full["ratio"],
                full["accuracy (Δ)"],
                f"{float(r['latency_p50_ms']):.3g}",
                full["× baseline"],
                _short_verdict(verdict_text) if isinstance(verdict_text, str) else "—",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    fixed = sum(widths[1:-1]) + 2 * (len(head) - 1) + min(widths[-1], 22)
    widths[0] = max(12, min(widths[0], width - fixed))
    room = width - sum(widths[:-1]) - 2 * (len(head) - 1)

    def fit(text: str, n: int) -> str:
        return text if len(text) <= n else text[: max(n - 1, 0)] + "…"

    def line(cells: tuple[str, ...]) -> str:
        out = [fit(cells[0], widths[0]).ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        out.append(fit(cells[-1], max(room, 8)))
        return "  ".join(out).rstrip()

    return "\n".join([line(head), *(line(row) for row in rows)])


def compression_notes(frame: pd.DataFrame) -> list[str]:
    """How the sweep was measured, and what its figures can and cannot show."""
    attrs = frame.attrs
    notes = []
    if attrs:
        notes.append(
            f"device {attrs.get('device')}, batch {attrs.get('batch_size')}, "
            f"windows of >= {format_number(attrs['window_s'])} s "
            f"(sampler period {format_number(attrs['period_s'])} s), "
            f"started {attrs.get('started_at')}"
        )
    if attrs.get("protocol"):
        stopped = attrs.get("rounds_stopped_by")
        again = attrs.get("rounds_remeasured") or 0
        notes.append(
            f"Protocol: {attrs['protocol']}."
            + (f" Rounds stopped by: {stopped}." if stopped else "")
            + (f" {again} round(s) re-measured (outlying baseline)." if again else "")
        )
    methods = " ".join(str(m) for m in frame["energy_method"].dropna())
    if "model" in methods:
        notes.append(
            "Energy marked 'estimated (model)' comes from CPU utilisation × a TDP table, not "
            "from a meter: it follows run time and load, so it cannot prove a saving. "
            "Latency and throughput are measured."
        )
    notes.append(
        "± is a 95% interval: the spread of the repeated windows (t-interval) and the "
        "measurement's own uncertainty, in quadrature. × baseline: the paired per-round "
        "ratio and its 95% interval; a verdict claims a change only when that interval "
        "excludes 1 (no difference*: a saving that dense FLOPs and size cannot explain). "
        "Pareto: no other row has both lower-or-equal energy and higher-or-equal accuracy."
    )
    if "break_even" in frame and frame["break_even"].astype(str).str.len().gt(0).any():
        notes.append(
            "Break-even: the energy spent compressing (and fine-tuning), each a tracked "
            "phase, divided by the energy saved per inference against the baseline; 'never' "
            "when the compressed model costs as much or more per inference. The range spans "
            "both 95% intervals; 'may never' when the saving's interval reaches zero."
        )
    ok = frame[(frame["status"] == "ok") & frame["compression_ratio"].notna()]
    if len(ok) > 1:
        top = ok.loc[ok["compression_ratio"].astype(float).idxmax()]
        acc = _num(top.get("accuracy"))
        delta = _num(top.get("accuracy_delta"))
        notes.append(
            f"Smallest model: {top['label']}, {float(top['compression_ratio']):.2f}× smaller "
            "(measured from the stored tensors)"
            + ("" if acc is None else f", accuracy {acc:.4f} ({delta or 0.0:+.4f})")
        )
    vs = frame["energy_vs_baseline"].astype(float)
    low = frame.get("energy_vs_baseline_low")
    low = vs * math.nan if low is None else low.astype(float)
    # beyond the paired interval where there is one (a frame from an older sweep has none)
    beyond = (low > 1) | (low.isna() & (vs > 1))
    worse = frame[(frame["status"] == "ok") & beyond]
    if len(worse):
        notes.append(
            "Cost more energy per inference than the baseline: " + ", ".join(worse["label"])
        )
    for r in frame.to_dict("records"):
        if isinstance(r.get("notes"), str) and r["notes"]:
            notes.append(f"{r['label']}: {r['notes']}")
    return notes


def pareto_rows(ok: pd.DataFrame, x: str) -> list[int]:
    """The rows on the Pareto front of accuracy against ``x``, as each plot draws it.

    A row is on the front when no other row has both a lower ``x`` and a higher accuracy;
    rows equal in both share the front. Each plot has its own front (energy, size), unlike
    the sweep's ``pareto`` column (energy only).

    Args:
        ok: Rows with an ``accuracy`` column and an ``x`` column, none NaN.
        x: The column to minimise, e.g. ``"energy_per_inference_j"`` or ``"size_bytes"``.

    Returns:
        Index labels of the rows on the front, lowest ``x`` first.
    """
    front: list[int] = []
    best, best_x = -math.inf, math.nan
    for idx, row in ok.sort_values([x, "accuracy"], ascending=[True, False]).iterrows():
        tie = row["accuracy"] == best and row[x] == best_x  # equal rows share the front
        if row["accuracy"] > best or tie:
            front.append(int(idx))
            best, best_x = row["accuracy"], row[x]
    return front


def _scatter(
    frame: pd.DataFrame, x: str, xlabel: str, xerr: str | None, log_x: bool = False
) -> Figure:
    fig, ax = _figure(7.5, 4.5)
    ok = frame[(frame["status"] == "ok") & frame[x].notna()]
    if ok.empty or ok["accuracy"].isna().all():
        _empty(ax, "no accuracy: pass eval_fn to sweep() (or --eval) to plot this")
        return fig
    ok = ok[ok["accuracy"].notna()]
    front = pareto_rows(ok, x)
    for i, (idx, r) in enumerate(ok.iterrows()):
        color = "#2e7d32" if idx in front else "#4c72b0"
        err = r[xerr] if xerr else None
        ax.errorbar(r[x], r["accuracy"], xerr=err, fmt="o", color=color, ecolor="0.6", capsize=3)
        ax.annotate(
            str(r["label"]),
            (r[x], r["accuracy"]),
            textcoords="offset points",
            xytext=(5, 4 if i % 2 == 0 else -10),
            fontsize=7,
        )
    line = ok.loc[front].drop_duplicates(subset=[x, "accuracy"])
    if len(line) > 1:
        ax.step(line[x], line["accuracy"], where="post", color="#2e7d32", lw=1, alpha=0.7)
    if log_x:
        ax.set_xscale("log")
    ax.set_title("green: Pareto front (nothing else is both lower and more accurate)", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (eval_fn)")
    ax.grid(alpha=0.3)
    return fig


def energy_accuracy_figure(frame: pd.DataFrame) -> Figure:
    """Accuracy against energy per inference, with 95% intervals; the Pareto front in green."""
    how = " ".join(str(m) for m in frame["energy_method"].dropna())
    label = "energy per inference (J)" + (", estimated (model)" if "model" in how else "")
    return _scatter(frame, "energy_per_inference_j", label, "energy_ci_j")


def size_accuracy_figure(frame: pd.DataFrame) -> Figure:
    """Accuracy against stored size in bytes (log scale)."""
    return _scatter(frame, "size_bytes", "stored size (bytes)", None, log_x=True)


def break_even_figure(frame: pd.DataFrame) -> Figure:
    """Cumulative energy against inferences served: the one-off cost, then the per-call cost.

    Each compressed row is a line starting at its compression (+ fine-tuning) energy with
    its per-inference energy as slope; the baseline starts at 0. Where a line crosses the
    baseline's (a dot), the compression has paid for itself (log-log axes).
    """
    import numpy as np

    fig, ax = _figure(7.5, 4.5)
    need = {"energy_per_inference_j", "compress_energy_j"}
    if not need <= set(frame.columns):
        _empty(ax, "no break-even: this sweep has no compression-energy columns")
        return fig
    ok = frame[(frame["status"] == "ok") & frame["energy_per_inference_j"].notna()]
    rows = ok.iloc[1:][ok.iloc[1:]["compress_energy_j"].notna()] if len(ok) else ok
    if ok.empty or rows.empty:
        _empty(ax, "no break-even: no energy source measured this sweep")
        return fig
    base = float(ok.iloc[0]["energy_per_inference_j"])
    finite = [float(v) for v in rows["break_even_inferences"] if 0 < float(v) < math.inf]
    top = max([10.0, *(10 * v for v in finite)])
    n = np.logspace(0, math.log10(top), 200)
    ax.plot(n, n * base, color="black", lw=1.5, label=f"{ok.iloc[0]['label']}")
    palette = [f"C{i}" for i in range(10)]  # tab10; past ten rows the line style changes
    for i, (_, r) in enumerate(rows.iterrows()):
        spent = float(r["compress_energy_j"]) + (_num(r.get("finetune_energy_j")) or 0.0)
        (line,) = ax.plot(
            n,
            spent + n * float(r["energy_per_inference_j"]),
            lw=1.2,
            color=palette[i % 10],
            ls=("-", "--", ":")[i // 10 % 3],
            label=str(r["label"]),
        )
        point = _num(r.get("break_even_inferences"))
        if point is not None and math.isfinite(point) and point > 0:
            ax.plot([point], [point * base], "o", color=line.get_color(), markeredgecolor="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inferences served")
    ax.set_ylabel("cumulative energy (J), one-off included")
    ax.set_title("dots: break-even (where a row's line crosses the baseline's)", fontsize=9)
    # beside the axes, never over the lines
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_compression_markdown(frame: pd.DataFrame, title: str = "Compression sweep") -> str:
    """The sweep as a markdown section: table and notes (no plots)."""
    lines = [f"## {title}", ""]
    for columns in (MAIN_COLUMNS, DETAIL_COLUMNS):
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += [
            "| " + " | ".join(_md_cell(c) for c in row) + " |" for row in _select(frame, columns)
        ]
        lines.append("")
    lines += [f"- {n}" for n in compression_notes(frame)]
    return "\n".join(lines) + "\n"


def render_compression_html(frame: pd.DataFrame, title: str = "Compression sweep") -> str:
    """One self-contained HTML page: the table, both Pareto plots and the notes."""
    from greenai.report.html_page import PAGE_CSS, html_figure, html_table

    notes = "".join(f"<li>{escape(n)}</li>" for n in compression_notes(frame))
    ok = frame[frame["status"] == "ok"]
    has_accuracy = bool(ok["accuracy"].notna().any())
    has_energy = bool(ok["energy_per_inference_j"].notna().any())
    plots: list[str] = []
    if has_accuracy and has_energy:
        plots += [
            "<h2>Energy vs accuracy</h2>",
            html_figure(energy_accuracy_figure(frame), "accuracy against energy per inference"),
        ]
    if has_accuracy:
        plots += [
            "<h2>Size vs accuracy</h2>",
            html_figure(size_accuracy_figure(frame), "accuracy against stored size"),
        ]
    if has_energy and "compress_energy_j" in frame and ok["compress_energy_j"].notna().any():
        plots += [
            "<h2>Energy break-even</h2>",
            html_figure(break_even_figure(frame), "cumulative energy against inferences served"),
        ]
    if not has_accuracy:
        plots.append(
            '<p class="meta">No accuracy plots: pass eval_fn to sweep() (or --eval) to '
            "see accuracy against energy and size.</p>"
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>greenai: {escape(title)}</title>",
        f"<style>{PAGE_CSS}{_SWEEP_CSS}</style></head><body>",
        f"<header><h1>{escape(title)}</h1></header>",
        "<h2>Results</h2>",
        html_table(MAIN_COLUMNS, _select(frame, MAIN_COLUMNS), label=True),
        "<h2>Details</h2>",
        html_table(DETAIL_COLUMNS, _select(frame, DETAIL_COLUMNS), label=True),
        *plots,
        "<h2>Notes</h2>",
        f'<ul class="notes">{notes}</ul>',
        "<footer>Generated by greenai.</footer></body></html>",
    ]
    return "\n".join(parts) + "\n"


_SWEEP_CSS = """
body { max-width: 1300px; }
th, td { overflow-wrap: normal; word-break: normal; hyphens: none; }
td { white-space: nowrap; }
td:nth-last-child(2) { white-space: normal; min-width: 14rem; }
td.label { width: auto; }
"""
"""Sweep tables: whole words and numbers only (a cell never breaks mid-word)."""


SUFFIXES = (".csv", ".json", ".md", ".html", ".htm")
"""File types :func:`export_compression` writes (the CLI checks ``--out`` against these)."""


def check_export_path(path: str | Path, what: str = "the report file") -> Path:
    """``path`` as a Path if :func:`export_compression` can write it.

    Raises:
        ConfigError: Its suffix is not one of :data:`SUFFIXES` (checked before any work).
    """
    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise ConfigError(
            f"{what} must end in .csv, .json, .md or .html (or .htm), got {out.name!r}"
        )
    return out


def export_compression(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the sweep to ``path``: ``.csv`` (every column), ``.json``, ``.md`` or ``.html``.

    Raises:
        ConfigError: Another suffix (see :data:`SUFFIXES`).
    """
    out = check_export_path(path)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".json":
        frame.to_json(out, orient="records", indent=2)
    elif suffix == ".md":
        out.write_text(render_compression_markdown(frame), encoding="utf-8")
    else:
        out.write_text(render_compression_html(frame), encoding="utf-8")
    return out
