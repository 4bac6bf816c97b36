"""Reports of long jobs stay readable: phases chosen, colours distinct, axes from zero."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.colors import to_hex

import greenai
from greenai.cli import main
from greenai.measurement import Measurement
from greenai.report import phase_energy_figure, power_figure, render_html, step_energy_figure
from greenai.report.frames import efficiency_rows, select_phases, source_in_words
from greenai.report.plots import MAX_SHADED_PHASES, distinct_colours
from greenai.report.sections import phase_rows
from greenai.testing import FakeClock, FakeGPU


def _long_job(epochs: int = 30, store: Path | None = None) -> greenai.Tracker:
    """Each epoch its own top-level phase (``epoch7``) with train/eval and a nested step."""
    clock = FakeClock()
    job = greenai.track("long", devices=[FakeGPU(clock=clock)], clock=clock, store=store,
                        country="FRA")  # fmt: skip
    with job:
        for i in range(epochs):
            with job.phase(f"epoch{i}"):
                with job.phase("train"), job.phase("forward"):
                    clock.advance(0.1 + 0.01 * i)  # later epochs longer: a clear top N
                with job.phase("eval"):
                    clock.advance(0.05)
            job.step(samples=8)
    return job


@pytest.fixture(scope="module")
def long_job() -> greenai.Tracker:
    return _long_job()


def test_select_phases_keeps_depth_and_the_top_n_with_their_parents(long_job) -> None:
    m: Measurement = long_job.result
    chosen = select_phases(m, max_depth=1, top=12)
    names = [p.name for p in chosen.shown]
    assert len(names) <= 12 and all(n.count("/") <= 1 for n in names)
    for name in names:  # a child only with its parent
        assert "/" not in name or name.rsplit("/", 1)[0] in names
    assert "epoch29" in names and "epoch0" not in names  # the most energy first
    assert chosen.hidden == len(m.phases) - len(names)
    hidden_top = [p for p in m.phases if "/" not in p.name and p.name not in names]
    assert chosen.hidden_top_energy_j == pytest.approx(sum(p.energy_j or 0 for p in hidden_top))
    top_level = select_phases(m, max_depth=0, top=None).shown
    assert {p.name for p in top_level} == {f"epoch{i}" for i in range(30)} | {"(other)"}
    assert select_phases(m, None, None).hidden == 0


def test_html_shows_the_chosen_phases_and_says_how_many_are_left_out(long_job) -> None:
    m = long_job.result
    page = render_html(m, long_job.timeline(), long_job.phase_spans())
    table = page.split("<h2>Phases</h2>", 1)[1]
    assert table.count("<tr>") - 1 == 12  # header row + 12
    assert re.search(r"\d+ more phases not shown \(depth ≤ 1; top 12 by energy", table)
    full = render_html(m, phase_depth=None, top_phases=None)
    assert full.split("<h2>Phases</h2>", 1)[1].count("<tr>") - 1 == len(m.phases)
    assert len(phase_rows(m, 0, 5)) == 5


def test_phase_chart_bars_are_limited_and_the_energy_axis_starts_at_zero(long_job) -> None:
    m = long_job.result
    fig = phase_energy_figure(m, max_depth=0, top=8)
    ax = fig.axes[0]
    assert len(ax.patches) == 8 and ax.get_xlim()[0] == 0
    assert any("more phases not shown" in t.get_text() for t in ax.texts)
    # an uncertainty wider than the energy (a model's ±50% and more) stays above zero
    wide = replace(m, phases=tuple(replace(p, uncertainty_j=3 * (p.energy_j or 0))
                                   for p in m.phases))  # fmt: skip
    ax = phase_energy_figure(wide).axes[0]
    assert ax.get_xlim()[0] == 0
    for line in ax.collections:  # the error bars' segments
        for seg in line.get_segments():  # type: ignore[attr-defined]
            assert seg[:, 0].min() >= 0


def test_step_energy_band_never_goes_below_zero(long_job) -> None:
    m = long_job.result
    steps = replace(m.steps, uncertainty_j=tuple(3 * e for e in m.steps.energy_j))
    ax = step_energy_figure(replace(m, steps=steps)).axes[0]
    assert ax.get_ylim()[0] == 0
    (band,) = [c for c in ax.collections if c.get_paths()]
    assert min(v[1] for p in band.get_paths() for v in p.vertices) >= 0


def test_colours_do_not_repeat() -> None:
    for n in (1, 7, 10, 11, 20, 21, 40):
        assert len(set(distinct_colours(n))) == n


def test_power_plot_gives_each_shaded_phase_its_own_colour(long_job) -> None:
    ax = power_figure(long_job.timeline(), long_job.phase_spans()).axes[0]
    legend = ax.get_legend()
    pairs = zip(legend.get_texts(), legend.legend_handles, strict=True)
    phases = [(t.get_text(), h) for t, h in pairs if "phase" in t.get_text()]
    named = [h for t, h in phases if t.startswith("phase ")]
    assert len(named) == MAX_SHADED_PHASES - 1
    colours = [to_hex(h.get_facecolor()) for _, h in phases]
    assert len(set(colours)) == len(colours)  # the grey of "other phases" included
    assert phases[-1][0] == f"{30 - (MAX_SHADED_PHASES - 1)} other phases"  # 30 epochs


def test_co2e_row_names_its_source_in_words(long_job) -> None:
    (row,) = [v for k, v in efficiency_rows(long_job.result) if k == "CO2e (location)"]
    assert "national electricity mix" in row and "codecarbon" in row
    assert ".json" not in row and "data/" not in row
    src = "codecarbon 9.9 data/private_infra/2023/usa_emissions.json['texas'].emissions (x)"
    assert (
        source_in_words(src + " year 2023")
        == "US EPA eGRID state average, 2023 (codecarbon 9.9 data)"
    )
    assert source_in_words("given carbon_intensity_g_per_kwh") == "the intensity given"


def test_wide_tables_get_smaller_type_and_scroll_inside_the_page() -> None:
    from greenai.report.html_page import PAGE_CSS, html_table

    narrow = html_table(("a", "b"), [("1", "2")])
    wide = html_table(tuple("abcdefghijklmn"), [tuple("12345678901234")])
    assert 'class="table-wrap"' in narrow and 'class="wide"' not in narrow
    assert '<table class="wide">' in wide
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", PAGE_CSS)


def test_cli_report_chooses_depth_and_top(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    _long_job(epochs=6, store=db)
    assert main(["report", "--store", str(db), "--format", "md", "--phase-depth", "0",
                 "--top-phases", "3"]) == 0  # fmt: skip
    text = capsys.readouterr().out.split("## Phases", 1)[1].split("##", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("| epoch")]
    assert len(rows) == 3 and "/" not in "".join(rows)
    assert "4 more phases not shown" not in text and "more phases not shown" in text
    assert main(["report", "--store", str(db), "--top-phases", "-1"]) == 2


def test_parents_and_children_are_drawn_apart_and_eval_steps_are_marked() -> None:
    import greenai
    from greenai.testing import FakeClock, FakeGPU

    clock = FakeClock()
    gpu = FakeGPU(power_w=200.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    with greenai.track("epochs", devices=[gpu], clock=clock) as job:
        for _ in range(2):
            with job.phase("train"):
                for _ in range(3):
                    with job.phase("forward"):
                        clock.advance(0.5)
                    job.step(samples=4)
            with job.phase("eval"):  # between epochs: inside the next step's window
                clock.advance(2.0)
        job.step(samples=4)
    m = job.result
    fig = phase_energy_figure(m)
    top, inner = fig.axes
    parents = {t.get_text() for t in top.get_yticklabels()}
    assert {"train", "eval"} <= parents and not any("/" in p for p in parents)
    assert [t.get_text() for t in inner.get_yticklabels()] == ["train/forward"]
    ax = step_energy_figure(m, job.phase_spans()).axes[0]
    rings = [line for line in ax.lines if line.get_markerfacecolor() == "none"]
    (ring,) = rings
    assert list(ring.get_xdata()) == [4, 7]  # the steps after each eval
    assert "eval" in ring.get_label()


def test_accuracy_and_loss_stand_beside_the_energy_per_epoch(long_job) -> None:
    learning = [
        {"epoch": 1, "loss": 1.2, "accuracy": 0.71, "energy_j": 10.0, "uncertainty_j": 1.0},
        {"epoch": 2, "loss": 0.6, "accuracy": 0.88, "energy_j": 12.0, "uncertainty_j": 1.0},
    ]
    page = render_html(long_job.result, learning=learning)
    section = page.split("<h2>Learning and energy</h2>", 1)[1]
    assert "0.8800" in section and "22 J" in section  # accuracy, and the energy so far
    assert section.count("data:image/png;base64,") >= 1
    from greenai.report.plots import learning_figure

    fig = learning_figure(learning)
    assert [list(line.get_xdata()) for line in fig.axes[0].lines] == [[10.0, 22.0]]
    assert "Learning and energy" not in render_html(long_job.result)
