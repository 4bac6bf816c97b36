"""Real torchrun jobs: 2 ranks, gloo on CPU, FakeGPUs per rank (see torchrun_job.py)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from greenai.measurement import Measurement
from greenai.store import RunStore

JOB = Path(__file__).with_name("torchrun_job.py")
ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("torch.distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(out: Path, mode: str, ok: bool = True, **env: str) -> dict[int, Measurement]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(JOB),
        str(out),
        mode,
    ]
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    environ.pop("GREENAI_HOST_ID", None)
    proc = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert (proc.returncode == 0) == ok, proc.stderr[-3000:]
    return {
        int(p.stem[4:]): Measurement.from_dict(json.loads(p.read_text()))
        for p in out.glob("rank*.json")
    }


def test_two_ranks_one_host_count_the_shared_gpu_once(tmp_path: Path) -> None:
    results = _torchrun(tmp_path, "shared")
    job, own = results[0], results[1]
    record = job.job
    assert record is not None and record.scope == "job" and record.complete
    assert record.world_size == 2 and record.backend == "gloo"
    host = record.ranks[0].host
    shared = next(d for d in record.devices if d.device_id == "GPU-shared")
    assert shared.rank == 0 and shared.duplicates == (1,)
    assert sorted(d.name for d in job.devices) == [f"{host}/gpu0", f"{host}/gpu1", f"{host}/shared"]
    # rank 1's own view holds both devices it read; only its own GPU is counted.
    assert own.job is not None and own.job.scope == "rank"
    assert record.rank_energy(1).devices == (f"{host}/gpu1",)
    assert job.device(f"{host}/gpu1").energy_j == own.device("gpu1").energy_j
    rank0 = record.rank_energy(0)
    assert rank0.measured_energy_j == pytest.approx(rank0.energy_j)
    expected = rank0.measured_energy_j + own.device("gpu1").energy_j
    assert job.energy_j == pytest.approx(expected, rel=1e-12)
    assert record.node(host).energy_j == pytest.approx(job.energy_j, rel=1e-12)
    # FLOPs add up over ranks; steps are the same 3 on each, samples add up.
    assert job.flops == 3e12 and job.j_per_tflop == pytest.approx(job.energy_j / 3)
    assert job.steps.count == 3 and job.steps.samples == 48
    # Top-level phases plus (other) still sum to the job's energy.
    assert math.fsum(p.energy_j or 0.0 for p in job.phases) == pytest.approx(job.energy_j)
    with RunStore(tmp_path / "runs.db") as store:
        runs = store.runs()
        assert len(runs) == 1  # rank 0 alone records the job
        stored = store.get(runs["id"][0])
    assert stored.meta["distributed"]["world_size"] == 2
    assert stored.measurement is not None and stored.measurement.job == record


def test_a_rank_that_dies_is_reported_missing(tmp_path: Path) -> None:
    # Rank 1 exits with code 1; torchrun SIGTERMs rank 0 while it waits (the 20 s deadline
    # is never reached): rank 0 records the job at once, then dies of the SIGTERM.
    results = _torchrun(tmp_path, "die", ok=False, GREENAI_GATHER_TIMEOUT_S="20")
    assert results == {}  # neither rank got past its tracker
    with RunStore(tmp_path / "runs.db") as store:
        runs = store.runs()
        assert len(runs) == 1
        job = store.get(runs["id"][0]).measurement
    assert job is not None and job.job is not None and job.job.missing_ranks == (1,)
    assert job.partial and any("SIGTERM" in n for n in job.notes)
    assert job.job.gather_s is not None and job.job.gather_s < 15
    assert job.energy_j == pytest.approx(job.job.rank_energy(0).energy_j)


def test_two_hosts_keep_their_own_shared_device(tmp_path: Path) -> None:
    # Each rank sets a distinct GREENAI_HOST_ID: the "shared" UUID is now on two hosts.
    results = _torchrun(tmp_path, "twonode")
    job, own = results[0], results[1]
    record = job.job
    assert record is not None and [n.host for n in record.nodes] == ["node0", "node1"]
    assert all(not d.duplicates for d in record.devices) and len(record.devices) == 4
    assert record.node("node1").energy_j == pytest.approx(own.energy_j, rel=1e-12)
    assert job.energy_j == pytest.approx(
        record.node("node0").energy_j + record.node("node1").energy_j, rel=1e-12
    )
    assert len(job.steps.energy_j) == 3  # nothing shared: per-step energy adds up


def test_a_two_rank_trainer_records_one_job_with_both_ranks(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    results = _torchrun(tmp_path, "trainer")
    job, own = results[0], results[1]
    record = job.job
    assert record is not None and record.scope == "job" and record.complete
    assert record.world_size == 2 and record.backend == "gloo"
    assert [r.steps for r in sorted(record.ranks, key=lambda r: r.rank)] == [4, 4]
    assert own.job is not None and own.job.scope == "rank"
    # the job's energy is both ranks' GPUs, each measured by its own rank
    expected = record.rank_energy(0).energy_j + own.device("gpu1").energy_j
    assert job.energy_j == pytest.approx(expected, rel=1e-12)
    assert job.steps.count == 4 and job.steps.samples == 2 * 4 * 4  # ranks x steps x batch
    with RunStore(tmp_path / "runs.db", read_only=True) as runs:
        listed = runs.runs()
        run = runs.get("latest")
    assert len(listed) == 1  # rank 0 records the job, rank 1 does not
    assert run.meta["integration"] == "transformers.Trainer"
    assert run.meta["distributed"]["world_size"] == 2
