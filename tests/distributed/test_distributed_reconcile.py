from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import greenai
from greenai.cli import main
from greenai.distributed.reconcile import (
    MetricsEndpointError,
    prometheus_energy,
    reconcile_run,
    sacct_energy,
)
from greenai.errors import ConfigError
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU


def sacct_answers(stdout: str, code: int = 0, config: str = "AcctGatherNodeFreq = 10 sec\n"):
    """A stand-in for running sacct/scontrol: the commands seen, and SLURM's text answers."""
    seen: list[list[str]] = []

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        if argv[0] == "scontrol":
            return subprocess.CompletedProcess(argv, 0, config, "")
        return subprocess.CompletedProcess(argv, code, stdout, "" if code == 0 else "boom\n")

    return run, seen


@pytest.fixture
def sacct_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable named sacct on PATH (its output is what the test's runner answers)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def test_sacct_figure_of_a_step_with_its_sampling_uncertainty(sacct_on_path: Path) -> None:
    run, seen = sacct_answers("42|9000|60\n42.batch|100|60\n42.0|6000|50\n")
    figure, notes = sacct_energy("42", "0", run=run)
    assert seen[0][:3] == ["sacct", "-j", "42.0"]
    assert figure is not None and figure.energy_j == 6000.0
    assert figure.uncertainty_j == pytest.approx(2 * 10 * 6000 / 50)  # two 10 s intervals
    assert notes == []


def test_sacct_whole_job_and_unknown_interval_is_said(sacct_on_path: Path) -> None:
    run, _ = sacct_answers("42|9000|60\n", config="ClusterName = x\n")
    figure, notes = sacct_energy("42", run=run)
    assert figure is not None and figure.energy_j == 9000.0
    assert figure.uncertainty_j == pytest.approx(2 * 30 * 9000 / 60)
    assert notes and "interval is unknown" in notes[0]


@pytest.mark.parametrize(
    ("stdout", "code", "said"),
    [
        ("", 0, "no energy for 42"),
        ("42||60\n", 0, "no energy for 42"),
        ("42|0|60\n", 0, "records 0 J"),
        ("42|n/a|60\n", 0, "'n/a'"),
        ("", 1, "exited 1 (boom)"),
    ],
)
def test_sacct_without_a_figure_is_a_note(
    sacct_on_path: Path, stdout: str, code: int, said: str
) -> None:
    run, _ = sacct_answers(stdout, code)
    figure, notes = sacct_energy("42", run=run)
    assert figure is None and len(notes) == 1 and said in notes[0]


def test_sacct_missing_is_a_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    figure, notes = sacct_energy("42")
    assert figure is None and "not on PATH" in notes[0]


def _stored_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Path:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clock = FakeClock()
    gpu = FakeGPU(power_w=100.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    store = tmp_path / "runs.db"
    with greenai.track("job", devices=[gpu], clock=clock, store=store):
        clock.advance(60.0)
    return store


def test_reconcile_reports_the_gap_with_both_figures_uncertainty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sacct_on_path: Path
) -> None:
    store = _stored_run(tmp_path, monkeypatch, SLURM_JOB_ID="42", SLURM_STEP_ID="0")
    with RunStore(store) as runs:
        run = runs.get("latest")
    sacct, _ = sacct_answers("42.0|6300|60\n")
    result = reconcile_run(run, run_command=sacct)
    m = run.measurement
    assert result.cluster is not None and result.cluster.source == "slurm"
    assert result.gap_j == pytest.approx(6300 - m.energy_j)
    expected_u = (m.uncertainty_j**2 + result.cluster.uncertainty_j**2) ** 0.5
    assert result.gap_uncertainty_j == pytest.approx(expected_u)
    assert result.within_uncertainty is (abs(result.gap_j) <= expected_u)
    text = "\n".join(result.lines())
    assert "slurm: 6300 J ±" in text and "gap (slurm − greenai): +" in text
    assert json.loads(json.dumps(result.to_dict()))["cluster"]["energy_j"] == 6300


def test_reconcile_cli_with_sacct_accounting_disabled_is_a_note(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = _stored_run(tmp_path, monkeypatch, SLURM_JOB_ID="42")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = "#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n"
    (bin_dir / "sacct").write_text(script)
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert main(["reconcile", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "greenai: 6" in out and "note: no SLURM figure: sacct exited 1" in out
    assert "accounting storage is disabled" in out


def test_reconcile_a_run_without_slurm_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("SLURM_JOB_ID", "SLURM_JOBID"):
        monkeypatch.delenv(key, raising=False)
    store = _stored_run(tmp_path, monkeypatch)
    assert main(["reconcile", "--store", str(store), "--source", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recorded no SLURM job" in err


class Prometheus:
    """An HTTP server answering /api/v1/query with a given body (and keeping the queries)."""

    def __init__(self, body: bytes) -> None:
        self.queries: list[dict[str, list[str]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.queries.append(parse_qs(urlsplit(self.path).query))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus() -> Iterator[Any]:
    servers: list[Prometheus] = []

    def make(body: bytes) -> Prometheus:
        servers.append(Prometheus(body))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def vector(*values: str) -> bytes:
    result = [{"metric": {"gpu": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def test_dcgm_figure_for_the_runs_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: Any
) -> None:
    store = _stored_run(
        tmp_path, monkeypatch, KUBERNETES_SERVICE_HOST="10.0.0.1", POD_NAME="p-0",
        POD_NAMESPACE="ml",
    )  # fmt: skip
    prom = prometheus(vector("3000000", "3100000"))  # mJ, two GPUs
    with RunStore(store) as runs:
        run = runs.get("latest")
    result = reconcile_run(run, prometheus=prom.url, interval_s=15)
    [query] = prom.queries
    assert 'pod="p-0",namespace="ml"' in query["query"][0] and "[60s]" in query["query"][0]
    assert result.cluster is not None and result.cluster.energy_j == pytest.approx(6100.0)
    assert result.cluster.uncertainty_j == pytest.approx(2 * 15 * 6100 / 60)
    assert any("GPUs only" in n for n in result.notes)


def test_kepler_figure_in_joules(prometheus: Any) -> None:
    prom = prometheus(vector("512.5"))
    figure = prometheus_energy(
        prom.url, "kepler", pod="p", namespace="n", end_unix_s=1e9, duration_s=10
    )
    assert figure.energy_j == 512.5
    assert "kepler_container_joules_total" in prom.queries[0]["query"][0]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<html>hello</html>", "not JSON"),
        (b"# HELP DCGM_FI_DEV_POWER_USAGE\nDCGM_FI_DEV_POWER_USAGE 1\n", "not JSON"),
        (json.dumps({"status": "error", "error": "parse error"}).encode(), "parse error"),
        (json.dumps({"status": "success", "data": {"result": []}}).encode(), "no series"),
        (vector("NaN"), "not a finite"),
        (json.dumps({"status": "success", "data": {"result": [{"x": 1}]}}).encode(), "numeric"),
    ],
)
def test_a_metrics_endpoint_answering_garbage_is_a_clear_error(
    prometheus: Any, body: bytes, said: str
) -> None:
    prom = prometheus(body)
    with pytest.raises(MetricsEndpointError, match=said):
        prometheus_energy(prom.url, "dcgm", pod="p", namespace="n", end_unix_s=1e9, duration_s=1)


def test_garbage_from_the_cli_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: Any, capsys: Any
) -> None:
    store = _stored_run(tmp_path, monkeypatch, POD_NAME="p", POD_NAMESPACE="n")
    prom = prometheus(b"garbage")
    code = main(["reconcile", "--store", str(store), "--source", "dcgm", "--prometheus", prom.url])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not answer a Prometheus query" in err


def test_bad_sources_and_urls_are_config_errors(prometheus: Any) -> None:
    with pytest.raises(ConfigError):
        prometheus_energy("ftp://x", "dcgm", pod="p", namespace="n", end_unix_s=0, duration_s=1)
    with pytest.raises(ConfigError):
        prometheus_energy("http://x", "nope", pod="p", namespace="n", end_unix_s=0, duration_s=1)


def test_reconcile_json_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: Any, capsys: Any
) -> None:
    store = _stored_run(tmp_path, monkeypatch, POD_NAME="p", POD_NAMESPACE="n")
    prom = prometheus(vector("900"))
    argv = ["reconcile", "--store", str(store), "--source", "kepler", "--prometheus", prom.url]
    assert main([*argv, "--interval", "15", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cluster"]["source"] == "kepler" and data["cluster"]["energy_j"] == 900.0
    assert data["gap_j"] == pytest.approx(900.0 - data["energy_j"])
    assert isinstance(data["within_uncertainty"], bool)
