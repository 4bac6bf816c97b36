from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.report import export, render_html, render_markdown, render_text
from greenai.report.frames import format_number

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))


@pytest.mark.parametrize("render", [render_text, render_markdown])
def test_text_and_markdown_show_energy_method_uncertainty_co2e(run, render) -> None:
    m = run.measurement
    out = render(m)
    assert f"{format_number(m.energy_j)} J ± {format_number(m.uncertainty_j, 2)} J" in out
    assert "[measured: counter + power]" in out
    assert "measured (counter)" in out and "measured (power)" in out
    assert "g CO2e" in out and "codecarbon" in out and "FRA" in out
    assert "epoch/forward" in out
    assert "\x1b[" not in out  # no colour codes


def test_model_only_is_labelled_estimated(model_only: Measurement) -> None:
    for out in (render_text(model_only), render_markdown(model_only), render_html(model_only)):
        assert "estimated (model)" in out
        assert "measured (" not in out
        assert "not from a sensor" in out


def test_missing_figures_are_dashes_not_zero(model_only: Measurement) -> None:
    md = render_markdown(model_only)
    row = next(line for line in md.splitlines() if line.startswith("| J/TFLOP |"))
    assert "—" in row and not re.search(r"\|\s*0(\.0*)?\s", row)
    assert "| CO2e (location) | —" in md
    text = render_text(model_only)
    assert re.search(r"J/TFLOP\s+│ —", text)


def test_markdown_power_summary(run) -> None:
    md = render_markdown(run.measurement, run.timeline, run.phase_spans)
    assert "## Power" in md and "| gpu1 |" in md


def test_html_is_self_contained_and_parses(run) -> None:
    html = render_html(run.measurement, run.timeline, run.phase_spans)
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert parser.tags.count("img") == 3  # power, phases, steps
    assert "script" not in parser.tags and "link" not in parser.tags
    for tag, name, value in parser.refs:
        assert value.startswith("data:image/png;base64,"), (tag, name, value[:40])
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "url(" not in html and "@import" not in html
    assert html.count('<img src="data:image/png;base64,') == 3
    for _, _, value in parser.refs:
        png = base64.b64decode(value.split(",", 1)[1])
        assert png.startswith(PNG_MAGIC)
    m = run.measurement
    for part in ("train", "completed", m.started_at, "How measured", "gpu0", "Notes"):
        assert part in html
    assert "measured (power)" in html and "CO2e (location)" in html


def test_html_without_timeline_has_no_power_plot(run, model_only: Measurement) -> None:
    assert render_html(run.measurement).count("<img") == 2
    assert render_html(model_only).count("<img") == 0


@pytest.mark.parametrize("fmt", ["text", "md", "html", "json", "csv"])
def test_export_writes_each_format(run, tmp_path, fmt: str) -> None:
    path = tmp_path / f"report.{fmt}"
    text = export(run.measurement, fmt, path, run.timeline, run.phase_spans)
    assert path.read_text(encoding="utf-8") == text and text
    if fmt == "json":
        again = Measurement.from_dict(json.loads(text))
        assert again == run.measurement
    if fmt == "csv":
        frame = pd.read_csv(path)
        assert frame["energy_j"].iloc[0] == pytest.approx(run.measurement.energy_j)


def test_export_returns_without_path_and_rejects_unknown(run) -> None:
    assert export(run.measurement, "md").startswith("# train")
    with pytest.raises(ConfigError, match="fmt must be one of"):
        export(run.measurement, "pdf")
