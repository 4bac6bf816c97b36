"""Suites of standard workloads, and running them tracked: ``greenai bench`` without pytest.

Each workload is warmed up, timed for a few steps to choose a step count that lasts about
the suite's ``min_time_s``, then run that many steps inside a :class:`greenai.Tracker`
(synchronised on CUDA before the tracker stops). Nothing runs on the hot path but the step.

A loop shorter than a GPU sensor's update period (the smoke suite's 50 ms, against ~100 ms
updates) is seen at one phase of the sensor: it is run :data:`~greenai.protocol.SHIFTS`
times instead, each trial a tracked phase ``trial<i>`` started at a shifted offset
(:mod:`greenai.protocol`), and the row sums the trials, with the spread of their energy per
step in its uncertainty (:func:`greenai.windows.across_offsets`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from greenai.bench import workloads as w
from greenai.errors import ConfigError
from greenai.paired import Protocol, warm_up
from greenai.protocol import SHIFTS, needs_shifts, sensor_period_s, shift_s
from greenai.windows import across_offsets

__all__ = [
    "SUITES",
    "Suite",
    "failed_row",
    "get_suite",
    "resolve_device",
    "run_suite",
    "run_workload",
]

ROUNDS = 5
"""Rounds each workload's timed loop is cut into (tracked phases ``round<i>``): their
spread is the row's noise estimate (``round_s_per_step``, ``round_j_per_step``), which
``greenai compare`` of two result files turns into the interval of each ratio."""

FORMAT = "greenai-bench/1"
"""The ``format`` of a results document (``greenai bench --json``)."""


@dataclass(frozen=True)
class Suite:
    """A named list of workloads and how long each one runs.

    Attributes:
        min_time_s: Each workload's tracked loop lasts about this long (s). Energy over
            windows under ~1 s is dominated by the sensors' 100 ms update period.
        warmup_steps: Untracked steps first (allocations, cuDNN/cuBLAS heuristics).
    """

    name: str
    workloads: tuple[w.Workload, ...]
    min_time_s: float
    warmup_steps: int = 2
    min_steps: int = 2


def _smoke() -> Suite:
    return Suite(
        "smoke",
        (
            w.gemm(64, "fp32"),
            w.gemm(64, "bf16"),
            w.convnet_train(4, image=16, width=8),
            w.transformer(2, seq=16, d_model=32, layers=1, heads=2, vocab=100),
            w.inference(1, seq=16, d_model=32, layers=1, heads=2, vocab=100),
            w.inference(4, seq=16, d_model=32, layers=1, heads=2, vocab=100),
        ),
        min_time_s=0.05,
        warmup_steps=1,
    )


def _quick() -> Suite:
    return Suite(
        "quick",
        (
            *(w.gemm(n, "fp32") for n in (256, 512, 1024)),
            *(w.gemm(n, "bf16") for n in (256, 512)),
            w.convnet_train(32),
            w.transformer(8),
            *(w.inference(b) for b in (1, 8, 32)),
        ),
        min_time_s=1.0,
    )


def _full() -> Suite:
    model = {"seq": 512, "d_model": 1024, "layers": 8, "heads": 16, "vocab": 32000}
    return Suite(
        "full",
        (
            *(w.gemm(n, "fp32") for n in (1024, 4096)),
            *(w.gemm(n, "fp16") for n in (1024, 4096, 8192)),
            *(w.gemm(n, "bf16") for n in (1024, 2048, 4096, 8192)),
            w.gemm(8192, "bf16", m=1),
            w.convnet_train(256, image=64, width=64, dtype="bf16"),
            w.transformer(16, dtype="bf16", **model),
            *(w.inference(b, dtype="bf16", **model) for b in (1, 8, 64)),
        ),
        min_time_s=5.0,
        warmup_steps=5,
    )


SUITES: dict[str, Callable[[], Suite]] = {"smoke": _smoke, "quick": _quick, "full": _full}
"""Suite builders by name: ``smoke`` (seconds; tests and CI), ``quick`` (CPU default,
well under a minute), ``full`` (GPU default; sizes that fill an H100)."""


def get_suite(name: str | None, device: str = "cpu") -> Suite:
    """The suite ``name``; None picks ``full`` on CUDA and ``quick`` elsewhere."""
    if name is None:
        name = "full" if device.startswith("cuda") else "quick"
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    return SUITES[name]()


def resolve_device(spec: str = "auto") -> str:
    """``auto`` → ``cuda:0`` when torch sees a GPU, else ``cpu``; checks ``cuda:N`` exists."""
    import torch

    if spec == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return spec
    if spec == "cuda" or spec.startswith("cuda:"):
        number = spec[5:] or "0"
        index = int(number) if number.isdigit() else -1
        if not torch.cuda.is_available() or not 0 <= index < torch.cuda.device_count():
            raise ConfigError(f"device {spec!r} is not available here; use --device cpu")
        return f"cuda:{index}"
    raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {spec!r}")


def bench_devices(device: str) -> list[Any]:
    """What to measure for ``device``: its own GPU (not the node's others) plus CPU/DRAM."""
    from greenai.devices.discovery import discover

    found = discover()
    if not device.startswith("cuda"):
        return [d for d in found if d.kind != "gpu"]
    name = f"gpu{device.partition(':')[2] or 0}"
    return [d for d in found if d.kind != "gpu" or d.name == name]


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work when ``device`` is CUDA; nothing on the CPU."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def plan_steps(step: Callable[[], None], device: str, min_time_s: float, min_steps: int) -> int:
    """Time a few steps and return how many make at least ``min_time_s`` seconds."""
    probe = 1
    while True:
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(probe):
            step()
        synchronize(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= min(0.2, min_time_s / 4) or probe >= 1 << 20:
            break
        probe *= 4
    per_step = max(elapsed / probe, 1e-9)
    return max(min_steps, math.ceil(min_time_s / per_step))


def run_workload(
    workload: w.Workload,
    suite: Suite,
    *,
    device: str = "cpu",
    devices: Sequence[Any] | None = None,
    store: Any = None,
    machine: dict[str, Any] | None = None,
    around: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one workload tracked and return its result row (JSON-ready).

    Args:
        workload: What to run.
        suite: The suite it belongs to (for timing and the stored meta).
        device: A torch device string (``cpu``, ``cuda:0``).
        devices: greenai devices to measure; None measures :func:`bench_devices`.
        store: A run store spec (as ``Tracker(store=)``); None stores nothing.
        machine: :func:`greenai.bench.machine.machine_info` of this machine, for the meta.
        around: Called with ``"start"`` just before the timed loop and ``"end"`` just after
            it (synchronised), inside the tracker: the GPU check reads the counter there.

    Returns:
        ``workload``, ``kind``, ``dtype``, ``params``, ``steps``, ``duration_s``, ``flops``,
        ``samples``, ``tflops_per_s``, ``energy_j``, ``uncertainty_j``, ``methods``,
        ``avg_power_w``, ``j_per_tflop``, ``j_per_sample``, ``gpu_energy_j``,
        ``gpu_j_per_tflop``, ``mfu``, ``energy_shared_uncertainty_j`` and ``devices``
        (:func:`device_figures`), ``trials`` (1, or :data:`~greenai.protocol.SHIFTS`
        for a loop shorter than the sensor's update period: see :func:`trials_row`),
        ``offset_spread_j`` (the spread across the trials' offsets, in the uncertainty;
        None with one trial), ``run_id`` (None when not stored), ``status`` (``ok``) and
        ``reason`` (empty).
    """
    from greenai.tracker import Tracker

    prepared = workload.build(device)
    for _ in range(suite.warmup_steps):
        prepared.step()

    def synced() -> None:
        prepared.step()
        synchronize(device)

    # then until the step time is stable (greenai.paired's criterion, at most 4 loops' time)
    warm = warm_up(synced, Protocol(warmup_window=5, warmup_max_s=4 * suite.min_time_s + 0.5))
    steps = plan_steps(prepared.step, device, suite.min_time_s, suite.min_steps)
    meta = {
        "bench": {
            "suite": suite.name,
            "workload": workload.name,
            "kind": workload.kind,
            "dtype": workload.dtype,
            "params": workload.params,
            "device": device,
        },
        "machine": machine or {},
    }
    tracker = Tracker(
        f"bench/{workload.name}",
        devices=bench_devices(device) if devices is None else devices,
        store=store,
        meta=meta,
        dtype=workload.dtype if device.startswith("cuda") else None,
    )
    # A shared machine can slow steps down 100x after planning: stop at 4x the planned time.
    cap_s = 4 * suite.min_time_s + 0.5

    def loop(count: int = steps, floor: int = suite.min_steps, cap: float = cap_s) -> int:
        deadline = time.perf_counter() + cap
        done = 0
        while done < count and (done < floor or time.perf_counter() < deadline):
            prepared.step()
            done += 1
        synchronize(device)
        return done

    trials: list[tuple[int, float]] = []  # (steps, seconds) of each shifted trial
    rounds: list[tuple[int, float]] = []  # (steps, seconds) of each round
    with tracker:
        period_s = sensor_period_s(tracker.devices)
        if around is not None:
            around("start")
        if not needs_shifts(suite.min_time_s, period_s) or period_s is None:
            per_round = max(1, math.ceil(steps / ROUNDS))
            for i in range(ROUNDS):
                t0 = time.perf_counter()
                with tracker.phase(f"round{i}"):
                    n = loop(per_round, 1, cap_s / ROUNDS)
                rounds.append((n, time.perf_counter() - t0))
            done = sum(n for n, _ in rounds)
        else:
            for i in range(SHIFTS):
                time.sleep(shift_s(i, period_s))
                t0 = time.perf_counter()
                with tracker.phase(f"trial{i}"):
                    n = loop()
                trials.append((n, time.perf_counter() - t0))
            done = sum(n for n, _ in trials)
        if around is not None:
            around("end")
        samples = prepared.samples_per_step * done
        if not trials:
            tracker.step(samples=samples)
        tracker.add_flops(prepared.flops_per_step * done)
    row = result_row(workload, tracker.result, done, samples, tracker.run_id)
    row = trials_row(row, tracker, trials) if trials else row
    row.update(round_figures(tracker.result, trials or rounds, "trial" if trials else "round"))
    row["warmup_stable"] = warm.stable
    return row


def round_figures(m: Any, rounds: list[tuple[int, float]], prefix: str) -> dict[str, Any]:
    """Seconds and joules per step in each round (phases ``<prefix><i>``): the row's noise.

    Returns:
        ``round_s_per_step`` (a list) and ``round_j_per_step`` (a list, or None without
        energy).
    """
    seconds = [d / n for n, d in rounds if n]
    energies: list[float] | None = []
    for i, (n, _) in enumerate(rounds):
        got = m.phase(f"{prefix}{i}").energy_j if n else None
        if got is None:
            energies = None
            break
        assert energies is not None
        energies.append(float(got) / n)
    return {"round_s_per_step": seconds, "round_j_per_step": energies}


def trials_row(
    row: dict[str, Any], tracker: Any, trials: list[tuple[int, float]]
) -> dict[str, Any]:
    """A result row's figures from shifted trials (phases ``trial<i>``), not the whole job.

    The job also holds the delays between trials; the row sums the trials alone, and its
    uncertainty is the spread of energy per step across the trials' offsets in quadrature
    with the measurement's own (:func:`greenai.windows.across_offsets`), times the steps.
    """
    m = tracker.result
    phases = [m.phase(f"trial{i}") for i in range(len(trials))]
    steps = sum(n for n, _ in trials)
    duration_s = math.fsum(d for _, d in trials)
    flops = None if m.flops is None or not row["steps"] else m.flops
    updates: dict[str, Any] = {"duration_s": duration_s, "trials": len(trials)}
    if flops is not None:
        updates["tflops_per_s"] = flops / 1e12 / duration_s if duration_s > 0 else None
        if m.mfu is not None and duration_s > 0:
            updates["mfu"] = m.mfu * m.duration_s / duration_s
    if all(p.energy_j is not None for p in phases):
        per_step = [float(p.energy_j or 0.0) / n for p, (n, _) in zip(phases, trials, strict=True)]
        own = math.fsum(float(p.uncertainty_j or 0.0) for p in phases) / steps
        figure = across_offsets(per_step, own)
        energy = math.fsum(float(p.energy_j or 0.0) for p in phases)
        gpus = {d.name for d in m.devices if d.kind == "gpu"}
        by_device = tracker.device_phases()
        gpu_j = math.fsum(
            by_device.get(g, {}).get(f"trial{i}", (0.0, 0.0))[0]
            for g in gpus
            for i in range(len(trials))
        )
        updates.update(
            energy_j=energy,
            uncertainty_j=figure.uncertainty * steps,
            energy_shared_uncertainty_j=energy * shared_rel(m),
            offset_spread_j=figure.spread * steps,
            avg_power_w=energy / duration_s if duration_s > 0 else None,
            j_per_tflop=energy / (flops / 1e12) if flops else None,
            j_per_sample=energy / row["samples"] if row["samples"] else None,
            gpu_energy_j=gpu_j if gpus else None,
            gpu_j_per_tflop=gpu_j / (flops / 1e12) if gpus and flops else None,
        )
    return {**row, **updates}


def shared_rel(m: Any) -> float:
    """The share of ``m``'s energy that its devices' shared scale error makes up (0..1).

    A model's or a power sensor's (``DeviceEnergy.shared_uncertainty_j``): the same error
    in every run on those devices, so it cancels between two of them.
    """
    if not m.energy_j:
        return 0.0
    return float(math.fsum(d.shared_uncertainty_j for d in m.devices) / m.energy_j)


def device_figures(m: Any) -> dict[str, Any]:
    """What ``greenai compare`` needs to cancel a scale error two rows share.

    Returns:
        ``energy_shared_uncertainty_j``: the part of ``uncertainty_j`` that is the devices'
        shared scale error (J; None without energy); ``devices``: each measured device's
        ``name``, ``kind`` and ``method``.
    """
    return {
        "energy_shared_uncertainty_j": None if m.energy_j is None else shared_rel(m) * m.energy_j,
        "devices": [{"name": d.name, "kind": d.kind, "method": d.method} for d in m.devices],
    }


def result_row(
    workload: w.Workload, m: Any, steps: int, samples: int, run_id: str | None
) -> dict[str, Any]:
    """The JSON-ready figures of one workload's :class:`~greenai.Measurement`."""
    gpu = [d.energy_j for d in m.devices if d.kind == "gpu"]
    gpu_j = math.fsum(gpu) if gpu else None
    return {
        "workload": workload.name,
        "kind": workload.kind,
        "dtype": workload.dtype,
        "params": workload.params,
        "steps": steps,
        "duration_s": m.duration_s,
        "flops": m.flops,
        "samples": samples,
        "tflops_per_s": m.tflops_per_s,
        "energy_j": m.energy_j,
        "uncertainty_j": m.uncertainty_j,
        "methods": list(m.methods),
        "avg_power_w": m.avg_power_w,
        "j_per_tflop": m.j_per_tflop,
        "j_per_sample": m.energy_j / samples if m.energy_j is not None and samples else None,
        "gpu_energy_j": gpu_j,
        "gpu_j_per_tflop": gpu_j / m.tflop if gpu_j is not None and m.flops else None,
        "mfu": m.mfu,
        **device_figures(m),
        "trials": 1,
        "offset_spread_j": None,
        "run_id": run_id,
        "status": "ok",
        "reason": "",
    }


_FIGURES = (
    "steps",
    "duration_s",
    "flops",
    "samples",
    "tflops_per_s",
    "energy_j",
    "uncertainty_j",
    "avg_power_w",
    "j_per_tflop",
    "j_per_sample",
    "gpu_energy_j",
    "gpu_j_per_tflop",
    "mfu",
    "energy_shared_uncertainty_j",
    "trials",
    "offset_spread_j",
    "round_s_per_step",
    "round_j_per_step",
    "warmup_stable",
    "run_id",
)


def failed_row(workload: w.Workload, reason: str) -> dict[str, Any]:
    """The row of a workload that raised: its identity, ``status`` ``failed`` and the reason."""
    row: dict[str, Any] = dict.fromkeys(_FIGURES)
    row.update(
        workload=workload.name,
        kind=workload.kind,
        dtype=workload.dtype,
        params=workload.params,
        methods=[],
        devices=[],
        status="failed",
        reason=reason,
    )
    return row


def _all_devices(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each device the rows measured, once, in the order first seen."""
    seen = {json.dumps(d, sort_keys=True): d for r in rows for d in r.get("devices") or []}
    return list(seen.values())


def _release(device: str) -> None:
    """Free what a failed workload left on the GPU (an OOM must not fail the next one)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def run_suite(
    suite: Suite,
    *,
    device: str = "cpu",
    devices: Sequence[Any] | None = None,
    store: Any = None,
    only: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every workload of ``suite`` (or those whose name contains one of ``only``).

    Returns:
        The results document: ``format``, ``suite``, ``device``, ``created_at`` (UTC),
        ``machine`` (:func:`~greenai.bench.machine.machine_info`), ``devices`` (each device
        the rows measured: ``name``, ``kind``, ``method``) and ``results`` (rows of
        :func:`run_workload`; a workload that raised is a row of :func:`failed_row`, with
        ``status`` ``failed`` and the error as ``reason``, and the suite goes on).
    """
    from greenai.bench.machine import machine_info
    from greenai.checkpoint import resolve_store

    chosen = [x for x in suite.workloads if not only or any(o in x.name for o in only)]
    if not chosen:
        raise ConfigError(
            f"no workload of suite {suite.name!r} matches {list(only)}; it has "
            f"{[x.name for x in suite.workloads]}"
        )
    machine = machine_info()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    store = resolve_store(store)
    rows = []
    for workload in chosen:
        if progress is not None:
            progress(workload.name)
        try:
            row = run_workload(
                workload, suite, device=device, devices=devices, store=store, machine=machine
            )
        except Exception as exc:  # one workload that cannot run here must not lose the others
            row = failed_row(workload, f"{type(exc).__name__}: {exc}")
            if progress is not None:
                progress(f"{workload.name} failed: {row['reason']}")
            _release(device)
        rows.append(row)
    return {
        "format": FORMAT,
        "suite": suite.name,
        "device": device,
        "created_at": created,
        "machine": machine,
        "devices": _all_devices(rows),
        "results": rows,
    }
