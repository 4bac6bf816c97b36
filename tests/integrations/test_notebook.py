from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import greenai
from greenai.report.notebook import measurement_html
from greenai.testing import FakeGPU

IPython = pytest.importorskip("IPython")


@pytest.fixture
def shell():  # type: ignore[no-untyped-def]
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "greenai")
    ip.user_ns["gpus"] = [FakeGPU(power_w=250.0, seed=4)]
    yield ip
    ip.user_ns.pop("greenai_result", None)


def test_cell_magic_measures_the_cell_and_shows_the_measurement(shell) -> None:  # type: ignore[no-untyped-def]
    cell = (
        "%%greenai train --devices gpus --carbon-intensity 80 --as r\n"
        "import time\n"
        "for i in range(3):\n"
        "    time.sleep(0.02)\n"
        "    greenai_job.step(samples=2)\n"
        "inside = greenai_job.running\n"
    )
    out = shell.run_cell(cell)
    assert out.success, out.error_in_exec
    m = shell.user_ns["r"]
    assert isinstance(m, greenai.Measurement)
    assert out.result is m  # the cell's value: Jupyter shows it as HTML
    html = shell.display_formatter.format(m)[0]["text/html"]
    assert html == measurement_html(m) and "Energy (IT)" in html
    assert shell.user_ns["inside"] is True
    assert m.name == "train" and m.steps.count == 3 and m.steps.samples == 6
    assert m.devices[0].name == "gpu0" and m.co2e_kg is not None


def test_cell_magic_error_stops_the_job_as_failed(shell) -> None:  # type: ignore[no-untyped-def]
    out = shell.run_cell("%%greenai --devices gpus\nraise ValueError('boom')\n")
    assert isinstance(out.error_in_exec, ValueError)
    assert shell.user_ns["greenai_job"].result.status == "failed"


def test_cell_magic_bad_option_is_a_clear_error(shell) -> None:  # type: ignore[no-untyped-def]
    out = shell.run_cell("%%greenai --pue lots\npass\n")
    assert isinstance(out.error_in_exec, greenai.GreenAIError)
    assert "--pue" in str(out.error_in_exec)


def test_repr_html_shows_headline_figures_methods_and_a_power_plot() -> None:
    gpu = FakeGPU(power_w=[(0.05, 100.0), (0.05, 300.0)], noise_w=0.0, seed=5)
    with greenai.track("nb", devices=[gpu], carbon_intensity_g_per_kwh=100.0) as job:
        import time

        for _ in range(4):
            time.sleep(0.025)
            job.step(samples=1)
    page = measurement_html(job.result)
    assert "Energy (IT)" in page and "[measured: counter]" in page
    assert "measured (counter)" in page and "CO2e (location)" in page
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    root = ET.fromstring(svg)  # well-formed
    [line] = [e for e in root if e.tag.endswith("polyline")]
    ys = [float(p.split(",")[1]) for p in line.get("points", "").split()]
    assert max(ys) - min(ys) > 10  # the 100 W → 300 W step shows


def test_repr_html_escapes_names_and_without_devices_says_so() -> None:
    with greenai.track("<script>x</script>", devices=[]) as job:
        pass
    page = measurement_html(job.result)
    assert "<script>" not in page and "only time is reported" in page


def test_import_greenai_stays_light() -> None:
    code = (
        "import sys, greenai; greenai.load_ipython_extension;"
        "heavy = [m for m in ('IPython', 'torch', 'matplotlib', 'pandas') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
