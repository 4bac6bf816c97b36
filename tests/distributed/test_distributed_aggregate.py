"""In-process simulation of the gather: payloads of simulated ranks, assembled on 'rank 0'."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from greenai.distributed import RankPayload, aggregate, rank_view
from greenai.measurement import Measurement

Rank = Callable[..., tuple[Any, RankPayload]]


def test_two_nodes_totals_are_the_sum_of_unique_devices(run_rank: Rank) -> None:
    # Two "nodes", two ranks each. On each node both ranks read a shared host device
    # (same UUID) and their own GPU; the shared ones have the same UUID on both nodes but
    # distinct host identities, so they are two devices.
    payloads = []
    for rank in range(4):
        host, local = f"node{rank // 2}", rank % 2
        gpus = [(f"gpu{local}", f"GPU-{rank}", 200.0 + rank), ("host", "HOST", 40.0)]
        payloads.append(run_rank(rank, host, gpus, world_size=4, local_rank=local)[1])
    job = aggregate(payloads[::-1], world_size=4)  # arrival order does not matter
    record = job.job
    assert record is not None and record.complete and len(record.ranks) == 4

    unique = {}
    for p in payloads:
        for d in p.measurement.devices:
            unique.setdefault((p.host, p.device_ids[d.name]), d.energy_j)
    assert len(unique) == 6  # 4 GPUs + 1 host device per node
    assert job.energy_j == pytest.approx(math.fsum(unique.values()), rel=1e-12)
    assert [n.host for n in record.nodes] == ["node0", "node1"]
    for node in record.nodes:
        on_node = [e for (h, _), e in unique.items() if h == node.host]
        assert node.energy_j == pytest.approx(math.fsum(on_node), rel=1e-12)
        assert len(node.devices) == 3
    shared = [d for d in record.devices if d.device_id == "HOST"]
    assert [(d.host, d.rank, d.duplicates) for d in shared] == [
        ("node0", 0, (1,)),
        ("node1", 2, (3,)),
    ]
    # Ranks 1 and 3 are credited with their own GPU only; their own view keeps both.
    r1 = record.rank_energy(1)
    assert r1.devices == ("node0/gpu1",)
    assert r1.measured_energy_j == pytest.approx(payloads[1].measurement.energy_j)
    assert r1.energy_j == payloads[1].measurement.device("gpu1").energy_j
    assert math.fsum(r.energy_j or 0.0 for r in record.ranks) == pytest.approx(job.energy_j)


def test_phases_count_shared_devices_once_and_still_sum_to_the_total(run_rank: Rank) -> None:
    a = run_rank(0, "n", [("gpu0", "GPU-0", 300.0), ("host", "HOST", 50.0)])[1]
    b = run_rank(1, "n", [("gpu1", "GPU-1", 100.0), ("host", "HOST", 50.0)])[1]
    job = aggregate([a, b], world_size=2)
    fwd = job.phase("fwd")
    expected = (
        a.device_phases["gpu0"]["fwd"][0]
        + a.device_phases["host"]["fwd"][0]
        + b.device_phases["gpu1"]["fwd"][0]
    )
    assert fwd.energy_j == pytest.approx(expected, rel=1e-12)
    assert fwd.count == 4
    assert math.fsum(p.energy_j or 0.0 for p in job.phases) == pytest.approx(job.energy_j)
    # Each rank keeps its own phase energy (every device it read).
    assert job.job is not None
    assert job.job.rank_energy(1).phases == b.measurement.phases


def test_steps_and_flops_add_up_across_ranks(run_rank: Rank) -> None:
    a = run_rank(0, "n0", [("gpu0", "GPU-0", 300.0)], flops=2e12)[1]
    b = run_rank(1, "n1", [("gpu0", "GPU-1", 100.0)], flops=1e12)[1]
    job = aggregate([a, b], world_size=2)
    assert job.flops == 3e12
    assert job.j_per_tflop == pytest.approx(job.energy_j / 3)
    assert job.kwh_per_tflop == pytest.approx(job.energy_j / 3 / 3.6e6)
    s = job.steps
    assert s.count == 4 and s.samples == 2 * 4 * 8
    # No device is shared, so the per-step energy is the ranks' sum, step by step.
    for k in range(4):
        assert s.energy_j[k] == pytest.approx(
            a.measurement.steps.energy_j[k] + b.measurement.steps.energy_j[k]
        )
    assert s.total_energy_j == pytest.approx(
        a.measurement.steps.total_energy_j + b.measurement.steps.total_energy_j
    )


def test_missing_ranks_are_named_and_not_counted(run_rank: Rank) -> None:
    a = run_rank(0, "n", [("gpu0", "GPU-0", 300.0)], world_size=4)[1]
    c = run_rank(2, "n", [("gpu2", "GPU-2", 300.0)], world_size=4)[1]
    job = aggregate([a, c], world_size=4)
    assert job.job is not None and job.job.missing_ranks == (1, 3)
    assert not job.job.complete and job.partial
    assert job.notes[0].startswith("rank(s) [1, 3] of 4 never reported")
    assert job.energy_j == pytest.approx(a.measurement.energy_j + c.measurement.energy_j)


def test_worst_status_wins_and_notes_are_merged(run_rank: Rank) -> None:
    a = run_rank(0, "n", [("gpu0", "GPU-0", 300.0)])[1]
    b = run_rank(1, "n", [("gpu1", "GPU-1", 300.0)])[1]
    failed = RankPayload(**{**b.__dict__, "measurement": _with(b.measurement, status="failed")})
    job = aggregate([a, failed], world_size=2)
    assert job.status == "failed"
    mfu = [n for n in job.notes if "MFU" in n]
    assert mfu == [] or mfu[0].startswith("ranks [0, 1]")


def test_payload_and_record_round_trip(run_rank: Rank) -> None:
    a = run_rank(0, "n", [("gpu0", "GPU-0", 300.0), ("host", "HOST", 50.0)])[1]
    b = run_rank(1, "n", [("gpu1", "GPU-1", 100.0), ("host", "HOST", 50.0)])[1]
    again = RankPayload.from_bytes(b.to_bytes())
    assert again.measurement == b.measurement and again.device_phases == b.device_phases
    job = aggregate([a, again], world_size=2)
    assert Measurement.from_dict(job.to_dict()) == job
    view = rank_view(b)
    assert view.scope == "rank" and view.ranks[0].energy_j == b.measurement.energy_j


def _with(m: Measurement, **changes: object) -> Measurement:
    import dataclasses

    return dataclasses.replace(m, **changes)  # type: ignore[arg-type]


def test_phases_kept_out_of_steps_are_named_for_the_whole_job(run_rank: Rank) -> None:
    import dataclasses

    a, b = (run_rank(r, f"n{r}", [("gpu0", f"GPU-{r}", 100.0)])[1] for r in (0, 1))
    apart = {0: ("eval",), 1: ("eval", "train/flop-count")}
    payloads = []
    for p in (a, b):
        steps = dataclasses.replace(p.measurement.steps, apart_phases=apart[p.rank])
        m = _with(p.measurement, steps=steps)
        payloads.append(RankPayload.from_bytes(dataclasses.replace(p, measurement=m).to_bytes()))
    job = aggregate(payloads, world_size=2)
    assert job.steps.apart_phases == ("eval", "train/flop-count")


def test_summary_shows_ranks_and_nodes(run_rank: Rank) -> None:
    from greenai.cli import summary

    a = run_rank(0, "n0", [("gpu0", "GPU-0", 300.0)], world_size=3)[1]
    b = run_rank(1, "n1", [("gpu0", "GPU-1", 100.0)], world_size=3)[1]
    text = summary(aggregate([a, b], world_size=3))
    assert "job: 2/3 ranks on 2 node(s)" in text
    assert "node n1" in text and "never reported" in text


def test_two_local_ranks_zero_on_one_host_id_are_flagged(run_rank: Rank) -> None:
    # Two machines with one host name and no readable boot id: both ranks are local rank 0.
    payloads = [
        run_rank(r, "node", [(f"gpu{r}", f"GPU-{r}", 100.0), ("cpu", "CPU", 40.0)])[1]
        for r in range(2)
    ]
    job = aggregate(payloads, world_size=2)
    assert any("ranks [0, 1] are each local rank 0 of host 'node'" in n for n in job.notes)
    ok = aggregate([payloads[0], run_rank(1, "node", [], local_rank=1)[1]], world_size=2)
    assert not any("local rank 0" in n for n in ok.notes)


def test_per_step_arrays_travel_up_to_a_limit_that_shrinks_with_the_job() -> None:
    from greenai.distributed.payload import MAX_PAYLOAD_STEPS, max_payload_steps

    assert max_payload_steps(2) == max_payload_steps(8) == MAX_PAYLOAD_STEPS
    assert max_payload_steps(64) == 1250 and max_payload_steps(10_000) == 100


def test_phase_uncertainty_combines_as_on_one_process(run_rank: Rank) -> None:
    gpus = [("gpu0", "GPU-0", 100.0), ("gpu1", "GPU-1", 200.0)]
    tracker, payload = run_rank(0, "h", gpus, world_size=1)
    job = aggregate([payload], world_size=1)
    for mine, theirs in zip(tracker.result.phases, job.phases, strict=True):
        assert theirs.name == mine.name and theirs.energy_j == pytest.approx(mine.energy_j)
        assert theirs.uncertainty_j == pytest.approx(mine.uncertainty_j, rel=1e-12)


def test_a_rank_reading_gpus_at_phases_apart_keeps_its_own_uncertainty() -> None:
    # One rank reading 8 GPUs on one kernel load, each counter updating at its own phase,
    # read every 10 ms: its tracker adds their ± by phase (well under the linear sum); the
    # job assembled from that rank alone reads the same (it added them linearly).
    import numpy as np

    import greenai
    from greenai.distributed import RankInfo
    from greenai.distributed.session import rank_payload
    from greenai.testing import FakeClock, FakeGPU, RandomKernels

    clock = FakeClock()
    gpus = [
        FakeGPU(
            f"gpu{i}",
            power_w=RandomKernels(seed=3),
            uuid=f"GPU-{i}",
            seed=i,
            clock=clock,
            update_phase_s=float(p),
        )
        for i, p in enumerate(np.linspace(0.0, 0.0875, 8))
    ]
    job = greenai.Tracker("one rank", devices=gpus, clock=clock, period_s=0.01, distributed=False)
    with job:
        clock.advance(2.0)
    r = job.result
    assert r.uncertainty_j is not None
    linear_j = math.fsum(d.uncertainty_j for d in r.devices)
    assert r.uncertainty_j < 0.8 * linear_j
    info = RankInfo(
        rank=0, world_size=1, local_rank=0, local_world_size=1, host="n", backend="gloo"
    )
    agg = aggregate([rank_payload(job, r, info)], world_size=1)
    assert agg.energy_j == pytest.approx(r.energy_j)
    assert agg.uncertainty_j == pytest.approx(r.uncertainty_j)
    assert agg.job is not None
    assert agg.job.rank_energy(0).uncertainty_j == pytest.approx(r.uncertainty_j)


def test_a_rank_credited_with_part_of_its_devices_adds_them_linearly(run_rank: Rank) -> None:
    a = run_rank(0, "n", [("gpu0", "GPU-0", 300.0), ("host", "HOST", 50.0)])[1]
    b = run_rank(1, "n", [("gpu1", "GPU-1", 100.0), ("host", "HOST", 50.0)])[1]
    job = aggregate([a, b], world_size=2)
    assert job.job is not None
    r1 = job.job.rank_energy(1)
    assert r1.uncertainty_j == pytest.approx(b.measurement.device("gpu1").uncertainty_j)
    assert job.uncertainty_j == pytest.approx(
        math.fsum(d.uncertainty_j for d in job.devices), rel=1e-12
    )
