"""Sinks by name: entry points in ``greenai.sinks`` reached by ``greenai run --sink NAME``.

The test sink is a real installed distribution: a ``.dist-info`` folder with its
``entry_points.txt`` and a module, on ``sys.path``, found the way a third-party package's
sink is found.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenai.cli import main
from greenai.errors import ConfigError
from greenai.sink_registry import GROUP, make_sink, parse_sink_spec, registered_sinks
from greenai.sinks import Sink

SINK_MODULE = """
class Recorder:
    def __init__(self, path, **options):
        self.path = path
        self.options = options

    def _log(self, line):
        with open(self.path, "a") as f:
            f.write(line + "\\n")

    def start(self, job):
        self._log(f"start {job.name} {sorted(self.options.items())}")

    def update(self, snapshot):
        self._log(f"update {snapshot.status}")

    def finish(self, result):
        self._log(f"finish {result.status} {result.duration_s > 0}")


def make(path, **options):
    return Recorder(path, **options)


def not_a_sink():
    return object()


class Failing(Recorder):
    def start(self, job):
        raise RuntimeError("cannot reach the dashboard")


def failing():
    return Failing("unused")


def refuse(level, ours=None):
    if ours:
        from greenai.errors import ConfigError
        raise ConfigError("our own ConfigError, as raised")
    raise ValueError(f"level must be low or high, got {level!r}")
"""

ENTRY_POINTS = """\
[greenai.sinks]
recorder = greenai_test_recorder:make
needy = greenai_test_recorder:make [needy]
broken = greenai_test_recorder_gone:make
odd = greenai_test_recorder:not_a_sink
refusing = greenai_test_recorder:refuse
failing = greenai_test_recorder:failing
"""

# The command waits (polling, with a deadline) until the sink has seen an update.
WAIT_FOR_UPDATE = """\
import pathlib, sys, time
events = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if events.exists() and "update" in events.read_text():
        break
    time.sleep(0.02)
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution that registers test sinks; returns its folder."""
    site = tmp_path / "site"
    info = site / "greenai_test_recorder-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: greenai-test-recorder\nVersion: 1.0\n"
        "Provides-Extra: needy\n"
        'Requires-Dist: greenai-no-such-package-xyz>=1; extra == "needy"\n'
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "greenai_test_recorder.py").write_text(textwrap.dedent(SINK_MODULE))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "greenai_test_recorder", raising=False)
    return site


def test_a_registered_sink_is_reached_by_greenai_run(
    plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.txt"
    code = main(
        [
            "run",
            "--store",
            str(tmp_path / "runs.db"),
            "--checkpoint",
            "0.1",
            "--name",
            "job",
            "--sink",
            f"recorder:{events},colour=green",
            "--",
            sys.executable,
            "-c",
            WAIT_FOR_UPDATE,
            str(events),
        ]
    )
    assert code == 0, capsys.readouterr().err
    lines = events.read_text().splitlines()
    assert lines[0] == "start job [('colour', 'green')]"
    assert "update running" in lines[1:-1]
    assert lines[-1] == "finish completed True"


def test_an_unknown_sink_is_one_line_listing_the_known_ones(
    plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--store", str(tmp_path / "r.db"), "--sink", "nope", "--", "true"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no sink named 'nope'" in err[0]
    for name in ("recorder", "otlp", "prometheus", "mlflow", "wandb", "tensorboard"):
        assert name in err[0]
    assert not (tmp_path / "r.db").exists()  # refused before anything was stored


def test_a_stale_install_without_greenais_own_sinks_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("greenai.sink_registry.registered_sinks", dict)
    with pytest.raises(ConfigError, match=r"known sinks: none .*reinstall"):
        make_sink("otlp:http://localhost:4318")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("needy:x", "pip install 'greenai-test-recorder[needy]'"),
        ("broken", "sink 'broken' cannot be loaded"),
        ("odd", "made object, which lacks start(job)"),
        ("recorder", "--sink recorder takes recorder:PATH,key=value..."),
        ("recorder:a,b", "--sink recorder takes"),
        ("recorder:a,k=1,k=2", "k= is given twice"),
        (":x", "--sink takes NAME[:ARG]"),
        ("recorder:,k=1", "--sink recorder: an empty argument"),
        ("recorder:a,,k=1", "--sink recorder: an empty argument"),
        ("refusing:mid", "--sink refusing: level must be low or high, got 'mid'"),
        ("refusing:x,ours=1", "error: our own ConfigError, as raised"),
    ],
)
def test_a_sink_that_cannot_be_made_is_one_line_and_exit_2(
    plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, expected: str
) -> None:
    argv = ["run", "--store", str(tmp_path / "r.db"), "--sink", spec, "--", "true"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert expected in err[0]


def test_greenais_own_sinks_are_registered_with_their_extras() -> None:
    sinks = registered_sinks()
    assert {"mlflow", "otlp", "prometheus", "tensorboard", "wandb"} <= set(sinks)
    extras = set(md.metadata("greenai").get_all("Provides-Extra") or [])
    for name in ("mlflow", "otlp", "prometheus", "tensorboard", "wandb"):
        ep = sinks[name]
        assert ep.group == GROUP and ep.dist is not None
        assert ep.dist.metadata["Name"] == "greenai"
        assert ep.extras and set(ep.extras) <= extras, (name, ep.extras)
        sink = make_sink("otlp:http://127.0.0.1:4318" if name == "otlp" else name)
        assert isinstance(sink, Sink)


def test_greenais_sinks_take_their_options_as_text() -> None:
    otlp = make_sink("otlp:http://collector:4318,timeout_s=2,export_interval_s=30")
    assert (otlp.url, otlp.timeout_s, otlp.export_interval_s) == (  # type: ignore[attr-defined]
        "http://collector:4318/v1/metrics",
        2.0,
        30.0,
    )
    prom = make_sink("prometheus:0,addr=::1")
    assert (prom.port, prom.addr) == (0, "::1")  # type: ignore[attr-defined]
    mlflow = make_sink("mlflow:energy,tracking_uri=file:./mlruns,report=false")
    assert (mlflow.experiment, mlflow.tracking_uri, mlflow.report) == (  # type: ignore[attr-defined]
        "energy",
        "file:./mlruns",
        False,
    )
    wandb = make_sink("wandb:project=energy,mode=offline")
    assert wandb.init_kwargs == {"project": "energy", "mode": "offline"}  # type: ignore[attr-defined]
    for bad in ("otlp:http://h:4318,timeout_s=0", "prometheus:http", "mlflow:report=maybe"):
        with pytest.raises(ConfigError):
            make_sink(bad)


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("otlp:http://h:4318,2", "otlp:ENDPOINT,timeout_s=,export_interval_s="),
        ("prometheus:9400,127.0.0.1", "prometheus:[PORT],addr="),
        ("mlflow:a,b", "mlflow:[EXPERIMENT],run_id=,tracking_uri=,report="),
    ],
)
def test_a_second_positional_argument_is_refused_with_the_usage(spec: str, usage: str) -> None:
    # not taken for a timeout or an address: only the first argument goes by position
    with pytest.raises(ConfigError, match="too many positional") as caught:
        make_sink(spec)
    assert f"takes {usage}:" in str(caught.value)


def test_a_spec_splits_keywords_from_positional_text() -> None:
    spec = parse_sink_spec("otlp:http://h:4318/v1/metrics?a=b,timeout_s=2")
    assert spec.name == "otlp"
    assert spec.args == ("http://h:4318/v1/metrics?a=b",)
    assert spec.options == {"timeout_s": "2"}
    assert parse_sink_spec("tensorboard") == ("tensorboard", (), {})


@pytest.mark.parametrize(
    "argv",
    [
        ["--sink", "recorder:{events},b=1,a=2", "--sink", "recorder:{events},a=2,b=1"],
        ["--otlp", "http://127.0.0.1:9", "--sink", "otlp:http://127.0.0.1:9"],
    ],
)
def test_the_same_sink_twice_is_one_line_and_exit_2(
    plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [arg.format(events=tmp_path / "events.txt") for arg in argv]
    assert main(["run", "--store", str(tmp_path / "r.db"), *argv, "--", "true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is given twice" in err[0], err
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "events.txt").exists()


def test_a_sink_failing_in_the_command_line_warns_in_one_line(plugin: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-m", "greenai", "run", "--store", str(tmp_path / "r.db"),
         "--sink", "failing", "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "cannot reach the dashboard" in line]
    # said once, when it happened: not again as the warning at stop, nor as a summary note
    assert len(warned) == 1, proc.stderr
    assert warned[0].startswith("greenai: warning: Failing.start() failed")
    assert ".py:" not in proc.stderr  # no library file and line, no source line
    assert proc.stderr.index(warned[0]) < proc.stderr.index("completed in")
    from greenai.store import RunStore

    with RunStore(tmp_path / "r.db", read_only=True) as store:  # the record keeps it
        notes = store.get("latest").measurement.notes
    assert any("cannot reach the dashboard" in n for n in notes)
