from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from greenai.cli import main
from tests.signals import signal_when


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve-proxy", "--upstream", "ftp://x"], "must be an http(s) URL"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--port", "70000"], "port"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--period", "0"], "--period"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--otlp", "localhost:4318"], "OTLP"),
        (["bench", "serve", "--upstream", "http://127.0.0.1:9", "--concurrency", "0"], "levels"),
        (["bench", "serve", "--upstream", "http://127.0.0.1:9", "--rate", "x"], "levels"),
        (["bench", "serve", "--upstream", "http://127.0.0.1:9", "--prompts", "0"], "--prompts"),
        (["bench", "serve", "--upstream", "http://127.0.0.1:9", "--prompts", "-3"], "--prompts"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--max-body-mb", "-1"], "of MB: '-1'"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--request-timeout", "0"], "seconds"),
        (["serve-proxy", "--upstream", "http://127.0.0.1:9", "--startup-timeout", "-1"], "seconds"),
        (
            ["bench", "serve", "--upstream", "http://127.0.0.1:9", "--startup-timeout", "nan"],
            "seconds",
        ),
        (
            ["serve-proxy", "--upstream", "http://127.0.0.1:9", "--", "/nonexistent/server"],
            "cannot start",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bench_serve_refuses_a_missing_prompt_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "serve", "--upstream", "http://127.0.0.1:9"]
    assert main([*argv, "--prompt-file", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read prompts" in capsys.readouterr().err


def test_bench_serve_refuses_an_unwritable_output_before_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "serve", "--upstream", "http://127.0.0.1:9"]
    for flag in ("--json", "--html"):
        assert main([*argv, flag, str(tmp_path / "no" / "out")]) == 2
        err = capsys.readouterr().err
        assert f"{flag} " in err and "does not exist" in err and err.count("\n") == 1


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the proxy's readiness probe: /v1/models
        body = b'{"object": "list", "data": []}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, name="test-upstream", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Proxy(subprocess.Popen[str]):
    url = ""


def _proxy_until_serving(upstream: str, *options: str) -> _Proxy:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["serve-proxy", "--upstream", upstream, "--port", str(port), *options]
    proc = _Proxy(
        [sys.executable, "-m", "greenai", *argv],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    proc.url = f"http://127.0.0.1:{port}"
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    line = proc.stderr.readline()
    while "greenai serve-proxy: http://" not in line:
        assert proc.poll() is None and time.monotonic() < deadline, line
        line = proc.stderr.readline()
    return proc


@pytest.mark.parametrize("signums", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT] * 2])
def test_serve_proxy_follows_the_signal_policy(upstream: str, signums: list[int]) -> None:
    proc = _proxy_until_serving(upstream)
    err = signal_when(proc, None, signums, gap_s=0.005, timeout_s=60)
    assert "Traceback" not in err, err
    assert proc.returncode == 128 + signums[0], (proc.returncode, err)


def test_serve_proxy_sends_a_span_per_request_to_an_otlp_collector() -> None:
    """`--otlp`: each request a span with its energy, the last ones sent at shutdown."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    pytest.importorskip("aiohttp")
    from fake_upstream import spawn
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    got: list[tuple[str, ExportTraceServiceRequest]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = ExportTraceServiceRequest()
            request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.path, request))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    up, url = spawn()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        proc = _proxy_until_serving(url, "--otlp", endpoint)
        body = json.dumps({"model": "m", "prompt": "hello", "max_tokens": 4}).encode()
        req = urllib.request.Request(
            proc.url + "/v1/completions", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            rid = r.headers["x-greenai-request-id"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        up.kill()
        up.wait()
        collector.shutdown()
        collector.server_close()
    assert got and {path for path, _ in got} == {"/v1/traces"}
    spans = [
        (rs.resource, span)
        for _, request in got
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    (resource, span), *_ = spans
    assert len(spans) == 1 and span.name == "greenai.request"
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.request.model"].string_value == "m"
    assert attrs["gen_ai.usage.output_tokens"].int_value == 4
    assert attrs["greenai.energy_j"].double_value > 0
    assert attrs["greenai.uncertainty_j"].double_value > 0
    assert attrs["greenai.method"].string_value and rid
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "greenai-serve-proxy"
