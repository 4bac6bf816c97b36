from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from greenai.report import render_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chromium() -> str | None:
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def test_html_renders_in_headless_chromium(run, tmp_path) -> None:
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):  # .ci/run installs it: a missing browser is a CI failure
            pytest.fail("chromium is not installed, and CI is set (apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    page = tmp_path / "report.html"
    page.write_text(render_html(run.measurement, run.timeline, run.phase_spans), "utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    png = shot.read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 50_000  # a blank 1200x2400 page compresses to a few kB
