from __future__ import annotations

import json
from pathlib import Path

import pytest

import greenai
from greenai.testing import FakeClock, FakeGPU


@pytest.fixture
def file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A local MLflow file store (MLflow 3 asks for an opt-in to use one)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def _job(clock: FakeClock, sinks: list[object]) -> greenai.Tracker:
    gpu = FakeGPU(power_w=200.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    return greenai.track(
        "train", devices=[gpu], clock=clock, checkpoint_s=1.0, sinks=sinks,
        carbon_intensity_g_per_kwh=100.0,
    )  # fmt: skip


def _run(job: greenai.Tracker, clock: FakeClock, steps: int = 4) -> greenai.Measurement:
    with job:
        for _ in range(steps):
            clock.advance(1.0)
            job.step(samples=8)
            job.settle()
            job.snapshot()
        clock.advance(1.5)  # the live thread gives the sinks at least one snapshot
    return job.result


def test_mlflow_sink_writes_live_and_final_metrics_tags_and_report(
    tmp_path: Path, file_store: str
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from greenai.integrations.mlflow import MLflowSink

    uri = file_store
    clock = FakeClock()
    sink = MLflowSink(tracking_uri=uri, experiment="energy")
    result = _run(_job(clock, [sink]), clock)
    assert not [n for n in result.notes if "MLflowSink" in n]
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(sink.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["greenai/energy_kwh"] == pytest.approx(result.energy_kwh)
    assert run.data.metrics["greenai/co2e_kg"] == pytest.approx(result.co2e_kg)
    assert run.data.tags["greenai/method"] == "counter"
    assert run.data.tags["greenai/device_method/gpu0"] == "counter"
    history = client.get_metric_history(sink.run_id, "greenai/energy_kwh")
    assert len(history) >= 2  # at least one live snapshot before the final figure
    values = [h.value for h in sorted(history, key=lambda h: h.timestamp)]
    assert values == sorted(values)  # energy never goes down
    files = {f.path for f in client.list_artifacts(sink.run_id, "greenai")}
    assert files == {"greenai/measurement.json", "greenai/report.html"}
    local = client.download_artifacts(sink.run_id, "greenai/measurement.json", str(tmp_path))
    record = json.loads(Path(local).read_text())
    assert greenai.Measurement.from_dict(record).energy_j == pytest.approx(result.energy_j)


def test_mlflow_sink_uses_the_active_run_and_leaves_it_open(file_store: str) -> None:
    mlflow = pytest.importorskip("mlflow")
    from greenai.integrations.mlflow import MLflowSink

    mlflow.set_tracking_uri(file_store)
    clock = FakeClock()
    with mlflow.start_run() as active:
        sink = MLflowSink(report=False)
        _run(_job(clock, [sink]), clock, steps=2)
        assert sink.run_id == active.info.run_id
        assert mlflow.active_run() is not None
    run = mlflow.get_run(active.info.run_id)
    assert "greenai/energy_kwh" in run.data.metrics


def test_tensorboard_sink_event_files_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from greenai.integrations.tensorboard import TensorBoardSink

    clock = FakeClock()
    result = _run(_job(clock, [TensorBoardSink(str(tmp_path))]), clock)
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    energy = events.Scalars("greenai/energy_kwh")
    assert len(energy) >= 2
    assert energy[-1].value == pytest.approx(result.energy_kwh, rel=1e-6)
    assert energy[-1].step == result.steps.count
    assert events.Scalars("greenai/energy_j_per_sample")[-1].value == pytest.approx(
        result.steps.energy_per_sample_j, rel=1e-6
    )
    [text] = events.Tensors("greenai/method/text_summary")
    assert b"greenai/method: counter" in text.tensor_proto.string_val[0]


def test_wandb_sink_on_the_users_offline_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    from greenai.integrations.wandb import WandbSink

    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(mode="offline", dir=str(tmp_path), project="greenai-test")
    try:
        clock = FakeClock()
        sink = WandbSink()  # finds wandb.run
        result = _run(_job(clock, [sink]), clock)
        assert not [n for n in result.notes if "WandbSink" in n]
        assert sink.run is run
        assert run.summary["greenai/energy_kwh"] == pytest.approx(result.energy_kwh)
        assert run.summary["greenai/steps"] == 4
        assert run.config["greenai/method"] == "counter"
        assert wandb.run is run  # the user's run stays open
    finally:
        run.finish()


def test_wandb_sink_opens_and_finishes_an_offline_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    from greenai.integrations.wandb import WandbSink

    monkeypatch.setenv("WANDB_SILENT", "true")
    clock = FakeClock()
    sink = WandbSink(mode="offline", dir=str(tmp_path), project="greenai-test")
    result = _run(_job(clock, [sink]), clock)
    assert not [n for n in result.notes if "WandbSink" in n]
    assert wandb.run is None  # the run it opened is finished
    # wandb's service writes the record log behind run.finish() (1 in 6 reads right
    # after it saw only the header); teardown waits for the service to flush it
    wandb.teardown()
    # the offline run's record log, which `wandb sync` uploads, holds the figures,
    # the method and the report artifact
    [log] = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    data = log.read_bytes()
    for needle in (b"greenai/energy_kwh", b"greenai/method", b"greenai-report", b"report.html"):
        assert needle in data
