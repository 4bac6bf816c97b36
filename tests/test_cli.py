from __future__ import annotations

from pathlib import Path

import pytest

from greenai.cli import main
from greenai.devices import discovery
from greenai.devices.base import Device
from greenai.devices.cpu_model import CpuModel
from greenai.devices.memory_model import MemoryModel
from greenai.devices.rapl import RaplDomain
from greenai.sampling import native
from tests.devices.fakes import make_zone


def test_devices_lists_each_source_and_its_method(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "cpu-model" in out and "model" in out
    assert "memory-model" in out
    assert "sampler: " in out  # which sampling loop reads RAPL/NVML here


@pytest.mark.skipif(not native.HAS_NATIVE, reason="the C loop is not built in this install")
def test_devices_says_what_the_sampler_reads_on_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sampler line says what is true for the devices found, not what the loop could do."""
    monkeypatch.delenv("GREENAI_NO_NATIVE", raising=False)
    found: list[Device] = [CpuModel(), MemoryModel()]
    monkeypatch.setattr(discovery, "discover", lambda models=True: list(found))
    assert main(["devices"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "GIL-free" not in first and "RAPL/NVML reads" not in first  # neither is here
    assert first.startswith("sampler: python") and "no RAPL zone or NVIDIA GPU" in first
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=5_000_000)
    found.insert(0, RaplDomain(zone, "cpu0-package", "cpu"))
    assert main(["devices"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("sampler: native") and "reads cpu0-package without the GIL" in first


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--otlp", "http://a:4318", "--otlp", "http://b:4318"], "--sink otlp:A --sink otlp:B"),
        (["--prometheus-port", "9401", "--prometheus-port", "9402"], "(9401 and 9402)"),
        (["--prometheus-port", "0", "--prometheus-addr", "::1", "--prometheus-addr", "::"], "::1"),
    ],
)
def test_a_flag_that_names_one_place_given_twice_is_refused_not_overridden(
    flags: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse would keep the last and drop the first
        main(["run", "--store", str(tmp_path / "r.db"), *flags, "--", "true"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is given twice" in err and said in err
    assert not (tmp_path / "r.db").exists()


def test_an_option_before_the_command_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--bogus"], ["--store", "x.db", "runs"]):
        assert main(argv) == 2  # argparse said only "required: command"
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{argv[0]} comes before the command" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nosuchcommand"])
    assert exc.value.code == 2


def test_bad_values_exit_2_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--epochs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("greenai: error:") and "epochs" in err and "\n" not in err


def test_compress_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["compress", "nosuchmodule_xyz:build", "--input-shape", "4,8"], "cannot import"),
        (["compress", "torch.nn:Linear", "--input-shape", "4,8"], "Linear() failed"),
        (["compress", "greenai.demo:build_mlp", "--input-shape", "4,x"], "--input-shape"),
        (["compress", "greenai.demo", "--input-shape", "4,64"], "module:callable"),
        (["compress", "greenai.demo:nothing", "--input-shape", "4,64"], "no attribute"),
        (
            ["compress", "greenai.demo:build_mlp", "--input-shape", "4,64", "--out", "t.xls"],
            "--out",
        ),
        (
            ["compress", "greenai.demo:build_mlp", "--input-shape", "4,64", "--methods", "l9:1"],
            "l9",
        ),
        (["compress", "greenai.demo:build_mlp", "--input-shape", "4,64", "--device", "tpu"], "cpu"),
        (
            ["compress", "greenai.demo:build_mlp", "--input-shape", "4,64", "--dtype", "int8"],
            "dtype",
        ),
        (["compress", "greenai.demo:build_mlp", "--input-shape", "4,3"], "does not run"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("greenai: error:") and words in err and "\n" not in err, err


def test_compress_runs_a_sweep_and_writes_the_table(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    out = tmp_path / "sweep.csv"
    argv = ["compress", "greenai.demo:build_mlp", "--input-shape", "8,64", "--repeats", "2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared 2-core machine
    try:
        argv += ["--period", "0.02", "--methods", "l1:0.5,sparse24", "--out", str(out)]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    text = capsys.readouterr().out
    assert "baseline" in text and "l1-layer 50%" in text and "skipped: needs CUDA" in text
    assert "estimated (model)" in text and f"wrote {out}" in text
    assert out.read_text().count("\n") == 4  # header + 3 rows


def test_demo_compress_prints_the_sweep_and_writes_the_report(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    import greenai.compress.demo
    import greenai.demo
    from greenai.compress import sweep
    from greenai.paired import Protocol
    from greenai.testing import FakeGPU

    def small_demo(progress: object) -> object:  # the real one (a minute) runs in benchmarks/
        model = greenai.demo.build_mlp(hidden=16)
        gpu = FakeGPU(update_period_s=0.01)
        return sweep(
            model,
            "structured:0.5",
            torch.randn(4, 64),
            devices=[gpu],
            period_s=0.01,
            protocol=Protocol(min_rounds=2, max_rounds=2, warmup_max_s=0.05),
            warmup_s=0.01,
            latency_s=0.01,
            progress=progress,
        )

    monkeypatch.setattr(greenai.compress.demo, "compress_demo", small_demo)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "demo.md"
    assert main(["demo", "--compress", "--output", str(out)]) == 0
    printed = capsys.readouterr()
    assert "structured 50%" in printed.out
    # progress: the stage and rows (then rounds) done, as lines where stderr is no terminal
    assert "preparing rows (compress, evaluate, warm up): 2/2 done" in printed.err
    assert "measuring in interleaved rounds: round 2 of at most 2" in printed.err
    assert out.read_text().startswith("## Compression sweep")


def test_demo_compress_refuses_a_bad_output_before_the_sweep(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import greenai.compress.demo

    def no_sweep() -> None:
        raise AssertionError("the sweep ran before --output was checked")

    monkeypatch.setattr(greenai.compress.demo, "compress_demo", no_sweep)
    assert main(["demo", "--compress", "--output", "x.txt"]) == 2
    err = capsys.readouterr().err
    assert "--output must end in .csv, .json, .md or .html (or .htm), got 'x.txt'" in err


def test_cli_and_exporter_accept_the_same_suffixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from greenai.errors import ConfigError
    from greenai.report import compression
    from greenai.report.compression import SUFFIXES, check_export_path, export_compression

    assert ".htm" in SUFFIXES
    monkeypatch.setattr(compression, "render_compression_html", lambda frame: "<html>")
    frame = pd.DataFrame({"label": ["baseline"]})
    for suffix in (".csv", ".json", ".HTM"):
        assert check_export_path(f"r{suffix}", "--out").name == f"r{suffix}"
        assert export_compression(frame, tmp_path / f"r{suffix}").exists()
    with pytest.raises(ConfigError, match="--out must end in"):
        check_export_path("r.xls", "--out")
    with pytest.raises(ConfigError, match="the report file must end in"):
        export_compression(frame, tmp_path / "r.xls")


def test_help_texts_read_as_plain_text_not_docstring_markup() -> None:
    from greenai.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in [("greenai", parser), *commands.items()]:
        text = sub.format_help()
        assert "``" not in text and ":func:" not in text and ":class:" not in text, name
    assert "Measure the energy" in parser.format_help()
