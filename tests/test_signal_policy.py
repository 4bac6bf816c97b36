"""One signal policy for every long command, with real processes and signals (issue 28).

The first Ctrl-C or SIGTERM stops cleanly and keeps what was measured; a second one exits
at once; never a traceback; a stored run is never left ``running``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from greenai.store import RunStore
from greenai.store.runstore import KILLED_NOTE
from tests.signals import signal_when

# The command: quiet on Ctrl-C (its own traceback is not greenai's), default on SIGTERM.
SLEEPER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
    "open(sys.argv[1], 'w').close()\n"
    "time.sleep(30)\n"
)


def _status(db: Path) -> str | None:
    if not db.exists():
        return None
    try:
        with RunStore(db, read_only=True) as store:
            return store.get("latest").status
    except Exception:  # not written yet
        return None


def _recorded(db: Path) -> bool:
    """Whether greenai wrote the run's final record (not the store marking a dead run)."""
    with RunStore(db, read_only=True) as store:
        m = store.get("latest").measurement
    return m is not None and KILLED_NOTE.format(m.duration_s) not in m.notes


def _greenai(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "greenai", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # no terminal: greenai forwards to the command
    )


@pytest.mark.parametrize(
    ("signums", "gap_s"),
    [
        ([signal.SIGTERM] * 2, 0.002),
        ([signal.SIGTERM] * 2, 0.005),
        ([signal.SIGTERM] * 2, 0.010),
        ([signal.SIGINT] * 2, 0.010),
        ([signal.SIGINT] * 3, 0.010),
        ([signal.SIGINT] * 5, 0.001),
    ],
)
def test_greenai_run_survives_signals_in_quick_succession(
    tmp_path: Path, signums: list[int], gap_s: float
) -> None:
    db, ready = tmp_path / "runs.db", tmp_path / "ready"
    proc = _greenai("run", "--store", str(db), "--", sys.executable, "-c", SLEEPER, str(ready))
    err = signal_when(proc, ready.exists, signums, gap_s=gap_s)
    assert "Traceback" not in err, err
    assert proc.returncode == 128 + signums[0], (proc.returncode, err)
    assert _status(db) == "interrupted" and _recorded(db)


def _running(db: Path, proc: subprocess.Popen[str]) -> Callable[[], bool]:
    """Whether the command's run is stored as running (or the command ended already)."""
    return lambda: _status(db) == "running" or proc.poll() is not None


def _demo(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    db = tmp_path / "runs.db"
    return _greenai("demo", "--epochs", "500", "--store", str(db)), db


def test_ctrl_c_stops_the_demo_cleanly_and_stores_the_run(tmp_path: Path) -> None:
    proc, db = _demo(tmp_path)
    err = signal_when(proc, _running(db, proc), [signal.SIGINT])
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert "interrupted" in err
    # (once in session 21's CI the record was the last checkpoint's: say what greenai said)
    assert _status(db) == "interrupted" and _recorded(db), err


def test_sigterm_stops_the_demo_the_same_way(tmp_path: Path) -> None:
    proc, db = _demo(tmp_path)
    err = signal_when(proc, _running(db, proc), [signal.SIGTERM])
    assert "Traceback" not in err, err
    assert proc.returncode == 143, err
    assert _status(db) == "interrupted" and _recorded(db)


def test_a_second_ctrl_c_exits_at_once_without_a_traceback(tmp_path: Path) -> None:
    proc, db = _demo(tmp_path)
    err = signal_when(proc, _running(db, proc), [signal.SIGINT, signal.SIGINT])
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    # stopped cleanly or left at once: either way the run does not read as running
    assert _status(db) in ("interrupted",)


def test_ctrl_c_during_compress_is_one_line_and_exit_130(tmp_path: Path) -> None:
    (tmp_path / "tiny_model.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU())\n"
    )
    err_file = tmp_path / "err.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    with err_file.open("w") as err_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenai", "compress", "tiny_model:build",
             "--input-shape", "64", "--repeats", "50"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err_out, env=env,
            start_new_session=True,
        )  # fmt: skip
        signal_when(
            proc,
            lambda: "preparing rows" in err_file.read_text() or proc.poll() is not None,
            [signal.SIGINT],
        )
    err = err_file.read_text()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert err.rstrip().splitlines()[-1].startswith("greenai: interrupted by SIGINT")


def test_ctrl_c_during_bench_keeps_the_workload_run_as_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = _greenai("bench", "--suite", "quick", "--device", "cpu", "--store", str(db))
    err = signal_when(proc, _running(db, proc), [signal.SIGINT])
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    with RunStore(db, read_only=True) as store:
        statuses = set(store.runs()["status"])
    # the workload the signal caught is kept as interrupted (or had just completed)
    assert statuses <= {"completed", "interrupted"} and statuses, statuses
