from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from greenai.compress import COLUMNS
from greenai.errors import ConfigError
from greenai.report import (
    compression_table,
    energy_accuracy_figure,
    export_compression,
    figure_to_png,
    render_compression_html,
    render_compression_markdown,
    size_accuracy_figure,
)
from greenai.report.compression import TABLE_COLUMNS, compression_notes

NAN = math.nan


def _row(label: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(COLUMNS, NAN)
    row.update(label=label, method=label, setting="", status="ok", reason="", notes="")
    row.update(device="cpu", batch_size=64, pareto=False, energy_method="model")
    row.update(values)
    return row


@pytest.fixture
def frame() -> pd.DataFrame:
    common = {"latency_p50_ms": 0.1, "latency_p99_ms": 0.3, "flops_nominal": 2e6}
    rows = [
        _row(
            "baseline",
            sparsity=0.0,
            size_bytes=300_000,
            compression_ratio=1.0,
            flops_executed=2e6,
            accuracy=0.97,
            accuracy_delta=0.0,
            energy_per_inference_j=0.01,
            energy_ci_j=0.002,
            energy_vs_baseline=1.0,
            kwh_per_1k_inferences=2.8e-6,
            co2e_g_per_1k_inferences=1.3e-3,
            **common,
        ),
        _row(
            "l1-layer 50% +masks",
            sparsity=0.5,
            size_bytes=600_000,
            compression_ratio=0.5,
            flops_executed=2e6,
            accuracy=0.96,
            accuracy_delta=-0.01,
            energy_per_inference_j=0.02,
            energy_ci_j=0.004,
            energy_vs_baseline=2.0,
            kwh_per_1k_inferences=5.6e-6,
            co2e_g_per_1k_inferences=2.6e-3,
            notes="a note",
            **common,
        ),
        _row(
            "structured 50%",
            sparsity=0.0,
            size_bytes=150_000,
            compression_ratio=2.0,
            flops_executed=1e6,
            accuracy=0.95,
            accuracy_delta=-0.02,
            pareto=True,
            energy_per_inference_j=0.005,
            energy_ci_j=0.001,
            energy_vs_baseline=0.5,
            kwh_per_1k_inferences=1.4e-6,
            co2e_g_per_1k_inferences=6.6e-4,
            **common,
        ),
        _row("sparse-2:4", status="skipped", reason="needs CUDA", energy_method=NAN),
    ]
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out.loc[0, "pareto"] = True
    out.attrs.update(
        device="cpu",
        batch_size=64,
        repeats=5,
        window_s=1.0,
        period_s=0.1,
        started_at="2026-11-23T12:00:00+00:00",
    )
    return out


def test_table_shows_worse_as_plainly_as_better(frame: pd.DataFrame) -> None:
    rows = compression_table(frame)
    assert all(len(r) == len(TABLE_COLUMNS) for r in rows)
    masked = dict(zip(TABLE_COLUMNS, rows[1], strict=True))
    assert masked["ratio"] == "0.50×" and masked["× baseline"] == "2.00×"
    assert masked["accuracy (Δ)"] == "0.9600 (-0.0100)"
    assert masked["how"] == "estimated (model)" and masked["pareto"] == ""
    assert dict(zip(TABLE_COLUMNS, rows[2], strict=True))["pareto"] == "✓"
    assert rows[3][1] == "skipped: needs CUDA" and rows[3][2] == "—"
    notes = compression_notes(frame)
    assert any("cannot prove a saving" in n for n in notes)
    assert any(n.startswith("Cost more energy") and "+masks" in n for n in notes)
    assert "l1-layer 50% +masks: a note" in notes


def test_markdown_and_html(frame: pd.DataFrame) -> None:
    md = render_compression_markdown(frame)
    assert md.count("\n| ") == 10 and "estimated (model)" in md  # results, then details
    html = render_compression_html(frame)
    assert html.count("data:image/png;base64,") == 2  # two Pareto plots: no break-even data
    assert '<span class="estimated">estimated (model)</span>' in html
    assert "<script" not in html


def test_figures_render_and_say_when_there_is_no_accuracy(frame: pd.DataFrame) -> None:
    for fig in (energy_accuracy_figure(frame), size_accuracy_figure(frame)):
        assert isinstance(fig, Figure)
        assert figure_to_png(fig).startswith(b"\x89PNG")
    no_acc = frame.assign(accuracy=NAN)
    fig = energy_accuracy_figure(no_acc)
    assert "pass eval_fn" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_export_by_suffix(frame: pd.DataFrame, tmp_path: Path) -> None:
    csv = export_compression(frame, tmp_path / "t.csv")
    assert list(pd.read_csv(csv).columns) == list(COLUMNS)
    data = json.loads(export_compression(frame, tmp_path / "t.json").read_text())
    assert data[3]["status"] == "skipped"
    assert export_compression(frame, tmp_path / "t.md").read_text().startswith("## ")
    assert "<html" in export_compression(frame, tmp_path / "t.html").read_text()
    with pytest.raises(ConfigError, match="csv"):
        export_compression(frame, tmp_path / "t.xlsx")


def test_each_plot_draws_its_own_front(frame: pd.DataFrame) -> None:
    from greenai.report.compression import pareto_rows

    ok = frame[frame["status"] == "ok"]
    assert pareto_rows(ok, "energy_per_inference_j") == [2, 0]  # structured, then baseline
    assert pareto_rows(ok, "size_bytes") == [2, 0]
    tie = pd.concat([ok, ok.iloc[[0]].assign(label="twin")], ignore_index=True)
    assert sorted(pareto_rows(tie, "size_bytes")) == [0, 2, 3]  # an equal row shares the front


def test_break_even_in_table_notes_and_plot(frame: pd.DataFrame) -> None:
    from greenai.compress.breakeven import break_even_columns
    from greenai.report.compression import break_even_figure

    one_off = ["compress_s", "compress_energy_j", "compress_energy_uncertainty_j"]
    tune = ["finetune_s", "finetune_energy_j", "finetune_energy_uncertainty_j"]
    frame.loc[1, one_off] = [0.2, 20.0, 1.0]
    frame.loc[2, one_off + tune] = [0.5, 50.0, 2.0, 1.0, 100.0, 5.0]
    for col, values in break_even_columns(frame).items():
        frame[col] = values
    rows = {r[0]: dict(zip(TABLE_COLUMNS, r, strict=True)) for r in compression_table(frame)}
    assert rows["l1-layer 50% +masks"]["break-even inferences"] == "never"  # costs 2× per call
    # 150 J spent / (0.010 - 0.005 J saved per inference) = 30,000 inferences
    assert rows["structured 50%"]["break-even inferences"].startswith("3e+04 (")
    assert rows["structured 50%"]["compress s (+tune) / J"].startswith("0.5 + 1 s / 150")
    assert rows["baseline"]["break-even inferences"] == "—"
    assert any(n.startswith("Break-even:") for n in compression_notes(frame))
    ax = break_even_figure(frame).axes[0]
    # baseline, two compressed rows, and one break-even point (the other row never crosses)
    assert len(ax.lines) == 4
    assert ax.lines[-1].get_xdata()[0] == pytest.approx(30_000)


def test_break_even_plot_says_when_there_is_nothing_to_weigh(frame: pd.DataFrame) -> None:
    from greenai.report.compression import break_even_figure

    fig = break_even_figure(frame)  # no compression energy in this frame
    assert "no energy source" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_the_terminal_table_fits_100_columns_and_says_each_verdict(frame: pd.DataFrame) -> None:
    from greenai.report.compression import terminal_table

    long = frame.copy()
    long.loc[2, "label"] = "structured 50% + int4 weight-only + a long name"
    long["verdict"] = [
        "baseline",
        "39% more energy (95% CI 12% to 72% more)",
        "no measurable difference at this precision (±19%)",
        NAN,
    ]
    text = terminal_table(long, width=100)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[2].endswith("39% more energy")
    assert lines[3].startswith("structured 50% + int4 weight-only") or "…" in lines[3]
    assert lines[3].endswith("no difference (±19%)")
    assert "skipped: needs CUDA" in lines[4]


def test_html_shows_plots_only_where_there_is_data(frame: pd.DataFrame) -> None:
    html = render_compression_html(frame.assign(accuracy=NAN))
    assert "data:image/png;base64," not in html  # no accuracy, no energy break-even data
    assert "No accuracy plots" in html
    main = html.split("<h2>Details</h2>")[0]
    assert "needs CUDA" in main  # a skipped row's reason stands in its verdict cell
    assert "overflow-wrap: normal" in html  # words never break mid-word
