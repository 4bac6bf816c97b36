"""MLflow as platform teams run it: MLflow 3's default SQLite store and a real tracking server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenai
from greenai.errors import MeasurementWarning
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from greenai.integrations.mlflow import MLflowSink  # noqa: E402


def _job(clock: FakeClock, sink: MLflowSink, **options: object) -> greenai.Tracker:
    gpu = FakeGPU(power_w=200.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    return greenai.track("train", devices=[gpu], clock=clock, checkpoint_s=1.0, sinks=[sink],
                         **options)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``mlflow server`` on a free port, with a SQLite backend in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (folder / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{folder / 'server.db'}",
                "--default-artifact-root",
                (folder / "artifacts").as_uri(),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts it slowly
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (folder / "server.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"mlflow server did not start:\n{text}")
            time.sleep(0.2)  # polling a process that is starting, not waiting for a thread

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(20)
        self.log.close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # What a platform team sets so a dead server costs seconds, not minutes of retries.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    s = Server(tmp_path)
    yield s
    s.stop()


def test_default_store_is_sqlite_mlflow_db_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(None)  # MLflow's own default
    try:
        clock = FakeClock()
        sink = MLflowSink(experiment="energy", report=False)
        with _job(clock, sink) as job:
            clock.advance(2.5)
        assert not [n for n in job.result.notes if "MLflowSink" in n], job.result.notes
        assert (tmp_path / "mlflow.db").exists()  # MLflow 3's default: sqlite:///mlflow.db
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        run = client.get_run(sink.run_id)
        assert run.data.metrics["greenai/energy_kwh"] == pytest.approx(job.result.energy_kwh)
        assert run.info.status == "FINISHED"
    finally:
        mlflow.set_tracking_uri(None)


def test_file_store_opens_without_the_opt_in_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    clock = FakeClock()
    sink = MLflowSink(tracking_uri=uri, report=False)
    with _job(clock, sink) as job:
        clock.advance(2.5)
    assert not [n for n in job.result.notes if "MLflowSink" in n], job.result.notes
    run = MlflowClient(tracking_uri=uri).get_run(sink.run_id)
    assert run.data.metrics["greenai/energy_kwh"] == pytest.approx(job.result.energy_kwh)


def test_a_real_tracking_server_gets_live_and_final_figures(server: Server) -> None:
    clock = FakeClock()
    sink = MLflowSink(tracking_uri=server.url, experiment="cluster")
    with _job(clock, sink) as job:
        for _ in range(3):
            clock.advance(1.0)
            job.step(samples=4)
    result = job.result
    assert not [n for n in result.notes if "MLflowSink" in n], result.notes
    client = MlflowClient(tracking_uri=server.url)
    run = client.get_run(sink.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["greenai/energy_kwh"] == pytest.approx(result.energy_kwh)
    assert run.data.tags["greenai/method"] == "counter"
    files = {f.path for f in client.list_artifacts(sink.run_id, "greenai")}
    assert files == {"greenai/measurement.json", "greenai/report.html"}


def test_server_going_away_mid_run_keeps_the_job_and_its_stored_run(
    server: Server, tmp_path: Path
) -> None:
    clock = FakeClock()
    sink = MLflowSink(tracking_uri=server.url, report=False)
    store = tmp_path / "runs.db"
    client = MlflowClient(tracking_uri=server.url)
    job = _job(clock, sink, store=store)
    with pytest.warns(MeasurementWarning, match="MLflowSink"), job:
        clock.advance(2.0)  # a live update reaches the server
        deadline = time.monotonic() + 60
        # start() runs on the sink's own worker: the run id appears once it has
        while sink.run_id is None or (
            "greenai/energy_kwh" not in client.get_run(sink.run_id).data.metrics
        ):
            assert time.monotonic() < deadline, "no live metric reached the server"
            clock.advance(1.0)
        server.stop()
        clock.advance(3.0)
    result = job.result
    assert result.status == "completed" and result.energy_j and result.energy_j > 0
    assert any(n.startswith("MLflowSink.") for n in result.notes), result.notes
    with RunStore(store) as runs:
        stored = runs.get("latest")
    assert stored.status == "completed"
    assert stored.measurement is not None
    assert stored.measurement.energy_j == pytest.approx(result.energy_j)
