"""The HTML run report of a serving job: J/request histogram, J/token summary, ± and rule."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

import greenai
from greenai.cli import main
from greenai.report.frames import format_number
from greenai.serving import ServingMeter
from greenai.serving.rows import RequestRows
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def served_run(path: Path) -> str:
    """A FakeGPU serving job of 12 requests of growing length, its rows in a store."""
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(2.0, 100.0), (6.0, 400.0), (9.0, 150.0)], seed=3)
    with RunStore(path) as job_store, RunStore(path) as rows_store:
        with greenai.track("serve", devices=[gpu], clock=clock, store=job_store) as job:
            assert job.run_id is not None
            rows = RequestRows(rows_store, job.run_id, keep=100)
            meter = ServingMeter(job, on_settled=rows)
            clock.advance(0.5)
            for k in range(12):
                with meter.request(model="tiny") as req:
                    clock.advance(0.2)
                    req.first_token()
                    clock.advance(0.1 * (k + 1))
                    req.tokens(prompt=16 + k, completion=10 * (k + 1))
                clock.advance(0.2)
        meter.settle(final=True)
        assert rows.written == 12
        return job.run_id


def _text(page: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_report_shows_j_per_request_and_j_per_token_with_the_rule(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run_id = served_run(db)
    with RunStore(db, read_only=True) as store:
        frame = store.requests(run_id)
    out = tmp_path / "report.html"
    assert (
        main(["report", run_id, "--store", str(db), "--format", "html", "--output", str(out)]) == 0
    )
    page = out.read_text("utf-8")
    assert "<h2>Requests</h2>" in page
    section = page.split("<h2>Requests</h2>", 1)[1]
    text = " ".join(_text(section).split())
    # figures recomputed here from the stored rows, not read back from the page's own code
    prefill = frame["prefill_energy_j"].sum() / frame["prompt_tokens"].sum()
    decode = frame["decode_energy_j"].sum() / frame["completion_tokens"].sum()
    assert f"J/token, prefill (prompt) {format_number(prefill)} ± " in text
    assert f"J/token, decode (generated) {format_number(decode)} ± " in text
    assert f"over {int(frame['completion_tokens'].sum())} tokens" in text
    median = frame["energy_j"].median()
    assert f"J/request, median {format_number(median)} ± " in text
    assert f"{len(frame)} charged (of {len(frame)} stored)" in text
    assert "attribution rule: spans by tokens in flight" in text  # the rule, named and said
    assert "± added: an upper bound" in text
    assert section.count('src="data:image/png;base64,') == 1  # the histogram
    assert 'alt="energy per request histogram"' in section


@pytest.mark.parametrize("fmt", ["text", "md"])
def test_text_and_markdown_show_the_requests_too(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    run_id = served_run(db)
    with RunStore(db, read_only=True) as store:
        frame = store.requests(run_id)
    assert main(["report", run_id, "--store", str(db), "--format", fmt]) == 0
    out = capsys.readouterr().out
    heading = "## Requests" if fmt == "md" else "Requests"
    assert heading in [line.strip() for line in out.splitlines()]
    section = out.split(heading, 1)[1]
    text = " ".join(section.replace("|", " ").replace("│", " ").split())
    # figures recomputed here from the stored rows, not read back from the report's code
    prefill = frame["prefill_energy_j"].sum() / frame["prompt_tokens"].sum()
    decode = frame["decode_energy_j"].sum() / frame["completion_tokens"].sum()
    median = frame["energy_j"].median()
    mean = frame["energy_j"].mean()
    assert f"J/token, prefill (prompt) {format_number(prefill)} ± " in text
    assert f"J/token, decode (generated) {format_number(decode)} ± " in text
    assert f"J/request, median {format_number(median)} ± " in text
    assert f"J/request, mean {format_number(mean)} ± " in text
    assert f"{len(frame)} charged (of {len(frame)} stored)" in text
    assert f"how measured {frame['method'].iloc[0]}" in text
    assert "attribution rule: spans by tokens in flight" in text


def test_a_run_without_requests_has_no_requests_section(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    clock = FakeClock()
    gpu = FakeGPU(clock=clock, power_w=[(5.0, 100.0)], seed=1)
    with RunStore(db) as store, greenai.track("train", devices=[gpu], clock=clock, store=store):
        clock.advance(2.0)
    out = tmp_path / "report.html"
    assert (
        main(["report", "latest", "--store", str(db), "--format", "html", "--output", str(out)])
        == 0
    )
    assert "<h2>Requests</h2>" not in out.read_text("utf-8")
    for fmt in ("text", "md"):
        out = tmp_path / f"report.{fmt}"
        argv = ["report", "latest", "--store", str(db), "--format", fmt, "--output", str(out)]
        assert main(argv) == 0
        assert "Requests" not in out.read_text("utf-8")


def test_the_requests_section_renders_in_headless_chromium_at_1400_px(tmp_path: Path) -> None:
    chromium = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    chromium = chromium or shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):  # .ci/run installs it: a missing browser is a CI failure
            pytest.fail("chromium is not installed, and CI is set (apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    db = tmp_path / "runs.db"
    run_id = served_run(db)
    out = tmp_path / "report.html"
    assert (
        main(["report", run_id, "--store", str(db), "--format", "html", "--output", str(out)]) == 0
    )
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1400,4000", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=90,
    )  # fmt: skip
    png = shot.read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert int.from_bytes(png[16:20], "big") == 1400  # IHDR width: the page at 1,400 px
    assert len(png) > 50_000  # a blank page compresses to a few kB
