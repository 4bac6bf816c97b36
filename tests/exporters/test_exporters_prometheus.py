from __future__ import annotations

import contextlib
import socket
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import greenai
from greenai.cli import main
from greenai.errors import ConfigError
from greenai.exporters import PrometheusExporter
from greenai.runner import run_command
from greenai.testing import FakeClock, FakeGPU


def wait_serving(exporter: PrometheusExporter, timeout_s: float = 10.0) -> None:
    """A sink starts on its own worker: poll, with a deadline, until the exporter serves."""
    deadline = time.monotonic() + timeout_s
    while not exporter.serving:
        if time.monotonic() > deadline:
            pytest.fail(f"the exporter did not start serving within {timeout_s:g} s")
        time.sleep(0.01)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        s.name: [(dict(x.labels), x.value) for x in f.samples if x.name == s.name]
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_scrape_shows_live_power_and_energy_per_device() -> None:
    clock = FakeClock()
    gpu = FakeGPU(power_w=300.0, noise_w=0.0, sensor_noise_w=0.0, clock=clock)
    job = greenai.track("train", devices=[gpu], clock=clock)
    with job, PrometheusExporter(job, port=0) as exporter:
        assert exporter.addr == "127.0.0.1" and exporter.port > 0 and exporter.serving
        clock.advance(2.0)
        job.step()
        metrics = scrape(exporter.url)
        [(labels, watts)] = metrics["greenai_device_power_watts"]
        assert labels == {
            "job": "train", "host": labels["host"], "rank": "0",
            "device": "gpu0", "kind": "gpu", "method": "counter",
        }  # fmt: skip
        assert watts == pytest.approx(300.0, rel=0.01)
        [(_, joules)] = metrics["greenai_device_energy_joules_total"]
        # energy up to now (the live snapshot), not just to the last reading
        assert joules == pytest.approx(300.0 * job.elapsed_s, rel=0.01)
        assert metrics["greenai_job_energy_joules_total"][0][1] == pytest.approx(joules)
        assert metrics["greenai_job_steps_total"][0][1] == 1.0
        assert metrics["greenai_job_running"][0][1] == 1.0
        assert metrics["greenai_job_duration_seconds"][0][1] == pytest.approx(2.0)
    assert not exporter.serving
    with pytest.raises(OSError):  # the port was released
        urllib.request.urlopen(exporter.url, timeout=2)


def test_after_stop_duration_stays_with_the_energy() -> None:
    clock = FakeClock()
    job = greenai.track("done", devices=[FakeGPU(power_w=100.0, clock=clock)], clock=clock)
    with PrometheusExporter(job, port=0) as exporter:
        with job:
            clock.advance(3.0)
        metrics = scrape(exporter.url)
        assert metrics["greenai_job_running"][0][1] == 0.0
        assert metrics["greenai_job_energy_joules_total"][0][1] > 0.0
        assert metrics["greenai_job_duration_seconds"][0][1] == pytest.approx(3.0)


def test_the_url_of_an_ipv6_address_has_brackets() -> None:
    job = greenai.track(devices=[])
    assert PrometheusExporter(job, port=9400, addr="::1").url == "http://[::1]:9400/metrics"
    assert PrometheusExporter(job, port=9400).url == "http://127.0.0.1:9400/metrics"


def test_before_start_there_is_nothing_per_device() -> None:
    job = greenai.track("idle", devices=[])
    with PrometheusExporter(job, port=0) as exporter:
        metrics = scrape(exporter.url)
    assert metrics.get("greenai_device_power_watts", []) == []
    assert metrics["greenai_job_running"][0][1] == 0.0


def test_missing_client_and_busy_port_fail_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = greenai.track(devices=[])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="pick another port"):
            PrometheusExporter(job, port=busy.getsockname()[1]).start()
    with pytest.raises(ConfigError, match=r"0\.\.65535"):
        PrometheusExporter(job, port=70000)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigError, match=r"pip install 'greenai\[prometheus\]'"):
        PrometheusExporter(job, port=0).start()


@pytest.mark.parametrize("addr", ["not.a.host.invalid", "", "192.0.2.1"])
def test_an_address_this_machine_cannot_serve_on_says_so(addr: str) -> None:
    job = greenai.track(devices=[])
    with pytest.raises(ConfigError, match="give an address of this machine"):
        PrometheusExporter(job, port=0, addr=addr).start()


def test_greenai_run_serves_metrics_while_the_command_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = (
        "import urllib.request; "
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    )
    code, result = run_command(
        [sys.executable, "-c", child],
        store=tmp_path / "r.db",
        devices=[FakeGPU()],
        prometheus_port=port,
    )
    out, err = capfd.readouterr()
    assert code == 0 and result.status == "completed"
    assert f"http://127.0.0.1:{port}/metrics" in err
    assert "greenai_device_power_watts{" in out and 'device="gpu0"' in out
    assert np.isfinite(result.energy_j)


def test_cli_refuses_a_bad_port_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--store", str(tmp_path / "r.db"), "--prometheus-port", "99999"]
    assert main([*args, "--", sys.executable, "-c", "pass"]) == 2
    assert "0..65535" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_port_is_the_prometheus_sink_one_exporter_when_both_name_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    child = (
        "import urllib.request; "
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    )
    store = ["--store", str(tmp_path / "r.db")]
    flags = ["--prometheus-port", str(port), "--sink", f"prometheus:{port}"]
    assert main(["run", *store, *flags, "--", sys.executable, "-c", child]) == 0
    out, err = capfd.readouterr()
    assert "greenai_job_running{host=" in out and 'rank="0"} 1.0' in out  # scraped, running
    assert err.count("Prometheus metrics at") == 1
    assert "PrometheusExporter" not in err  # no second exporter failing on the same port


def test_prometheus_port_and_a_prometheus_sink_elsewhere_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    for flags in (
        ["--prometheus-port", "9411", "--sink", "prometheus:9412"],
        ["--prometheus-port", "9411", "--sink", "prometheus:9411,addr=0.0.0.0"],
        ["--prometheus-addr", "0.0.0.0"],  # an address for no port
    ):
        assert main(["run", "--store", str(db), *flags, "--", sys.executable, "-c", "pass"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--prometheus-" in err, err
    assert not db.exists()  # refused before anything ran or was stored


@pytest.mark.parametrize("flag", ["--prometheus-port", "--sink"])
def test_a_busy_prometheus_port_stops_the_run_before_the_command(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db, marker = tmp_path / "r.db", tmp_path / "ran"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        value = str(port) if flag == "--prometheus-port" else f"prometheus:{port}"
        child = f"open({str(marker)!r}, 'w').close()"
        code = main(["run", "--store", str(db), flag, value, "--", sys.executable, "-c", child])
    assert code == 2
    err = capsys.readouterr().err
    assert "Address already in use" in err and "pick another port" in err
    assert not marker.exists()  # the command never started
    assert main(["runs", "--store", str(db), "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") <= 1  # no run left behind (a header at most)


def test_as_a_sink_it_serves_while_the_job_runs_and_releases_the_port_after() -> None:
    clock = FakeClock()
    exporter = PrometheusExporter(port=0)
    with greenai.track("sink", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[exporter]):
        clock.advance(1.0)
        wait_serving(exporter)
        assert scrape(exporter.url)["greenai_job_running"][0][1] == 1.0
    # stop() does not wait for the server's next poll; the port is released soon after
    for _ in range(100):
        try:
            urllib.request.urlopen(exporter.url, timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the exporter still serves 5 s after its job ended")
    exporter.stop()  # safe after the sink stopped it


def test_one_exporter_serves_two_jobs_one_after_the_other() -> None:
    clock = FakeClock()
    exporter = PrometheusExporter(port=0)
    for name in ("first", "second"):  # the first job's deferred shutdown spares the second
        with greenai.track(name, devices=[FakeGPU(clock=clock)], clock=clock, sinks=[exporter]):
            clock.advance(1.0)
            # each job's sink starts and finishes on a worker: poll until this job is served
            deadline, job = time.monotonic() + 10.0, ""
            while job != name and time.monotonic() < deadline:
                wait_serving(exporter)
                with contextlib.suppress(OSError):  # the previous job's server going away
                    [(labels, _)] = scrape(exporter.url)["greenai_job_running"]
                    job = labels["job"]
            assert job == name
    exporter.stop()


def test_workers_end_before_the_servers_descriptors_close(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker alive when the trigger's pipe closes may later write into (or, through the
    # next server's loop, close) a file that reused the descriptor number.
    import threading

    from waitress import wasyncore

    alive_at_close: list[list[str]] = []
    close_all = wasyncore.close_all

    def recording_close_all(*args: object, **kwargs: object) -> None:
        names = [t.name for t in threading.enumerate()]
        alive_at_close.append([n for n in names if n.startswith("greenai-prometheus-")])
        close_all(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wasyncore, "close_all", recording_close_all)
    clock = FakeClock()
    job = greenai.track("w", devices=[FakeGPU(power_w=100.0, clock=clock)], clock=clock)
    with job, PrometheusExporter(job, port=0) as exporter:
        clock.advance(1.0)
        scrape(exporter.url)
    assert alive_at_close == [[]]
