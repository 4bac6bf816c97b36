"""``sweep()``: run each compression method, measure it the same way, and tabulate.

For every method (and the baseline, always first) the sweep applies the method to a copy,
evaluates it (``eval_fn``), counts its FLOPs, weighs it, warms it up until its latency is
stable and times single calls for latency. Then all rows are measured together by the A/B
protocol of :mod:`greenai.paired`: rounds in which every row runs one window of ``N``
calls, in a new seeded random order each round, inside one :class:`Tracker` (one tracked
phase per window), until every row's time ratio to the baseline is known to the
protocol's precision or its budget is spent. ``N`` is chosen so a window lasts at least
``periods_per_window`` sampler periods and ``min_window_s``: a window shorter than a few
sensor updates would measure the sensor, not the model. Energy per inference is window
energy / ``N``; its confidence interval combines the spread of the rounds (Student t,
95%) with the measurement's own uncertainty, in quadrature
(:func:`greenai.windows.across_offsets`). ``energy_vs_baseline`` and ``time_vs_baseline``
are paired per-round ratios with 95% intervals; ``verdict`` claims a change only when the
energy interval excludes 1, and a saving that cannot be real (dense FLOPs and size not
lower, no sparse or low-bit kernel) becomes a note. Windows shorter than a GPU sensor's
update period get at least :data:`~greenai.protocol.SHIFTS` rounds at shifted start
offsets (:mod:`greenai.protocol`), so the spread covers the sensor's phase too.

Applying the method and the user's ``finetune_fn`` are tracked phases of their own
(``compress_*`` and ``finetune_*`` columns); :mod:`greenai.compress.breakeven` weighs that
one-off energy against the energy saved per inference.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from greenai.compress.base import Baseline, Method, device_of
from greenai.compress.breakeven import break_even_columns
from greenai.compress.rows import SweepRow, call_latencies, row_energy, row_ratios
from greenai.compress.spec import parse_methods
from greenai.compress.stats import (
    model_size_bytes,
    parameter_count,
    pareto_front,
    sparsity,
)
from greenai.errors import ConfigError
from greenai.paired import (
    Protocol,
    Rounds,
    RoundsInterrupted,
    run_rounds,
)
from greenai.paired import warm_up as stable_warm_up
from greenai.protocol import SHIFTS, needs_shifts, sensor_period_s, shift_s
from greenai.tracker import Tracker

if TYPE_CHECKING:
    import pandas as pd

    from greenai.measurement import Measurement

__all__ = ["COLUMNS", "SweepInterrupted", "sweep"]

COLUMNS: tuple[str, ...] = (
    "label",
    "method",
    "setting",
    "status",
    "reason",
    "device",
    "batch_size",
    "sparsity",
    "params",
    "size_bytes",
    "compression_ratio",
    "flops_nominal",
    "flops_executed",
    "accuracy",
    "accuracy_delta",
    "latency_p50_ms",
    "latency_p99_ms",
    "throughput_samples_per_s",
    "inferences_per_window",
    "calls_per_window",
    "repeats",
    "energy_per_inference_j",
    "energy_ci_j",
    "energy_repeat_ci_j",
    "energy_uncertainty_j",
    "energy_per_window_j",
    "energy_per_sample_j",
    "energy_vs_baseline",
    "energy_vs_baseline_low",
    "energy_vs_baseline_high",
    "time_vs_baseline",
    "time_vs_baseline_low",
    "time_vs_baseline_high",
    "verdict",
    "j_per_tflop",
    "kwh_per_1k_inferences",
    "co2e_g_per_1k_inferences",
    "energy_method",
    "compress_s",
    "compress_energy_j",
    "compress_energy_uncertainty_j",
    "finetune_s",
    "finetune_energy_j",
    "finetune_energy_uncertainty_j",
    "energy_saved_per_inference_j",
    "energy_saved_ci_j",
    "break_even_inferences",
    "break_even_low",
    "break_even_high",
    "break_even",
    "pareto",
    "notes",
)
"""Columns of the sweep table, in order (see docs/compression.md for each one)."""

_MAX_WINDOW_FACTOR = 5.0
"""A window whose calls slow down (a busy host) stops at this many times its planned length."""


def sweep(
    model: nn.Module,
    methods: Sequence[Method | str] | str,
    example_inputs: Any,
    eval_fn: Callable[[nn.Module], float] | None = None,
    repeats: int = 5,
    device: torch.device | str | None = None,
    *,
    finetune_fn: Callable[[nn.Module], nn.Module | None] | None = None,
    warmup_s: float = 0.2,
    latency_s: float = 0.2,
    min_window_s: float = 0.2,
    periods_per_window: int = 10,
    name: str = "compress-sweep",
    protocol: Protocol | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **track_options: Any,
) -> pd.DataFrame:
    """Compress ``model`` with each method and measure accuracy, size, speed and energy.

    Args:
        model: The model to compress (never modified: every method works on a copy).
        methods: :class:`~greenai.compress.Method` objects or spec strings (``"l1:0.5"``,
            see :mod:`greenai.compress.spec`), or one comma-separated string. The baseline
            is always added as the first row.
        example_inputs: One call's positional inputs: a tensor or a tuple of them. The
            first tensor's first dimension is the batch size.
        eval_fn: ``eval_fn(model) -> float``, higher is better (accuracy), run once per row
            outside the measured windows.
        repeats: Fewest rounds (>= 2: the confidence interval comes from them), when
            ``protocol`` is None.
        device: Where to run (``"cpu"``, ``"cuda"``); the model's own device when None.
        finetune_fn: ``finetune_fn(model) -> model or None``: the user's short recovery
            training, run on each compressed copy (not the baseline) before ``eval_fn``;
            it may train in place (return None) or return a new model. Its time and
            energy are the row's ``finetune_*`` columns, a tracked phase of their own.
        warmup_s: Seconds of calls before anything is timed (at least 3 calls).
        latency_s: Seconds of single timed calls for the latency percentiles (at least 20
            calls, at most 1000).
        min_window_s: Shortest measured window, in seconds.
        periods_per_window: Shortest measured window, in sampler periods.
        name: Name of the sweep's tracker (and stored run, with ``store=``).
        protocol: The A/B rules (:class:`greenai.paired.Protocol`): warm-up criterion,
            rounds, precision, budget, outliers. Default: ``repeats`` to 30 rounds until
            every ratio is known within ±5%, at most 60 s of rounds.
        progress: ``progress(stage, done, total)`` after each step: stage ``"prepare"``
            (rows compressed, evaluated, warmed up) then ``"rounds"`` (rounds measured;
            the total is the protocol's most).
        **track_options: Passed to :class:`~greenai.Tracker` (``devices``, ``period_s``,
            ``country``, ``pue``, ``store``...). CO2e uses the world-average grid unless a
            grid option is given.

    Returns:
        One row per method and setting (see :data:`COLUMNS`); methods that cannot run here
        are rows with ``status == "skipped"`` and the ``reason``. ``frame.attrs`` holds the
        sweep's :class:`~greenai.Measurement` (``"measurement"``) and its settings.

    Raises:
        ConfigError: Bad arguments, or the uncompressed model does not run on the inputs.
        SweepInterrupted: Ctrl-C during the rounds, after 2 or more: it holds the table
            of the rounds done (earlier, the ``KeyboardInterrupt`` itself).
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"sweep needs a torch.nn.Module, got {type(model).__name__}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise ConfigError(
            f"repeats must be an int >= 2 (the confidence interval needs a spread), got {repeats!r}"
        )
    for arg, value in (("warmup_s", warmup_s), ("latency_s", latency_s)):
        if not (isinstance(value, int | float) and value >= 0):
            raise ConfigError(f"{arg} must be >= 0 seconds, got {value!r}")
    if not (isinstance(min_window_s, int | float) and min_window_s > 0):
        raise ConfigError(f"min_window_s must be > 0 seconds, got {min_window_s!r}")
    rows = [SweepRow(m, i) for i, m in enumerate([Baseline(), *_methods(methods)])]
    try:
        target = torch.device(device) if device is not None else device_of(model)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but CUDA is not available here")
    inputs = _inputs(example_inputs, target)
    base = copy.deepcopy(model).to(target).eval()
    try:
        with torch.no_grad():
            base(*inputs)
    except Exception as exc:
        raise ConfigError(
            f"the model does not run on example_inputs ({type(exc).__name__}: {exc})"
        ) from exc
    devices = track_options.pop("devices", None)
    if devices is None:
        from greenai.devices.discovery import discover

        devices = discover()
    from greenai.sampling.sampler import default_period_s

    period_s = track_options.get("period_s") or default_period_s(devices)
    window_s = max(float(min_window_s), periods_per_window * period_s)
    if not {"country", "region", "carbon_intensity_g_per_kwh"} & set(track_options):
        track_options["country"] = "WORLD"
    batch = _batch_size(inputs)
    settings = {
        "device": str(target),
        "batch_size": batch,
        "repeats": repeats,
        "window_s": window_s,
        "period_s": period_s,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if finetune_fn is not None and not callable(finetune_fn):
        raise ConfigError(f"finetune_fn must be callable, got {finetune_fn!r}")
    if protocol is None:
        protocol = Protocol(min_rounds=repeats, max_rounds=max(30, repeats), budget_s=60.0)
    elif not isinstance(protocol, Protocol):
        raise ConfigError(f"protocol must be a greenai.paired.Protocol, got {protocol!r}")
    settings["protocol"] = protocol.describe()
    run = _Runner(base, inputs, target, eval_fn, protocol, warmup_s, latency_s, window_s)
    run.finetune_fn = finetune_fn
    report = progress or (lambda stage, done, total: None)
    job = Tracker(name, devices=devices, **track_options)
    interrupted = None
    try:
        with job:
            for i, row in enumerate(rows):
                run.row(job, row)
                report("prepare", i + 1, len(rows))
            rounds = run.rounds(job, rows, report)
    except RoundsInterrupted as exc:
        if exc.rounds.kept.count(True) < 2:  # no interval from fewer: nothing to show
            raise
        rounds, interrupted = exc.rounds, exc
    settings.update(
        rounds_stopped_by=rounds.stopped_by,
        rounds_remeasured=rounds.remeasured,
        round_orders=rounds.orders,
    )
    frame = _frame(rows, job.result, batch, str(target), settings, rounds, protocol)
    if interrupted is not None:
        raise SweepInterrupted(frame, interrupted) from None
    return frame


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a sweep's rounds, after at least 2 complete rounds.

    Attributes:
        frame: The sweep's table from the rounds done (its
            ``attrs["rounds_stopped_by"]`` is ``"interrupted"``).
        rounds: The rounds done.
        exit_code: 128 + the signal's number (130 for Ctrl-C).
    """

    def __init__(self, frame: pd.DataFrame, cause: RoundsInterrupted) -> None:
        super().__init__(*cause.args)
        self.frame = frame
        self.rounds = cause.rounds
        self.signum = cause.signum
        self.exit_code = cause.exit_code


def _methods(methods: Sequence[Method | str] | str) -> list[Method]:
    if isinstance(methods, str):
        out = parse_methods(methods)
    else:
        out = []
        for m in methods:
            if isinstance(m, str):
                out.extend(parse_methods([m]))
            elif isinstance(m, Method):
                out.append(m)
            else:
                raise ConfigError(f"methods must be Method objects or specs, got {m!r}")
    labels = [m.label for m in out]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ConfigError(f"each method and setting must appear once; repeated: {dupes}")
    return out


def _inputs(example_inputs: Any, device: torch.device) -> tuple[Any, ...]:
    items = example_inputs if isinstance(example_inputs, tuple | list) else (example_inputs,)
    if not any(isinstance(x, torch.Tensor) for x in items):
        raise ConfigError("example_inputs must be a tensor or a tuple holding at least one")
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in items)


def _batch_size(inputs: tuple[Any, ...]) -> int:
    first = next(x for x in inputs if isinstance(x, torch.Tensor))
    return int(first.shape[0]) if first.dim() else 1


class _FinetuneError(RuntimeError):
    """The user's ``finetune_fn`` raised: the row is skipped with its reason."""


class _Runner:
    """Measures one row after another inside the sweep's tracker."""

    def __init__(
        self,
        base: nn.Module,
        inputs: tuple[Any, ...],
        device: torch.device,
        eval_fn: Callable[[nn.Module], float] | None,
        protocol: Protocol,
        warmup_s: float,
        latency_s: float,
        window_s: float,
    ) -> None:
        self.base, self.inputs, self.device, self.eval_fn = base, inputs, device, eval_fn
        self.protocol, self.warmup_s, self.latency_s = protocol, warmup_s, latency_s
        self.window_s = window_s
        self.finetune_fn: Callable[[nn.Module], nn.Module | None] | None = None
        self.sync: Callable[[], None] = (
            (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        )

    def row(self, job: Tracker, row: SweepRow) -> None:
        method, values = row.method, row.values
        try:
            ok, why = method.available(self.device)
        except Exception as exc:  # a broken probe is a reason, not a crash
            ok, why = False, f"availability check failed: {type(exc).__name__}: {exc}"
        if not ok:
            values.update(status="skipped", reason=why)
            return
        compressed: nn.Module | None = None
        try:
            compressed = self._compress(job, row)
            self._measure(job, row, compressed)
        except Exception as exc:
            if row.index == 0:
                raise
            row.reset()
            why = str(exc) if isinstance(exc, _FinetuneError) else f"{type(exc).__name__}: {exc}"
            values.update(status="skipped", reason=why)
        finally:
            compressed = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _compress(self, job: Tracker, row: SweepRow) -> nn.Module:
        """Apply the method (and the fine-tuning), each in a tracked, timed phase."""
        method = row.method
        if row.index == 0:
            return method.apply(self.base, self.inputs)
        phase = f"row{row.index}-compress"
        t0 = time.perf_counter()
        with job.phase(phase):
            model = method.apply(self.base, self.inputs)
            self.sync()
        row.values["compress_s"] = time.perf_counter() - t0
        row.one_off["compress"] = phase
        if self.finetune_fn is None:
            return model
        before = _sparsity_or_nan(model)
        phase = f"row{row.index}-finetune"
        t0 = time.perf_counter()
        with job.phase(phase):
            try:
                tuned = self.finetune_fn(model)
            except Exception as exc:
                raise _FinetuneError(f"finetune_fn failed: {type(exc).__name__}: {exc}") from exc
            self.sync()
        row.values["finetune_s"] = time.perf_counter() - t0
        row.one_off["finetune"] = phase
        if tuned is not None and not isinstance(tuned, nn.Module):
            raise ConfigError(f"finetune_fn must return a model or None, got {tuned!r}")
        out = tuned if tuned is not None else model
        out.eval()
        after = _sparsity_or_nan(out)
        if before - after > 0.01:
            row.notes.append(
                f"fine-tuning re-grew pruned weights (sparsity {before:.1%} -> {after:.1%}): "
                "keep the masks (l1-masked) or re-apply them in finetune_fn to hold them at 0"
            )
        return out

    def _measure(self, job: Tracker, row: SweepRow, model: nn.Module) -> None:
        notes = [*row.method.notes, *row.notes]
        values = row.values
        values["status"] = "ok"
        for column, measure in (
            ("sparsity", sparsity),
            ("params", parameter_count),
            ("size_bytes", lambda m: model_size_bytes(m, notes)),
        ):
            try:
                values[column] = measure(model)
            except Exception as exc:  # an exotic weight format: a gap, not a lost row
                notes.append(f"{column} not computed: {type(exc).__name__}: {exc}")
        values.update(_flops(model, self.inputs, notes))
        if self.eval_fn is not None:
            with torch.no_grad():
                score = self.eval_fn(model)
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise ConfigError(f"eval_fn must return a number, got {score!r}")
            values["accuracy"] = float(score)
            model.eval()  # an eval_fn may leave the model in training mode: measure inference
        inputs = self.inputs

        def call() -> None:
            model(*inputs)

        def synced() -> None:
            call()
            self.sync()

        # no_grad, not inference_mode: packed low-bit weights (optimum-quanto) run through an
        # autograd Function, which inference tensors break
        with torch.no_grad():
            _warm_up(call, self.sync, self.warmup_s)
            warm = stable_warm_up(synced, self.protocol)
            latencies = call_latencies(call, self.sync, self.latency_s)
        if not warm.stable:
            notes.append(
                f"latency not stable after {warm.duration_s:.3g} s of warm-up "
                f"({warm.calls} calls): measured anyway"
            )
        p50 = float(np.percentile(latencies, 50))
        # the mean, not the median: a heavy tail (a busy host) sets the window's length
        mean_s = statistics.fmean(latencies)
        row.call_count = max(1, math.ceil(self.window_s / max(mean_s, 1e-9)))
        # A window shorter than the GPU sensor's update is seen at one phase of it:
        # repeat it at shifted start offsets (greenai.protocol).
        row.shifted = needs_shifts(row.call_count * mean_s, sensor_period_s(job.devices))
        if row.shifted:
            notes.append(
                f"windows ({row.call_count * mean_s * 1e3:.3g} ms) shorter than the GPU "
                "sensor's update period: rounds at shifted start offsets"
            )
        row.notes = notes
        row.model = model
        values.update(
            latency_p50_ms=p50 * 1e3,
            latency_p99_ms=float(np.percentile(latencies, 99)) * 1e3,
            inferences_per_window=row.call_count,
        )

    def rounds(
        self, job: Tracker, rows: list[SweepRow], report: Callable[[str, int, int], None]
    ) -> Rounds:
        """Measure every prepared row in interleaved rounds (:func:`greenai.paired.run_rounds`)."""
        live = [row for row in rows if row.model is not None]
        protocol = self.protocol
        period_s = sensor_period_s(job.devices)
        if any(row.shifted for row in live):
            protocol = dataclasses.replace(
                protocol,
                min_rounds=max(protocol.min_rounds, SHIFTS),
                max_rounds=max(protocol.max_rounds, SHIFTS),
            )
        failed: dict[int, str] = {}

        def measure(v: int, r: int) -> float:
            row = live[v]
            if v in failed:
                row.phases.append("")
                row.durations_s.append(math.nan)
                row.calls.append(0)
                return math.nan
            if row.shifted and period_s is not None:
                time.sleep(shift_s(r, period_s))
            phase = f"row{row.index}-r{r}"
            model, inputs, calls = row.model, self.inputs, row.call_count
            assert model is not None
            t0 = time.perf_counter()
            deadline = t0 + _MAX_WINDOW_FACTOR * self.window_s
            done = 0
            try:
                with torch.no_grad(), job.phase(phase):
                    while done < calls and (done == 0 or time.perf_counter() < deadline):
                        model(*inputs)
                        done += 1
                    self.sync()
            except Exception as exc:
                if v == 0:
                    raise
                failed[v] = f"failed in round {r}: {type(exc).__name__}: {exc}"
                done = 0
            duration = time.perf_counter() - t0
            row.phases.append(phase if done else "")
            row.durations_s.append(duration)
            row.calls.append(done)
            return duration / done if done else math.nan

        try:
            result = run_rounds(
                measure,
                len(live),
                protocol,
                on_round=lambda n: report("rounds", n, protocol.max_rounds),
            )
        except RoundsInterrupted as exc:  # keep the rounds done: the table shows them
            for row in live:  # a window of the round cut short is left out
                done = len(exc.rounds.kept)
                del row.phases[done:], row.durations_s[done:], row.calls[done:]
            self._finish_rows(live, exc.rounds, failed)
            raise
        self._finish_rows(live, result, failed)
        return result

    def _finish_rows(self, live: list[SweepRow], result: Rounds, failed: dict[int, str]) -> None:
        """Each row's figures from the rounds (a row that failed in one is skipped)."""
        for v, row in enumerate(live):
            row.model = None
            if v in failed:
                row.reset()
                row.values.update(status="skipped", reason=failed[v])
                continue
            kept = [k and n > 0 for k, n in zip(result.kept, row.calls, strict=True)]
            calls = [n for n, k in zip(row.calls, kept, strict=True) if k]
            seconds = [d for d, k in zip(row.durations_s, kept, strict=True) if k]
            if calls and min(calls) < row.call_count:
                row.notes.append(
                    f"calls slowed down after calibration: windows cut at "
                    f"{_MAX_WINDOW_FACTOR:g}× their planned length "
                    f"({min(calls)} of {row.call_count} calls)"
                )
            row.values.update(
                calls_per_window=calls,
                throughput_samples_per_s=sum(calls) * _batch_size(self.inputs) / math.fsum(seconds),
                repeats=len(calls),
                notes="; ".join(row.notes),
            )
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _sparsity_or_nan(model: nn.Module) -> float:
    try:
        return sparsity(model)
    except Exception:  # an exotic weight format: no note rather than a lost row
        return math.nan


def _flops(model: nn.Module, inputs: tuple[Any, ...], notes: list[str]) -> dict[str, float]:
    from greenai.flops import count_flops

    try:
        count = count_flops(model, *inputs)
    except Exception as exc:  # FLOPs are a column, not a reason to drop the row
        notes.append(f"FLOPs not counted: {type(exc).__name__}: {exc}")
        return {}
    if count.nominal == 0 and count.uncounted:  # an uncounted kernel: a note, never a bare 0
        ops = ", ".join(sorted(count.uncounted))
        notes.append(f"FLOPs not counted: {ops} has no FLOP formula")
        return {}
    return {"flops_nominal": float(count.nominal), "flops_executed": float(count.executed)}


def _warm_up(call: Callable[[], None], sync: Callable[[], None], seconds: float) -> None:
    start, done = time.perf_counter(), 0
    while done < 3 or time.perf_counter() - start < seconds:
        call()
        done += 1
    sync()


def _frame(
    rows: list[SweepRow],
    m: Measurement,
    batch: int,
    device: str,
    settings: dict[str, Any],
    rounds: Rounds,
    protocol: Protocol,
) -> pd.DataFrame:
    import pandas as pd

    ratios = row_ratios(rows, m, rounds, protocol)
    records = []
    for row in rows:
        record: dict[str, Any] = {
            "label": row.method.label,
            "method": row.method.name,
            "setting": row.method.setting,
            "status": "ok",
            "reason": "",
            "device": device,
            "batch_size": batch,
            "notes": "",
            **row.values,
        }
        if row.values.get("status") == "ok":
            record.update(row_energy(row, m, batch, rounds.kept))
            extra = dict(ratios.get(row.index, {}))
            more = extra.pop("extra_notes", [])
            record.update(extra)
            record["notes"] = "; ".join(x for x in (record.get("notes") or "", *more) if x)
        records.append(record)
    frame = pd.DataFrame.from_records(records).reindex(columns=list(COLUMNS))
    base = frame.iloc[0]
    ok = frame["status"] == "ok"
    for col, out in (("size_bytes", "compression_ratio"),):
        frame[out] = np.where(ok, base[col] / frame[col].astype(float), np.nan)
    frame["accuracy_delta"] = frame["accuracy"].astype(float) - float(base["accuracy"])
    for col, values in break_even_columns(frame).items():
        frame[col] = values
    frame["pareto"] = pareto_front(
        frame["energy_per_inference_j"].astype(float).tolist(),
        frame["accuracy"].astype(float).tolist(),
    )
    with contextlib.suppress(KeyError, TypeError, ValueError):
        frame["repeats"] = frame["repeats"].astype("Int64")
        frame["inferences_per_window"] = frame["inferences_per_window"].astype("Int64")
        frame["params"] = frame["params"].astype("Int64")
        frame["size_bytes"] = frame["size_bytes"].astype("Int64")
    frame.attrs.update(settings, measurement=m)
    result: pd.DataFrame = frame
    return result
