from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

from greenai.store import RunStore

CRASHING = """
import os, signal, sys
import greenai
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU

clock = FakeClock()
store = RunStore(sys.argv[1]).open()
run_id = store.start_run("doomed", meta={"k": 1}, command="train --fast")
with greenai.track("doomed", devices=[FakeGPU(clock=clock, power_w=200.0)], clock=clock) as job:
    with job.phase("fwd"):
        clock.advance(1.0)
    clock.advance(1.0)
store.checkpoint(run_id, job.result, job.timeline(), job.phase_spans())
print(run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

WRITER = """
import sys
import pandas as pd
from greenai.measurement import Measurement
from greenai.store import RunStore

path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with RunStore(path) as store:
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's go: both processes write at the same time
    for i in range(n):
        run_id = store.start_run(f"{tag}-{i}", meta={"i": i})
        timeline = pd.DataFrame(
            {"t_s": [0.0, 0.1, 0.2], "device": "gpu0", "method": "counter",
             "power_w": [100.0, 110.0, 120.0], "counter_j": [0.0, 10.0, 21.0],
             "energy_j": [0.0, 10.0, 21.0]}
        )
        store.checkpoint(run_id, timeline=timeline)
        m = Measurement(name=tag, status="completed", started_at="", duration_s=0.2,
                        energy_j=21.0 + i, uncertainty_j=0.1, avg_power_w=105.0,
                        peak_power_w=120.0)
        store.finish_run(run_id, m, timeline=timeline)
print("done", flush=True)
"""


def test_a_killed_run_is_interrupted_with_its_last_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_id = proc.stdout.strip()

    with closing(sqlite3.connect(path)) as conn:  # nothing has looked at it since the kill
        assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]

    with RunStore(path) as store:
        run = store.get(run_id)
    assert run.status == "interrupted"
    assert run.ended_at is not None
    assert (run.meta, run.command) == ({"k": 1}, "train --fast")
    assert run.measurement is not None
    assert run.measurement.status == "interrupted"
    assert run.measurement.duration_s == 2.0
    assert run.measurement.energy_j is not None and run.measurement.energy_j > 0
    assert len(run.timeline) > 10
    assert list(run.phase_spans["phase"]) == ["fwd"]


def test_a_live_run_of_this_process_is_not_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        run_id = store.start_run("alive")
    with RunStore(path) as store:
        assert store.get(run_id).status == "running"


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    n = 50
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(path), tag, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p", "q")
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise AssertionError(p.communicate(timeout=120)[1])
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "done"

    with RunStore(path) as store:
        runs = store.runs()
        assert len(runs) == 2 * n
        assert set(runs["name"]) == {f"{t}-{i}" for t in "pq" for i in range(n)}
        assert set(runs["status"]) == {"completed"}
        assert store.get("latest").timeline.shape == (3, 7)  # later checkpoints added nothing
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM timeline").fetchone() == (3 * 2 * n,)
