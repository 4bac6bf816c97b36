from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greenai.cli import main
from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError
from greenai.runner import run_command
from greenai.store import RunStore
from greenai.testing import FakeGPU


def stored(db: Path) -> list[dict[str, object]]:
    with RunStore(db) as store:
        return store.runs().to_dict("records")


def test_command_is_measured_stored_and_its_exit_code_kept(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    code, result = run_command(
        [sys.executable, "-c", "import sys; sys.exit(3)"], store=db, devices=[FakeGPU()]
    )
    assert code == 3 and result.status == "failed"
    code, result = run_command(["--", sys.executable, "-c", "pass"], store=db, devices=[FakeGPU()])
    assert code == 0 and result.status == "completed" and result.energy_j > 0
    runs = stored(db)
    assert [r["status"] for r in runs] == ["completed", "failed"]


def test_command_killed_by_a_signal_exits_128_plus_n_and_is_interrupted(tmp_path: Path) -> None:
    code, result = run_command(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
        store=tmp_path / "r.db",
        devices=[],
    )
    assert code == 128 + signal.SIGTERM and result.status == "interrupted"


def test_nothing_or_a_missing_command_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to run"):
        run_command(["--"], devices=[])
    with pytest.raises(ConfigError, match="cannot start '/no/such/program': no such file"):
        run_command(["/no/such/program"], devices=[], store=tmp_path / "r.db")
    with pytest.raises(ConfigError, match="not found on PATH"):
        run_command(["no-such-program-greenai"], devices=[], store=tmp_path / "r.db")
    with pytest.raises(ConfigError, match="not an executable file"):
        run_command([str(tmp_path)], devices=[], store=tmp_path / "r.db")
    assert main(["run", "--store", str(tmp_path / "r.db"), "--"]) == 2
    # nothing was started, so nothing was recorded
    with RunStore(tmp_path / "r.db", read_only=True) as store:
        assert store.runs().empty


def test_cli_run_then_runs_report_and_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "runs.db")
    for _ in range(2):
        assert main(["run", "--store", db, "--name", "hello", "--", sys.executable, "-c", "1"]) == 0
    capsys.readouterr()
    assert main(["runs", "--store", db]) == 0
    listing = capsys.readouterr().out
    assert listing.count("hello") == 2 and "completed" in listing
    assert main(["report", "latest", "--store", db, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "hello" and data["status"] == "completed"
    ids = [r["id"] for r in stored(Path(db))]
    assert main(["compare", *ids, "--store", db]) == 0
    assert capsys.readouterr().out.count("hello") == 2
    assert main(["report", "nosuchrun", "--store", db]) == 2
    capsys.readouterr()
    assert main(["runs", "--store", db, "--until", "2000-01-01"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", "--store", db, "--until", "not a date"]) == 2


def test_text_report_is_coloured_only_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "runs.db")
    assert main(["run", "--store", db, "--name", "hi", "--", sys.executable, "-c", "1"]) == 0
    capsys.readouterr()
    assert main(["report", "latest", "--store", db]) == 0
    plain = capsys.readouterr().out
    assert "hi" in plain and "\x1b[" not in plain
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["report", "latest", "--store", db]) == 0
    assert "\x1b[" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["report", "latest", "--store", db]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start_greenai_run(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "greenai", "run", "--store", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_is_forwarded_and_the_run_kept_as_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = start_greenai_run(db, "--", sys.executable, "-c", "import time; time.sleep(60)")
    wait_for(lambda: db.exists() and len(stored(db)) == 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    (run,) = stored(db)
    assert run["status"] == "interrupted"


def test_kill_9_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = start_greenai_run(
        db, "--checkpoint", "0.2", "--", sys.executable, "-c", "import time; time.sleep(15)"
    )  # long enough for a first checkpoint on a loaded machine; killed with greenai

    def checkpointed() -> bool:
        if not db.exists() or not stored(db):
            return False
        with RunStore(db) as store:
            run = store.get("latest")
        return run.measurement is not None and run.measurement.duration_s > 0.5

    wait_for(checkpointed)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with RunStore(db) as store:
        run = store.get("latest")
    assert run.status == "interrupted"
    assert run.measurement is not None and run.measurement.duration_s > 0.5


class SteadyCpu(Device):
    """A whole-machine CPU drawing a steady 10 W."""

    name = "cpu-steady"
    kind = "cpu"
    method = "model"

    def read(self) -> Reading:
        return Reading(power_w=10.0)


def test_process_scope_charges_the_command_its_share(tmp_path: Path) -> None:
    burn = "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass"
    code, result = run_command(
        [sys.executable, "-c", burn],
        store=tmp_path / "r.db",
        devices=[SteadyCpu()],
        scope="process",
    )
    assert code == 0
    (device,) = result.devices
    assert (device.name, device.method) == ("cpu-steady@process", "model")
    assert 0 < device.energy_j < 10.0 * result.duration_s
    with RunStore(tmp_path / "r.db") as store:
        assert store.get("latest").meta["scope"] == "process"


def test_sigterm_as_soon_as_the_run_is_stored_is_not_lost(tmp_path: Path) -> None:
    # The run becomes visible in the store inside Tracker.start(); a supervisor that signals
    # then must get 143 and an interrupted run, not a greenai killed by the default handler.
    db, marker = tmp_path / "runs.db", tmp_path / "ran"
    script = f"""
import os, signal, sys
from greenai.tracker import Tracker
from greenai.cli import main
start = Tracker.start
def start_then_signal(self, *a, **k):
    out = start(self, *a, **k)
    os.kill(os.getpid(), signal.SIGTERM)
    return out
Tracker.start = start_then_signal
sys.exit(main(["run", "--store", {str(db)!r}, "--", sys.executable, "-c",
               "open({str(marker)!r}, 'w')"]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    (run,) = stored(db)
    assert run["status"] == "interrupted"
    assert not marker.exists()  # the command was never started
