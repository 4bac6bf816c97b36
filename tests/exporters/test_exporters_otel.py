from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.metric_exporter")
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

import greenai
from greenai.cli import main
from greenai.errors import ConfigError, MeasurementWarning
from greenai.exporters.otel import OTelSink, hw_type, metrics_url
from greenai.testing import FakeClock, FakeGPU


class Receiver:
    """An OTLP/HTTP metrics receiver: decodes each request's protobuf into plain points."""

    def __init__(self, *, status: int = 200, hold: threading.Event | None = None) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        self.got = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hold is not None:
                    hold.wait(30)  # a collector that does not answer in time
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                with receiver.got:
                    receiver.requests.append(request)
                    receiver.paths.append(self.path)
                    receiver.got.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self.got:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"the receiver got {len(self.requests)} requests, wanted {count}"
                self.got.wait(left)

    def points(self, name: str, index: int = -1) -> list[tuple[dict[str, Any], float]]:
        """(attributes, value) of every point of metric ``name`` in request ``index``."""
        out = []
        for rm in self.requests[index].resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    data = metric.sum if metric.HasField("sum") else metric.gauge
                    for p in data.data_points:
                        attrs = {a.key: _value(a.value) for a in p.attributes}
                        out.append((attrs, p.as_double if p.HasField("as_double") else p.as_int))
        return out

    def metric(self, name: str, index: int = -1) -> Any:
        for rm in self.requests[index].resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        return metric
        raise AssertionError(f"no metric {name}")

    def resource(self, index: int = -1) -> dict[str, Any]:
        rm = self.requests[index].resource_metrics[0]
        return {a.key: _value(a.value) for a in rm.resource.attributes}


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_final_energy_and_power_per_device_in_the_semantic_conventions(
    receiver: Receiver,
) -> None:
    clock = FakeClock()
    gpu = FakeGPU(power_w=300.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    sink = OTelSink(receiver.url, export_interval_s=600)  # only the export at the end
    with greenai.track("train", devices=[gpu], clock=clock, sinks=[sink]) as job:
        clock.advance(4.0)
        job.step()
    result = job.result
    assert not [n for n in result.notes if "OTel" in n], result.notes
    receiver.wait_for(1)
    assert receiver.paths == ["/v1/metrics"]
    [(attrs, joules)] = receiver.points("hw.energy")
    assert attrs == {
        "hw.id": "gpu0", "hw.type": "gpu", "hw.name": "gpu0", "greenai.method": "counter",
        "greenai.scope": "machine", "greenai.job.name": "train",
    }  # fmt: skip
    assert joules == pytest.approx(result.devices[0].energy_j)
    assert joules == pytest.approx(300.0 * 4.0, rel=0.02)
    energy = receiver.metric("hw.energy")
    assert energy.unit == "J" and energy.sum.is_monotonic
    power = receiver.metric("hw.power")
    assert power.unit == "W" and power.HasField("gauge")
    [(_, watts)] = receiver.points("hw.power")
    assert watts == pytest.approx(300.0, rel=0.02)
    [(_, plus_minus)] = receiver.points("greenai.energy.uncertainty")
    assert plus_minus == pytest.approx(result.devices[0].uncertainty_j)
    resource = receiver.resource()
    assert resource["service.name"] == "greenai" and resource["host.name"] == socket.gethostname()


def test_live_exports_while_the_job_runs(receiver: Receiver) -> None:
    clock = FakeClock()
    gpu = FakeGPU(power_w=200.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    sink = OTelSink(receiver.url, export_interval_s=0.05)
    job = greenai.track("live", devices=[gpu], clock=clock, sinks=[sink], checkpoint_s=1.0)
    with job:
        clock.advance(3.0)  # the live thread hands the sink a snapshot
        deadline = time.monotonic() + 20
        while not any(receiver.points("hw.energy", i) for i in range(len(receiver.requests))):
            assert time.monotonic() < deadline, "no live export with energy"
            with receiver.got:
                receiver.got.wait(0.5)
        live = next(
            p for i in range(len(receiver.requests)) if (p := receiver.points("hw.energy", i))
        )
        assert 0 < live[0][1] <= 200.0 * 3.0 * 1.02
    assert receiver.points("hw.energy")[0][1] >= live[0][1]  # a counter never goes down


def test_each_device_kind_has_its_hw_type(receiver: Receiver) -> None:
    assert [hw_type(k) for k in ("gpu", "cpu", "dram", "other")] == [
        "gpu", "cpu", "memory", "other"
    ]  # fmt: skip
    clock = FakeClock()
    devices = [
        FakeGPU(name="gpu0", power_w=100.0, clock=clock),
        FakeGPU(name="gpu1", power_w=50.0, clock=clock),
    ]
    sink = OTelSink(receiver.url, export_interval_s=600)
    with greenai.track("two", devices=devices, clock=clock, sinks=[sink]):
        clock.advance(2.0)
    receiver.wait_for(1)
    ids = sorted(a["hw.id"] for a, _ in receiver.points("hw.energy"))
    assert ids == ["gpu0", "gpu1"]


def test_energy_lands_on_the_active_span(receiver: Receiver) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    clock = FakeClock()
    gpu = FakeGPU(power_w=250.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    with tracer.start_as_current_span("epoch"):
        sink = OTelSink(receiver.url, export_interval_s=600)
        with greenai.track("spanned", devices=[gpu], clock=clock, sinks=[sink]) as job:
            clock.advance(2.0)
    [span] = spans.get_finished_spans()
    assert span.attributes["greenai.energy_j"] == pytest.approx(job.result.energy_j)
    assert span.attributes["greenai.energy.uncertainty_j"] == pytest.approx(
        job.result.uncertainty_j
    )
    assert span.attributes["greenai.energy.method"] == "counter"
    assert span.attributes["greenai.job.name"] == "spanned"


def test_a_job_started_outside_a_span_marks_no_span(receiver: Receiver) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    clock = FakeClock()
    sink = OTelSink(receiver.url, export_interval_s=600)
    with greenai.track("plain", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[sink]):
        with tracer.start_as_current_span("inside"):  # current only after the job started
            clock.advance(1.0)
        clock.advance(1.0)
    [span] = spans.get_finished_spans()
    assert span.name == "inside"
    assert not any(key.startswith("greenai.") for key in span.attributes or {})


def test_unreachable_collector_is_a_note_and_the_job_runs_on() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    sink = OTelSink(f"http://127.0.0.1:{port}", timeout_s=0.5, export_interval_s=600)
    started = time.monotonic()
    job = greenai.track("offline", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[sink])
    with pytest.warns(MeasurementWarning, match="OTelSink"), job:
        clock.advance(2.0)
    assert time.monotonic() - started < 10
    assert job.result.energy_j is not None and job.result.energy_j > 0
    [note] = [n for n in job.result.notes if "OTelSink" in n]
    assert "1 of 1 exports" in note and f":{port}/v1/metrics" in note


def test_slow_collector_is_bounded_and_noted() -> None:
    hold = threading.Event()
    slow = Receiver(hold=hold)
    slow.thread.start()
    try:
        clock = FakeClock()
        sink = OTelSink(slow.url, timeout_s=0.5, export_interval_s=600)
        started = time.monotonic()
        j = greenai.track("slow", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[sink])
        with pytest.warns(MeasurementWarning, match="OTelSink"), j:
            clock.advance(2.0)
        assert time.monotonic() - started < 10  # 2 × timeout_s, plus the job's own stop
        assert any("OTelSink" in n and "failed" in n for n in j.result.notes)
    finally:
        hold.set()
        slow.server.shutdown()
        slow.server.server_close()


def test_a_collector_that_refuses_is_noted() -> None:
    refusing = Receiver(status=400)
    refusing.thread.start()
    try:
        clock = FakeClock()
        sink = OTelSink(refusing.url, export_interval_s=600)
        j = greenai.track("no", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[sink])
        with pytest.warns(MeasurementWarning, match="OTelSink"), j:
            clock.advance(1.0)
        assert any("OTelSink" in n for n in j.result.notes)
    finally:
        refusing.server.shutdown()
        refusing.server.server_close()


@pytest.mark.parametrize(
    "endpoint",
    ["", "localhost:4318", "ftp://host:4318", "http://", "http://host:99999", "http://[::1"],
)
def test_malformed_endpoint_is_refused_up_front(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="OTLP"):
        OTelSink(endpoint)


def test_endpoint_paths() -> None:
    assert metrics_url("http://c:4318") == "http://c:4318/v1/metrics"
    assert metrics_url("http://c:4318/") == "http://c:4318/v1/metrics"
    assert metrics_url("https://c/otlp/v1/metrics") == "https://c/otlp/v1/metrics"


def test_cli_otlp_sends_the_command_energy(
    receiver: Receiver, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--store", str(tmp_path / "runs.db"), "--otlp", receiver.url, "--", "true"])
    assert code == 0
    receiver.wait_for(1)
    energy = receiver.points("hw.energy")
    assert energy and all(a["greenai.job.name"] == "true" for a, _ in energy)
    assert "OTelSink" not in capsys.readouterr().err


def test_cli_malformed_otlp_is_one_line_and_exit_2(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--store", str(tmp_path / "r.db"), "--otlp", "nota url", "--", "true"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "OTLP" in err
    assert not (tmp_path / "r.db").exists()  # refused before anything ran


def test_the_resource_carries_the_runs_cluster_identity(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_STEP_ID", "1")
    monkeypatch.setenv("POD_NAME", "trainer-0")
    monkeypatch.setenv("POD_NAMESPACE", "ml")
    clock = FakeClock()
    sink = OTelSink(receiver.url, export_interval_s=600, resource={"deployment.environment": "ci"})
    with greenai.track("ids", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[sink]):
        clock.advance(1.0)
    receiver.wait_for(1)
    resource = receiver.resource()
    assert resource["slurm.job.id"] == "4242" and resource["slurm.step.id"] == "1"
    assert resource["k8s.pod.name"] == "trainer-0" and resource["k8s.namespace.name"] == "ml"
    assert resource["deployment.environment"] == "ci"


def test_missing_extra_fails_up_front_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    with pytest.raises(ConfigError, match=r"greenai\[otel\]"):
        OTelSink("http://localhost:4318")


def test_the_runs_tags_are_point_attributes(receiver: Receiver) -> None:
    clock = FakeClock()
    sink = OTelSink(receiver.url, export_interval_s=600)
    tags = {"team": "nlp", "project": "llm"}
    with greenai.track("t", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[sink], tags=tags):
        clock.advance(1.0)
    receiver.wait_for(1)
    [(attrs, _)] = receiver.points("hw.energy")
    assert attrs["greenai.tag.team"] == "nlp" and attrs["greenai.tag.project"] == "llm"
