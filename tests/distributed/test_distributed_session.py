"""The tracker's distributed hook, in-process: a real gloo group of one, and simulated ranks."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

import greenai
from greenai.distributed import RankInfo, RankPayload, StoreGather
from greenai.distributed.session import DistributedSession, no_local_rank_message
from greenai.errors import ConfigError, MeasurementWarning
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU

Rank = Callable[..., tuple[Any, RankPayload]]


@pytest.fixture
def group_of_one() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_a_tracker_joins_an_initialised_group_and_records_the_job(
    group_of_one: None, tmp_path: Path
) -> None:
    clock = FakeClock()
    job = greenai.track("one", devices=[FakeGPU(clock=clock)], clock=clock, store=tmp_path / "r.db")
    with job:
        clock.advance(1.0)
    record = job.result.job
    assert record is not None and record.scope == "job" and record.world_size == 1
    assert record.backend == "gloo" and record.complete
    assert job.result.energy_j == pytest.approx(record.ranks[0].energy_j)
    with RunStore(tmp_path / "r.db") as store:
        run = store.get("latest")
    assert run.meta["distributed"]["world_size"] == 1
    assert run.measurement is not None and run.measurement.job == record


def test_distributed_false_ignores_the_group(group_of_one: None) -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock, distributed=False) as job:
        clock.advance(0.5)
    assert job.result.job is None


def test_distributed_true_without_a_group_is_refused_before_measuring() -> None:
    job = greenai.track(devices=[], distributed=True)
    with pytest.raises(ConfigError, match="init_process_group"):
        job.start()
    assert not job.running


def test_no_group_means_a_plain_measurement() -> None:
    clock = FakeClock()
    with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
        clock.advance(0.5)
    assert job.result.job is None


class _Time:
    """A clock that moves only when the gather sleeps: deadlines pass without waiting."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _session(
    store: dist.Store,
    rank: int,
    world: int,
    time: _Time,
    sleep: Callable[[float], None] | None = None,
) -> DistributedSession:
    info = RankInfo(rank=rank, world_size=world, local_rank=rank, local_world_size=world, host="h")
    sleep = sleep or time.sleep
    gather = StoreGather(store, rank, world, timeout_s=5.0, now=time.now, sleep=sleep)
    gather.begin()
    return DistributedSession(info, gather)


def test_simulated_ranks_gather_through_the_store(run_rank: Rank) -> None:
    store, time = dist.HashStore(), _Time()
    sessions = [_session(store, r, 3, time) for r in range(3)]
    trackers = [
        run_rank(r, "h", [(f"gpu{r}", f"GPU-{r}", 100.0 * (r + 1)), ("host", "H", 10.0)])[0]
        for r in range(3)
    ]
    views = [sessions[r].finish(trackers[r], trackers[r].result) for r in (2, 1)]
    assert all(v.job is not None and v.job.scope == "rank" for v in views)
    job = sessions[0].finish(trackers[0], trackers[0].result)
    assert time.t == 0.0  # everything was there: rank 0 did not wait
    assert job.job is not None and job.job.complete and len(job.job.ranks) == 3
    host = next(d for d in job.job.devices if d.device_id == "H")
    assert host.rank == 0 and host.duplicates == (1, 2)
    expected = trackers[0].result.energy_j + sum(
        trackers[r].result.device(f"gpu{r}").energy_j for r in (1, 2)
    )
    assert job.energy_j == pytest.approx(expected, rel=1e-12)
    assert job.job.payload_bytes and job.job.payload_bytes > 0
    assert not any(store.check([sessions[0].gather.key(r)]) for r in (1, 2))  # cleaned up


def test_rank_zero_stops_waiting_at_the_deadline_and_names_the_missing(run_rank: Rank) -> None:
    store, time = dist.HashStore(), _Time()
    sessions = [_session(store, r, 3, time) for r in range(3)]
    t0, _ = run_rank(0, "h", [("gpu0", "GPU-0", 100.0)])
    t2, _ = run_rank(2, "h", [("gpu2", "GPU-2", 100.0)])
    sessions[2].finish(t2, t2.result)  # rank 1 never finishes
    job = sessions[0].finish(t0, t0.result)
    with pytest.warns(MeasurementWarning, match=r"rank\(s\) \[1\]: they did not report"):
        sessions[0].close()
    assert 5.0 <= time.t < 5.1
    assert job.job is not None and job.job.missing_ranks == (1,)
    assert [r.rank for r in job.job.ranks] == [0, 2]


def test_job_numbers_keep_successive_trackers_apart() -> None:
    store = dist.HashStore()
    a0, b0 = StoreGather(store, 0, 2), StoreGather(store, 0, 2)
    a1, b1 = StoreGather(store, 1, 2), StoreGather(store, 1, 2)
    assert (
        [a0.begin(), b0.begin()] == [a1.begin(), b1.begin()] == ["greenai/job/1", "greenai/job/2"]
    )
    assert a0.key(1) != b0.key(1)


def test_a_tracker_on_rank_zero_alone_does_not_put_the_job_numbers_out_of_step() -> None:
    store = dist.HashStore()
    StoreGather(store, 0, 2).begin("eval")  # rank 0 alone (distributed=False on the others)
    train0, train1 = StoreGather(store, 0, 2), StoreGather(store, 1, 2)
    assert train0.begin("train") == train1.begin("train") == "greenai/train/1"
    assert StoreGather(store, 0, 2).begin("a/b") == "greenai/a%2Fb/1"


def test_a_payload_of_another_job_is_never_mixed_in(run_rank: Rank) -> None:
    store, time = dist.HashStore(), _Time()
    sessions = [_session(store, r, 2, time) for r in range(2)]
    t0, _ = run_rank(0, "h", [("gpu0", "GPU-0", 100.0)])
    _, stale = run_rank(1, "h", [("gpu1", "GPU-1", 100.0)])
    store.set(sessions[1].gather.key(1), dataclasses.replace(stale, job="greenai/job/7").to_bytes())
    store.add(f"{sessions[0].gather.key(0)}/done", 1)
    job = sessions[0].finish(t0, t0.result)
    assert job.job is not None and job.job.missing_ranks == (1,)
    assert job.energy_j == pytest.approx(t0.result.energy_j)
    assert any("'greenai/job/7'" in n and "not counted" in n for n in job.notes)
    with pytest.warns(MeasurementWarning, match="not counted"):
        sessions[0].close()


def test_phases_add_up_when_one_rank_has_none(run_rank: Rank) -> None:
    store, time = dist.HashStore(), _Time()
    sessions = [_session(store, r, 2, time) for r in range(2)]
    t0, _ = run_rank(0, "h", [("gpu0", "GPU-0", 100.0)])
    t1, _ = run_rank(1, "h", [("gpu1", "GPU-1", 300.0)], phases=False)
    sessions[1].finish(t1, t1.result)
    job = sessions[0].finish(t0, t0.result)
    assert job.energy_j is not None and not t1.result.phases
    assert [p.name for p in job.phases] == ["fwd", "(other)"]
    assert math.fsum(p.energy_j or 0.0 for p in job.phases) == pytest.approx(job.energy_j)


def test_sigterm_while_waiting_ends_the_wait_and_is_passed_on_after(run_rank: Rank) -> None:
    store, time = dist.HashStore(), _Time()

    def sigterm(seconds: float) -> None:  # torchrun's SIGTERM arrives while rank 0 waits
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(seconds)

    sessions = [_session(store, r, 2, time, sleep=sigterm if r == 0 else None) for r in range(2)]
    t0, _ = run_rank(0, "h", [("gpu0", "GPU-0", 100.0)])
    got: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        job = sessions[0].finish(t0, t0.result)
        assert job.job is not None and job.job.missing_ranks == (1,) and got == []
        assert time.t < 0.1  # it stopped waiting at once
        assert any("SIGTERM" in n for n in job.notes)
        with pytest.warns(MeasurementWarning, match="SIGTERM"):
            sessions[0].close()
        assert got == [signal.SIGTERM]  # the handler that was there before gets it
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_warning_made_an_error_loses_neither_result_nor_record(
    group_of_one: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import greenai.distributed.session as session

    two = RankInfo(rank=0, world_size=2, local_rank=0, local_world_size=1, host="h")
    monkeypatch.setattr(session, "rank_info", lambda dist: two)  # rank 1 never reports
    monkeypatch.setenv("GREENAI_GATHER_TIMEOUT_S", "0.05")
    clock = FakeClock()
    job = greenai.track("w", devices=[FakeGPU(clock=clock)], clock=clock, store=tmp_path / "r.db")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeasurementWarning)
        job.start()
        clock.advance(1.0)
        with pytest.raises(MeasurementWarning, match="did not report"):
            job.stop()
    assert job.result.job is not None and job.result.job.missing_ranks == (1,)
    with RunStore(tmp_path / "r.db") as store:
        run = store.get("latest")
    assert run.measurement is not None and run.measurement.job == job.result.job


def test_world_size_without_a_group_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A world size no other test uses: the warning is new to this process.
    monkeypatch.setenv("WORLD_SIZE", "4091")
    clock = FakeClock()
    with pytest.warns(MeasurementWarning, match="init_process_group"):
        with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock):
            clock.advance(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeasurementWarning)
        with greenai.track(devices=[FakeGPU(clock=clock)], clock=clock) as job:
            clock.advance(0.1)
    assert job.result.job is None


def test_a_broken_gather_keeps_the_ranks_own_result(run_rank: Rank) -> None:
    class Broken:
        def set(self, key: str, value: bytes) -> None:
            raise RuntimeError("store went away")

        def add(self, key: str, amount: int) -> int:
            return 1

    tracker, _ = run_rank(1, "h", [("gpu1", "GPU-1", 100.0)])
    info = RankInfo(rank=1, world_size=2, local_rank=1, local_world_size=2, host="h")
    gather = StoreGather(Broken(), 1, 2)  # type: ignore[arg-type]
    gather.begin()
    session = DistributedSession(info, gather)
    result = session.finish(tracker, tracker.result)
    with pytest.warns(MeasurementWarning, match="store went away"):
        session.close()
    assert result.energy_j == tracker.result.energy_j
    assert "store went away" in result.notes[-1]


def test_ranks_without_local_rank_are_told_every_device_is_read() -> None:
    spawned = RankInfo(rank=1, world_size=2, local_rank=0, local_world_size=1, host="h")
    assert "LOCAL_RANK is not set" in (no_local_rank_message({}, spawned) or "")
    assert no_local_rank_message({"LOCAL_RANK": "1"}, spawned) is None
    assert no_local_rank_message({"LOCAL_WORLD_SIZE": "1"}, spawned) is None
    known = dataclasses.replace(spawned, local_world_size=2, local_rank=1)
    assert no_local_rank_message({}, known) is None
