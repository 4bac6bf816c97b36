"""Tracker and ``track()``: wrap any loop and get a :class:`~greenai.Measurement`.

``step()`` and ``phase()`` only record a timestamp on the caller's thread; every device read
happens on the sampler thread. The tracker's live thread settles the marks into running
figures every few seconds (:mod:`greenai.ledger`) and gives snapshots to the sinks
(:mod:`greenai.sinks`), so a checkpoint, a snapshot or ``stop()`` costs what is new.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import functools
import itertools
import logging
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from greenai.busy import CpuWatch
from greenai.carbon.accounting import Accounting, account
from greenai.checkpoint import StoreSink, resolve_store
from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.devices.base import Device, Scope
from greenai.distributed.cluster import cluster_identity
from greenai.distributed.session import DistributedSession, open_session
from greenai.errors import ConfigError, MeasurementWarning, TrackerStateError
from greenai.interrupts import shield
from greenai.ledger import OTHER_PHASE, Ledger, OpenPhase, Point, point_at
from greenai.measurement import DeviceEnergy, Measurement, PhaseEnergy, StepEnergy
from greenai.sampling.sampler import Sampler
from greenai.sinks import Sink, SinkSet, check_sinks, mark_background, refuse_from_background
from greenai.tags import merge_tags
from greenai.timeline import RETENTION_S, Pass, Timeline
from greenai.windows import Spans, linear, sum_devices

if TYPE_CHECKING:
    import pandas as pd

    from greenai.carbon.embodied import EmbodiedFigures
    from greenai.carbon.series import IntensitySeries

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS = (
    "devices",
    "period_s",
    "baseline_s",
    "clock",
    "pue",
    "country",
    "region",
    "cloud",
    "carbon_intensity_g_per_kwh",
    "carbon_intensity_series",
    "renewable_share",
    "market_factor_g_per_kwh",
    "market_factor_kind",
    "wue_l_per_kwh",
    "flops_per_step",
    "dtype",
    "store",
    "checkpoint_s",
    "meta",
    "tags",
    "distributed",
    "sinks",
    "board_gain",
    "scope",
    "sync",
)
"""Keyword options of :class:`Tracker` and :func:`track`."""

log = logging.getLogger("greenai")

UNSETTLED_PHASE = "(not yet attributed)"
"""In a running snapshot: the job's last seconds, not yet settled into phases."""

_current: contextvars.ContextVar[Tracker | None] = contextvars.ContextVar(
    "greenai_tracker", default=None
)


def current() -> Tracker | None:
    """The innermost running tracker in this context, for code inside a decorated function."""
    return _current.get()


class Tracker:
    """Measure the energy of everything between :meth:`start` and :meth:`stop`.

    Args:
        name: A label for the job (stored with the result).
        devices: The devices to read. None discovers what this machine has
            (:func:`greenai.devices.discover`); an empty list measures time only.
        period_s: Sampling period in seconds; by default it follows the devices' own update
            periods (about 100 ms for NVIDIA GPUs).
        baseline_s: Seconds of idle sampling before the job starts; the result then reports
            idle power and energy above idle.
        clock: Time source (tests inject :class:`greenai.testing.FakeClock`).
        pue: Power usage effectiveness of the facility (≥ 1); facility energy = IT × PUE.
        country: ISO alpha-3 code of the grid (``"FRA"``), for location-based CO2e from
            codecarbon's shipped data; ``"WORLD"`` for its world average.
        region: Sub-national grid (a US state, Canadian or Chinese province, Nordic zone),
            or with ``cloud`` the cloud region (``"us-central1"``, ``"eu-west-1"``).
        cloud: ``"aws"``, ``"gcp"`` or ``"azure"``: the grid is that cloud region's, from
            the cloud data codecarbon ships (needs ``region``; excludes ``country``).
        carbon_intensity_g_per_kwh: Grid intensity to use instead of a lookup.
        carbon_intensity_series: Grid intensity over time (hourly or finer): a CSV of UTC
            times and g CO2e/kWh, or a pandas Series with a DatetimeIndex
            (:func:`greenai.carbon.series.load_intensity_series`). Checked here; at stop the
            power timeline is charged at each hour's intensity, giving
            ``Measurement.co2e_series_kg`` beside the yearly-average figure.
        renewable_share: Share in [0, 1] of energy under renewable contracts (PPAs), for
            market-based CO2e.
        market_factor_g_per_kwh: For market-based CO2e, the factor of the energy not
            covered by ``renewable_share`` (g CO2e/kWh): a supplier-specific rate or a
            residual mix. Without it the grid average stands in (the last-resort tier).
        market_factor_kind: What that factor is: ``"supplier"`` or ``"residual_mix"``.
        wue_l_per_kwh: Water usage effectiveness (litres per IT kWh), for ``water_l``.
        flops_per_step: FLOPs of one step, when known; multiplied by the number of steps.
        dtype: The compute dtype (``"bf16"``, ``torch.float16``...), to find the GPU's peak
            for MFU; by default the dtype of the model given to :meth:`count_flops`.
        store: Record the run in a run store: ``True`` for the default
            (``$GREENAI_HOME/runs.db`` or ``./.greenai/runs.db``), a path, or a
            :class:`greenai.store.RunStore`. Off by default for library use.
        checkpoint_s: Seconds between snapshots given to the sinks (the store checkpoints
            at each); a killed process keeps everything up to its last checkpoint.
        meta: With a store, extra facts to record with the run (a dict of JSON values).
        tags: With a store, what the run belongs to, for fleet roll-ups: ``{"team": ...,
            "project": ..., "model": ..., "site": ..., any other: ...}`` (strings), over
            those of ``GREENAI_TAGS`` (see :mod:`greenai.tags`).
        distributed: None joins a torch.distributed job when a process group is up, True
            requires one, False measures this process alone (docs/distributed.md).
        sinks: Objects with ``start(job)``, ``update(snapshot)`` and ``finish(result)``
            (:class:`greenai.sinks.Sink`) that receive the job's figures while it runs.
        scope: ``"machine"`` (default): what the hardware drew, whoever used it;
            ``"process"``: each device's share charged to this process's tree
            (:func:`greenai.devices.attribution.apply_scope`), for found and given devices.
        sync: Make every mark (start, ``step()``, phase entry and exit, stop) wait for the
            GPU: ``True`` calls ``torch.cuda.synchronize()`` before taking the time, a
            function is called instead (another accelerator's, or several devices'). CUDA
            runs work asynchronously, so without it a mark falls where Python queued the
            work, not where the GPU did it: per-step figures are right on average, phase
            splits (forward against backward) can be far off. It costs the overlap of
            CPU and GPU work at every mark: use it to study phases, not in production
            runs. A note on the result says when ``True`` found no CUDA device.
        board_gain: Add each GPU board's gain error (about ±5%,
            :data:`greenai.windows.BOARD_GAIN_REL`; Yang, Adámek and Armour, SC'24) to the
            uncertainty as a shared part, for figures compared with a wall meter or across
            boards. Off by default: repeated runs on one board share its gain. A note on
            the result says when it is on.

    Raises:
        ConfigError: An unknown option or an unusable value. An unknown country or region
            is reported by :meth:`start`, before anything is measured.
    """

    def __init__(
        self,
        name: str = "job",
        *,
        devices: Sequence[Device] | None = None,
        period_s: float | None = None,
        baseline_s: float = 0.0,
        clock: Clock | None = None,
        pue: float = 1.0,
        country: str | None = None,
        region: str | None = None,
        cloud: str | None = None,
        carbon_intensity_g_per_kwh: float | None = None,
        carbon_intensity_series: Any = None,
        renewable_share: float | None = None,
        market_factor_g_per_kwh: float | None = None,
        market_factor_kind: Any = None,
        wue_l_per_kwh: float | None = None,
        flops_per_step: float | None = None,
        dtype: Any = None,
        store: Any = None,
        checkpoint_s: float = 5.0,
        meta: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        distributed: bool | None = None,
        sinks: Sequence[Sink] | None = None,
        scope: Scope = "machine",
        board_gain: bool = False,
        sync: bool | Callable[[], Any] = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(_unknown_options_message(unknown))
        if not isinstance(name, str) or not name:
            raise ConfigError(f"the job name must be a non-empty string, got {name!r}")
        if not isinstance(board_gain, bool):
            raise ConfigError(f"board_gain must be True or False, got {board_gain!r}")
        if not (isinstance(sync, bool) or callable(sync)):
            raise ConfigError(
                "sync must be True (torch.cuda.synchronize before each mark), False, or a"
                f" function to call before each mark; got {sync!r}"
            )
        _check_seconds("period_s", period_s, allow_none=True)
        _check_seconds("checkpoint_s", checkpoint_s)
        if not (_is_number(baseline_s) and math.isfinite(baseline_s) and baseline_s >= 0):
            raise ConfigError(
                f"baseline_s must be a finite number >= 0 seconds, got {baseline_s!r}"
            )
        if isinstance(devices, Device | str | bytes):
            raise ConfigError(f"devices takes a list of devices: devices=[{devices!r}]")
        if devices is not None:
            try:
                devices = list(devices)
            except TypeError:
                raise ConfigError(
                    f"devices takes a list of greenai Device objects, got {devices!r}"
                ) from None
            bad = [d for d in devices if not isinstance(d, Device)]
            if bad:
                raise ConfigError(
                    f"devices must be greenai Device objects (greenai.devices.discover() lists"
                    f" this machine's); got {bad[0]!r}"
                )
            names = [d.name for d in devices]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"device names must be unique; repeated: {dupes}")
        if flops_per_step is not None:
            _check_flops("flops_per_step", flops_per_step)
        if dtype is not None:
            from greenai.flops.peaks import check_dtype

            check_dtype(dtype)  # fail now: at stop() the measurement would be lost
        sinks = check_sinks(sinks)
        if scope not in ("machine", "process"):
            raise ConfigError(
                f"scope must be 'machine' (what the hardware drew) or 'process' (this process"
                f" tree's share); got {scope!r}"
            )
        self._series = _intensity_series(carbon_intensity_series)  # a bad one fails now
        self.name = name
        self._accounting = Accounting(
            pue=pue,
            country=country,
            region=region,
            cloud=cloud,
            carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh,
            renewable_share=renewable_share,
            wue_l_per_kwh=wue_l_per_kwh,
            market_factor_g_per_kwh=market_factor_g_per_kwh,
            market_factor_kind=market_factor_kind,
        )
        self._options: dict[str, Any] = {
            "devices": devices,
            "period_s": period_s,
            "baseline_s": float(baseline_s),
            "clock": clock,
            "pue": pue,
            "country": country,
            "region": region,
            "cloud": cloud,
            "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh,
            "carbon_intensity_series": carbon_intensity_series,
            "renewable_share": renewable_share,
            "market_factor_g_per_kwh": market_factor_g_per_kwh,
            "market_factor_kind": market_factor_kind,
            "wue_l_per_kwh": wue_l_per_kwh,
            "flops_per_step": flops_per_step,
            "dtype": dtype,
            "store": store,
            "checkpoint_s": checkpoint_s,
            "meta": meta,
            "tags": merge_tags(tags),
            "distributed": distributed,
            "sinks": sinks,
            "scope": scope,
            "board_gain": bool(board_gain),
            "sync": sync,
        }
        self._store = resolve_store(store)
        self._store_sink: StoreSink | None = None
        self._sinks = SinkSet(sinks)
        self._flops = [0.0, 0.0]  # nominal, executed: added or counted outside steps
        self._flops_per_step: tuple[float, float] | None = (
            None if flops_per_step is None else (float(flops_per_step), float(flops_per_step))
        )
        self._flop_caches: dict[tuple[bool, bool], Any] = {}
        self._uncounted: dict[str, int] = {}  # matrix ops the FLOP counter has no formula for
        self._dtype: Any = dtype
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._now = self._clock.now
        self._running = False
        self._result: Measurement | None = None
        self._sampler: Sampler | None = None
        self._timeline: Timeline | None = None
        self._ledger: Ledger | None = None
        self._live: _LiveThread | None = None
        self._samples = 0
        self._tokens = 0
        self._counted = [False, False]  # samples, tokens given at least once
        self._open: list[OpenPhase] = []
        self._t0 = self._t_baseline = 0.0
        self._cpu_watch: CpuWatch | None = None
        self._started_at = ""
        self._token: contextvars.Token[Tracker | None] | None = None
        self._dist: DistributedSession | None = None
        self._last_live: dict[str, float] = {}
        self._sync: Callable[[], Any] | None = None
        self._sync_notes: list[str] = []

    # --- public views --------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """Facts recorded with the run (``meta=``, plus a distributed job's size on rank 0)."""
        return dict(self._options["meta"] or {})

    @property
    def tags(self) -> dict[str, str]:
        """The run's tags: ``GREENAI_TAGS`` overridden by ``tags=`` (strings)."""
        return dict(self._options["tags"])

    @property
    def options(self) -> dict[str, Any]:
        """The options this tracker was made with (a copy)."""
        return dict(self._options)

    @property
    def accounting(self) -> Accounting:
        """How energy becomes facility energy, CO2e and water for this job."""
        return self._accounting

    @property
    def devices(self) -> list[Device]:
        """The devices being read (after :meth:`start`; those that opened)."""
        return [] if self._sampler is None else list(self._sampler.devices)

    @property
    def run_id(self) -> str | None:
        """The id of the stored run, with a store; None otherwise."""
        return None if self._store_sink is None else self._store_sink.run_id

    @property
    def started(self) -> bool:
        """Whether the job has started (past any idle baseline)."""
        return self._running or self._result is not None

    @property
    def elapsed_s(self) -> float:
        """Seconds since the job started; its length once stopped; 0 before."""
        if self._running:
            return max(self._now() - self._t0, 0.0)
        return self._result.duration_s if self._result is not None else 0.0

    @property
    def steps(self) -> int:
        """``step()`` calls so far."""
        ledger = self._ledger
        return 0 if ledger is None else ledger.steps_done + len(ledger.steps)

    @property
    def distributed_session(self) -> DistributedSession | None:
        """This rank's part in a distributed job, or None."""
        return self._dist

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> Tracker:
        """Discover/open devices, take the idle baseline if asked, and start sampling."""
        if self._running or self._result is not None:
            raise TrackerStateError(
                f"tracker {self.name!r} was already started; create a new Tracker per run"
            )
        self._accounting.grid()  # an unknown country/region fails now, not after the job
        self._dist = open_session(self)  # None unless distributed
        if self._dist is not None:
            if self._dist.info.rank != 0:
                self._store = None  # rank 0 records the job
            else:
                self._options["meta"] = {**(self._options["meta"] or {}), **self._dist.meta()}
        cluster = cluster_identity()  # SLURM job/step, Kubernetes pod: for `greenai reconcile`
        if cluster:
            self._options["meta"] = {"cluster": cluster.to_dict(), **(self._options["meta"] or {})}
        if self._store is not None:
            self._store_sink = StoreSink(self._store, clock=self._clock)
        if self._store is not None or self._sinks.sinks:
            # Snapshots build frames on the live thread: import pandas here, on the caller's
            # thread, so no background thread ever holds an import lock (a fork() at that
            # moment deadlocks the child) and the first checkpoint is not late.
            import pandas  # noqa: F401
        devices = self._options["devices"]
        if devices is None:
            from greenai.devices.discovery import discover

            devices = discover()
            if self._dist is not None:  # each rank measures the devices it owns
                devices = self._dist.own(devices, scope=self._options["scope"])
        if self._options["scope"] != "machine":  # found or given: charge this process its share
            from greenai.devices.attribution import apply_scope

            devices = apply_scope(list(devices), self._options["scope"], pid=os.getpid())
        self._cpu_watch = self._watch_cpu(list(devices))
        self._timeline = Timeline(list(devices))
        self._ledger = Ledger(self._timeline, board_gain=self._options["board_gain"])
        self._sampler = Sampler(
            list(devices), self._timeline, period_s=self._options["period_s"], clock=self._clock
        )
        self._sync = self._resolve_sync()  # before the sampler: nothing to undo if it fails
        self._sampler.start()
        try:  # from here on a failure (a sync that raises, Ctrl-C in the baseline) stops it
            self._t_baseline = self._now()
            baseline_s = self._options["baseline_s"]
            if baseline_s > 0:
                self._clock.wait_until(object(), self._t_baseline + baseline_s, threading.Event())
            self._started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            self._t0 = self._mark_now()
            self._timeline.t0 = self._t0
            self._ledger.begin(self._t_baseline, self._t0, baseline_s > 0)
            self._running = True
            self._token = _current.set(self)
            if self._store_sink is not None:
                self._store_sink.start(self)  # store errors raise: nothing ran yet
            self._sinks.start(self)
            self._live = _LiveThread(self, self._clock, self._options["checkpoint_s"])
            self._live.start()
        except BaseException as exc:
            if self._running and self.run_id is not None:
                # Stored as running (Ctrl-C just after the store opened): end the run there
                # with what was measured, never leave it ``running``.
                stopped = isinstance(exc, KeyboardInterrupt | SystemExit)
                try:
                    self.stop(status="interrupted" if stopped else "failed")
                except Exception:  # the original failure is what the caller must see
                    log.exception("greenai: stopping %r after a failed start failed", self.name)
                raise
            self._running = False
            self._sampler.stop()
            _current.set(None)
            raise
        return self

    def _watch_cpu(self, devices: list[Device]) -> CpuWatch | None:
        """Other processes' CPU time, for a machine-scope job that measures CPU or memory."""
        if self._options["scope"] != "machine" or not any(
            d.kind in ("cpu", "dram") for d in devices
        ):
            return None
        try:
            watch = CpuWatch.for_process()
            watch.start()
        except Exception:  # psutil on an odd platform: no note, never a failed start
            return None
        return watch

    def stop(self, *, status: str = "completed") -> Measurement:
        """Stop sampling and return the :class:`Measurement` (also kept as :attr:`result`).

        Never raises away a measurement: what fails while turning readings into figures
        (or in a sink, or in the store) becomes a note on the result. Under greenai's
        command-line signal policy a first Ctrl-C waits until the record is written
        (:func:`greenai.interrupts.shield`).

        Raises:
            TrackerStateError: Not running, or called from one of greenai's own threads
                (a sink's ``update()``).
        """
        with shield():
            return self._stop(status)

    def _stop(self, status: str) -> Measurement:
        if not self._running:
            raise TrackerStateError(
                f"tracker {self.name!r} is not running: call start() (or use `with`) first"
            )
        refuse_from_background(f"stop() of tracker {self.name!r}")
        notes: list[str] = list(self._sync_notes)
        try:
            t1 = self._mark_now()
        except Exception as exc:  # the user's sync function: never lose the measurement
            notes.append(f"sync() failed at stop ({exc!r}); the job ends where stop() was called")
            t1 = self._now()
        self._running = False
        if self._open:
            names = [ph.path for ph in self._open]
            message = f"phase(s) {names} still open when {self.name!r} stopped; closed at stop"
            warnings.warn(message, MeasurementWarning, stacklevel=3)
            notes.append(message)
            while self._open:
                self._close_phase(self._open[-1], t1)
        assert self._sampler is not None and self._timeline is not None
        try:
            if self._live is not None and not self._live.stop():
                notes.append(
                    "a sink's update() was still running at stop and was left behind; the"
                    " final figures were computed without waiting for it"
                )
            self._sampler.stop()
        finally:
            if self._token is not None:
                try:
                    _current.reset(self._token)
                except ValueError:  # stopped from another context
                    _current.set(None)
                self._token = None
        busy = self._cpu_watch.note() if self._cpu_watch is not None else None
        if busy is not None:  # once per job: stop() runs once
            warnings.warn(busy, MeasurementWarning, stacklevel=3)
            notes.append(busy)
        try:
            self._result = self._final(t1, status, notes)
        except Exception as exc:  # keep what can be kept: time, and why the rest is missing
            self._result = self._fallback(t1, status, [*notes, f"figures not computed: {exc!r}"])
        if self._dist is not None:  # rank 0 gets the job; other ranks their own view
            own = self._result
            self._result = self._dist.finish(self, self._result)
            if self._result.job is not None and self._result.job.scope == "job":
                self._result = self._job_scope3_and_series(own, self._result)
        store_problems: list[str] = []
        if self._store_sink is not None:
            self._store_sink.finish(self._result)
            store_problems = [f"run store: {p}" for p in self._store_sink.problems]
        self._sinks.finish(self._result)
        for message in self._sinks.problems:
            warnings.warn(message, MeasurementWarning, stacklevel=3)
        if self._sinks.problems or store_problems:
            self._result = dataclasses.replace(
                self._result,
                notes=(*self._result.notes, *store_problems, *self._sinks.problems),
            )
        if self._dist is not None:  # its warnings (and a held SIGTERM) once the record is kept
            self._dist.close()
        return self._result

    def snapshot(self) -> Measurement:
        """The job so far: a Measurement with status ``running`` (the result once stopped).

        Energy so far per device and in total, phases and steps settled so far, rates.
        Energy never decreases from one snapshot to the next. Cheap enough to call every
        second: it costs what is new since the last settling pass. Per-step arrays are
        left out (``steps.energy_j`` is empty; ``steps.count`` and the per-unit figures are
        set).

        Raises:
            TrackerStateError: The tracker has not started.
        """
        if self._result is not None and not self._running:
            return self._result
        if self._ledger is None or self._timeline is None:
            raise TrackerStateError(f"tracker {self.name!r} has not started")
        now = self._now()
        p = self._ledger.settle(now)
        p.commit()  # its curves stay valid for the figures below
        with self._ledger.lock:  # a sink's snapshot and the user's may overlap
            return self._measure(p, now, "running", [], live=True)

    def _mark_now(self) -> float:
        """The clock at a mark (start, step, phase edge, stop), after ``sync`` if asked."""
        if self._sync is not None:
            self._sync()
        return self._now()

    def _resolve_sync(self) -> Callable[[], Any] | None:
        """The function ``sync=`` asks for: the user's, CUDA's, or None (with a note)."""
        sync = self._options["sync"]
        if callable(sync) and not isinstance(sync, bool):
            return cast(Callable[[], Any], sync)
        if sync is not True:
            return None
        try:
            import torch

            available = bool(torch.cuda.is_available())
        except Exception:  # no torch, or a CUDA install that fails to load
            available = False
        if not available:
            self._sync_notes.append(
                "sync=True, but no CUDA device is available: step and phase marks are taken"
                " when Python reaches them"
            )
            return None
        cuda_sync: Callable[[], Any] = torch.cuda.synchronize
        return cuda_sync

    def settle(self) -> None:
        """Fold what the devices have settled into the running figures.

        The live thread does this every few seconds; public for tests and for sinks that
        need figures now.
        """
        if self._ledger is None or not self._running:
            return
        self._ledger.settle(self._now()).commit()

    def _final(self, t1: float, status: str, notes: list[str]) -> Measurement:
        assert self._ledger is not None
        p = self._ledger.settle(max(self._now(), t1), final=True, t1=t1)
        p.commit()  # its curves stay valid for the figures below
        with self._ledger.lock:
            result = self._measure(p, t1, status, notes, live=False)
        return self._with_scope3_and_series(result)

    def _job_scope3_and_series(self, own: Measurement, job: Measurement) -> Measurement:
        """On rank 0: the job's embodied CO2e from all its GPUs; no job-wide hourly CO2e."""
        try:
            out = self._with_scope3_and_series(job, series=False)
        except Exception as exc:  # never lose the job record
            return dataclasses.replace(job, notes=(*job.notes, f"embodied CO2e: {exc!r}"))
        if own.co2e_series_kg is not None:
            note = (
                "hourly CO2e not computed for the whole job: each rank charges its own"
                f" timeline (rank 0's: {own.co2e_series_kg:.6g} kg CO2e)"
            )
            out = dataclasses.replace(out, notes=(*out.notes, note))
        return out

    def _with_scope3_and_series(self, m: Measurement, *, series: bool = True) -> Measurement:
        """Add the embodied CO2e and the hour-by-hour CO2e; what fails becomes a note."""
        from greenai.carbon.embodied import gpu_job_embodied_co2e
        from greenai.carbon.series import co2e_series, total_energy_curve

        notes: list[str] = []
        changes: dict[str, Any] = {}
        gpus = sum(1 for d in m.devices if d.kind == "gpu")
        if gpus:
            try:
                embodied = gpu_job_embodied_co2e(gpus, m.duration_s)
                changes["embodied_co2e_kg"] = embodied.co2e_kg
                changes["embodied_source"] = _embodied_source(embodied)
            except Exception as exc:
                notes.append(f"embodied CO2e not computed: {exc}")
        if self._series is not None and series:
            if m.energy_j is None:
                notes.append("hourly CO2e not computed: no energy was measured")
            else:
                try:
                    t, e = total_energy_curve(self.timeline())
                    pue = m.carbon.pue if m.carbon is not None else 1.0
                    hourly = co2e_series(t, e, m.started_at, self._series, pue=pue)
                    changes["co2e_series_kg"] = hourly.co2e_kg
                    changes["co2e_series_source"] = hourly.source
                except Exception as exc:
                    notes.append(f"hourly CO2e not computed: {exc}")
        if notes:
            changes["notes"] = (*m.notes, *notes)
        return dataclasses.replace(m, **changes) if changes else m

    def _fallback(self, t1: float, status: str, notes: list[str]) -> Measurement:
        return Measurement(
            name=self.name,
            status=status,  # type: ignore[arg-type]
            started_at=self._started_at,
            duration_s=t1 - self._t0,
            energy_j=None,
            uncertainty_j=None,
            avg_power_w=None,
            peak_power_w=None,
            partial=True,
            notes=tuple(notes),
        )

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._running:
            return
        if exc_type is None:
            self.stop()
        elif issubclass(exc_type, KeyboardInterrupt | SystemExit):
            self.stop(status="interrupted")
        else:
            self.stop(status="failed")

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call is tracked; the last result is ``fn.last_result``.

        Coroutine functions are tracked over the awaited body, generator functions over
        the whole iteration (not just the creation of the coroutine or generator).
        """
        import inspect

        options = dict(self._options)
        name = self.name

        def finish(tracker: Tracker) -> None:
            wrapper.last_result = tracker._result  # type: ignore[attr-defined]

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                tracker = Tracker(name, **options)
                try:
                    with tracker:
                        return await fn(*args, **kwargs)
                finally:
                    finish(tracker)

        elif inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                tracker = Tracker(name, **options)
                try:
                    with tracker:
                        return (yield from fn(*args, **kwargs))
                finally:
                    finish(tracker)

        else:

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                tracker = Tracker(name, **options)
                try:
                    with tracker:
                        return fn(*args, **kwargs)
                finally:
                    finish(tracker)

        wrapper.last_result = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    # --- marks on the hot path ----------------------------------------------------------
    def step(self, samples: int | None = None, tokens: int | None = None) -> None:
        """Mark the end of a training/inference step; optionally count its samples/tokens.

        Raises:
            TrackerStateError: The tracker is not running.
            ConfigError: ``samples`` or ``tokens`` is not a non-negative integer.
        """
        if not self._running:
            raise TrackerStateError(f"step() on tracker {self.name!r}, which is not running")
        n_samples = None if samples is None else _count("samples", samples)
        n_tokens = None if tokens is None else _count("tokens", tokens)  # both, before either
        t = self._mark_now()
        if n_samples is not None:
            self._samples += n_samples
            self._counted[0] = True
        if n_tokens is not None:
            self._tokens += n_tokens
            self._counted[1] = True
        assert self._ledger is not None
        self._ledger.steps.append(t)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the energy inside the block to phase ``name`` (nestable).

        Raises:
            TrackerStateError: The tracker is not running, or phases are exited out of
                order (an outer phase's block ended while an inner one was still open).
            ConfigError: ``name`` is empty, not a string, or contains ``/``.
        """
        if not self._running:
            raise TrackerStateError(f"phase() on tracker {self.name!r}, which is not running")
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"phase names must be non-empty strings without '/', got {name!r}")
        parent = self._open[-1].path + "/" if self._open else ""
        entry = OpenPhase(parent + name, len(self._open), self._mark_now())
        self._open.append(entry)
        assert self._ledger is not None
        self._ledger.open_phases = self._open
        try:
            yield
        finally:
            if entry.end is None:  # stop() may already have closed it
                if not self._open or self._open[-1] is not entry:
                    inner = self._open[-1].path if self._open else None
                    raise TrackerStateError(
                        f"phase {entry.path!r} exited while {inner!r} is still open: phases"
                        " must nest (exit the inner one first)"
                    )
                try:
                    t = self._mark_now()
                except BaseException:  # a failing sync still closes the phase, where it is
                    self._close_phase(entry, self._now())
                    raise
                self._close_phase(entry, t)

    def _close_phase(self, entry: OpenPhase, t: float) -> None:
        self._open.remove(entry)
        entry.end = t
        assert self._ledger is not None
        self._ledger.closed.append(entry)

    # --- work done -----------------------------------------------------------------------
    def add_flops(self, flops: float, executed: float | None = None) -> None:
        """Add FLOPs done in this job (``executed`` defaults to ``flops``, the nominal)."""
        _check_flops("flops", flops)
        if executed is not None:
            _check_flops("executed", executed)
        self._flops[0] += float(flops)
        self._flops[1] += float(flops if executed is None else executed)

    def count_flops(
        self,
        model: Callable[..., Any],
        *inputs: Any,
        backward: bool = False,
        causal: bool = False,
        per_step: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Count the FLOPs of ``model(*inputs, **kwargs)`` once per input shape and add them.

        Call it in the loop with each batch (later calls with a seen shape are a dict
        lookup), or once with ``per_step=True`` to count one step that is then multiplied
        by the number of ``step()`` calls. Counting runs on fake tensors, so it draws no
        GPU energy. Returns the :class:`greenai.flops.FlopCount` of one call.
        """
        from greenai.flops import FlopCache

        cache = self._flop_caches.get((backward, causal))
        if cache is None:
            cache = self._flop_caches[(backward, causal)] = FlopCache(
                backward=backward, causal=causal
            )
        count = cache(model, *inputs, **kwargs)
        for op, n in getattr(count, "uncounted", {}).items():
            self._uncounted[op] = max(self._uncounted.get(op, 0), n)
        if per_step:
            self._flops_per_step = (float(count.nominal), float(count.executed))
        else:
            self._flops[0] += count.nominal
            self._flops[1] += count.executed
        if self._dtype is None:
            params = getattr(model, "parameters", None)
            first = next(iter(params()), None) if callable(params) else None
            self._dtype = getattr(first, "dtype", None)
        return count

    # --- results ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the tracker is between start() and stop()."""
        return self._running

    @property
    def result(self) -> Measurement:
        """The Measurement of a stopped tracker. Raises TrackerStateError before stop()."""
        if self._result is None:
            raise TrackerStateError(f"tracker {self.name!r} has no result until it is stopped")
        return self._result

    def timeline(
        self,
        *,
        after_s: float = -math.inf,
        settled: bool = False,
        buckets: bool = True,
        as_frame: bool = True,
    ) -> Any:
        """Per-device readings: time since start, power, raw counter and cumulative energy.

        Columns: ``t_s``, ``device``, ``method``, ``power_w``, ``counter_j`` (the raw
        counter, NaN without one), ``energy_j`` (cumulative since the job started) and
        ``peak_power_w`` (set on rows that stand for a bucket of older readings). The last
        :attr:`retention_s` seconds are at full resolution, older data in
        :data:`~greenai.timeline.BUCKET_S` buckets.

        Args:
            after_s: Only rows later than this (seconds since the start); the cost is the
                rows returned.
            settled: Only rows that are final (not revised by later readings).
            buckets: Include bucket rows.
            as_frame: False gives the columns as a dict of numpy arrays instead of a
                DataFrame: for writers that run every few seconds (pandas costs more than
                the rows).

        Raises:
            TrackerStateError: The tracker has not started.
        """
        if self._timeline is None:
            raise TrackerStateError(f"tracker {self.name!r} has not started")
        return self._timeline.rows(
            self._t0, after_s=after_s, settled_only=settled, buckets=buckets, as_frame=as_frame
        )

    def timeline_buckets(self, *, after_s: float = -math.inf, as_frame: bool = True) -> Any:
        """Only the bucket rows (older readings thinned) later than ``after_s``.

        ``as_frame``: as for :meth:`timeline`.

        Raises:
            TrackerStateError: The tracker has not started.
        """
        if self._timeline is None:
            raise TrackerStateError(f"tracker {self.name!r} has not started")
        return self._timeline.bucket_rows(self._t0, after_s=after_s, as_frame=as_frame)

    @property
    def retention_s(self) -> float:
        """Seconds of recent readings and phase spans kept at full resolution."""
        return RETENTION_S

    def phase_spans(self) -> pd.DataFrame:
        """Recent closed phase spans, for plots that shade phases on the timeline.

        Columns: ``phase`` (its path), ``depth``, ``start_s`` and ``end_s`` (seconds since
        the job started). The last :data:`~greenai.ledger.RECENT_SPANS` settled spans are
        kept; every span counts in its phase's figures.
        """
        frame: pd.DataFrame = self.phase_spans_since(0)[0]
        return frame

    def phase_spans_since(self, seen: int, *, as_frame: bool = True) -> tuple[Any, int]:
        """Spans settled after the first ``seen`` ones, and how many have settled in all.

        For sinks that write spans as they come: pass back the count each time. Columns as
        for :meth:`phase_spans`; ``as_frame=False`` gives them as a dict of lists.
        """
        ledger = self._ledger
        if ledger is None:
            spans: list[tuple[str, int, float, float]] = []
            total = 0
        else:
            with ledger.lock:  # the newest ``total - seen`` spans, read from the end
                total = ledger.spans_seen
                new = min(max(total - seen, 0), len(ledger.recent_spans))
                spans = list(itertools.islice(reversed(ledger.recent_spans), new))[::-1]
        names = ["phase", "depth", "start_s", "end_s"]
        if not as_frame:
            return {name: [span[i] for span in spans] for i, name in enumerate(names)}, total
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(spans, columns=names)
        return frame, total

    def device_phases(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Per device, per phase (``(other)`` included): energy and uncertainty (J).

        Settled figures; complete once the tracker has stopped.
        """
        ledger = self._ledger
        if ledger is None:
            return {}
        return {
            device: {k: (s.energy_j, s.uncertainty_j) for k, s in phases.items()}
            for device, phases in ledger.device_phases.items()
        }

    def energy_between(self, starts: Sequence[float], ends: Sequence[float]) -> PhaseEnergy:
        """Energy (J) and uncertainty over windows ``[starts[i], ends[i]]`` on this clock.

        For windows marked outside :meth:`phase` (the pytest plugin's benchmark rounds); call
        it after :meth:`stop`. Windows' edge errors combine in quadrature, as for phases.
        Windows in the last :data:`~greenai.timeline.RETENTION_S` seconds of the job are
        evaluated on its curves; older windows are not kept (a ConfigError says so).

        Raises:
            TrackerStateError: The tracker has not stopped.
        """
        if self._timeline is None or self._running:
            raise TrackerStateError(f"energy_between() needs tracker {self.name!r} stopped")
        a, b = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
        curves = self._timeline.curves()
        spans = Spans()
        if curves and len(a):
            first = min(float(c.t[0]) for c in curves.values())
            if float(a.min()) < first - 1.0:
                raise ConfigError(
                    f"energy_between(): windows before t={first:.3f} s are older than the"
                    f" {RETENTION_S:g} s the tracker keeps at full resolution; mark them with"
                    " phase() instead"
                )
            parts = sum_devices((c.window_parts(a, b) for c in curves.values()), len(a))
            spans.add(parts, b - a)
        return PhaseEnergy(
            name="window",
            count=len(a),
            duration_s=float(np.sum(b - a)) if len(a) else 0.0,
            energy_j=spans.energy_j if curves else None,
            uncertainty_j=spans.uncertainty_j if curves else None,
        )

    def _measure(
        self, p: Pass, t1: float, status: str, notes: list[str], *, live: bool
    ) -> Measurement:
        assert self._sampler is not None and self._timeline is not None
        assert self._ledger is not None
        ledger, timeline = self._ledger, self._timeline
        t0, duration = self._t0, t1 - self._t0
        failed = self._sampler.failed
        start = ledger.t0_point or (point_at(p, t0) if p.curves else {})
        end = point_at(p, t1) if p.curves else {}
        per_device = ledger.parts_by_device([start], [end], [t0], [t1]) if end else {}
        idle: dict[str, float] = {}
        if ledger.baseline and t0 > self._t_baseline and end:
            base = ledger.baseline_point or point_at(p, self._t_baseline)
            for name, parts in ledger.parts_by_device(
                [base], [start], [self._t_baseline], [t0]
            ).items():
                idle[name] = float(parts.energy_j[0]) / (t0 - self._t_baseline)
        devices = []
        scopes = {d.name: d.scope for d in self._sampler.devices}
        for name, parts in per_device.items():
            track = timeline.tracks[name]
            dev_j = float(parts.energy_j[0])
            if live:  # a live figure never goes down (Prometheus reads a drop as a reset)
                dev_j = max(dev_j, self._last_live.get(name, 0.0))
                self._last_live[name] = dev_j
            devices.append(
                DeviceEnergy(
                    name=name,
                    kind=track.spec.kind,
                    method=p.curves[name].method if name in p.curves else track.method,
                    fallback=(
                        f"{track.spec.method}→{p.curves[name].method}"
                        if name in p.curves and p.curves[name].method != track.spec.method
                        else None
                    ),
                    energy_j=dev_j,
                    uncertainty_j=float(parts.uncertainty_j[0]),
                    shared_uncertainty_j=float(parts.shared_j[0]),
                    avg_power_w=dev_j / duration if duration > 0 else 0.0,
                    peak_power_w=track.peak_power_w(t0, p.curves.get(name)),
                    samples=track.samples_in_job(),
                    partial=failed.get(name) is not None or track.guard.filled_j > 0,
                    error=failed.get(name),
                    idle_power_w=idle.get(name),
                    last_power_w=track.last_power_w(),
                    scope=scopes.get(name, "machine"),
                )
            )
        for name, error in failed.items():
            if name not in per_device:
                notes.append(f"{name} gave no reading: {error}")
            else:
                notes.append(f"{name} failed during the job ({error}); its gap is interpolated")
        for name in timeline.tracks:
            if name not in per_device and name not in failed:
                notes.append(
                    f"{name} gave no usable reading (every value was missing or rejected);"
                    " it is left out of the figures"
                )
        guard_notes = timeline.guard_notes()
        notes.extend(guard_notes)
        if not live:  # one warning per problem, on the caller's thread
            for message in guard_notes:
                warnings.warn(message, MeasurementWarning, stacklevel=4)
        if not p.curves:
            notes.append("no energy source was measured; only time is reported")
        energy: float | None = math.fsum(d.energy_j for d in devices) if devices else None
        unc = linear(d.uncertainty_j for d in devices) if devices else None
        flops, executed = self._flop_totals()
        peak = self._peak_flops_per_s(notes) if flops else None
        idle_all = [d.idle_power_w for d in devices if d.idle_power_w is not None]
        idle_w = math.fsum(idle_all) if idle_all and len(idle_all) == len(devices) else None
        mfu = flops / duration / peak if flops and peak and duration > 0 else None
        if mfu is not None or self._uncounted:  # greenai.flops imports torch: only if needed
            from greenai.flops import mfu_note, uncounted_note

            for note in (mfu_note(mfu), uncounted_note(self._uncounted)):
                if note is not None:
                    notes.append(note)
        from greenai.sensing import result_notes, sensor_notes

        for message in sensor_notes(ledger, timeline.tracks, duration):
            notes.append(message)
            if not live:  # once per job: the final figures
                warnings.warn(message, MeasurementWarning, stacklevel=4)
        notes.extend(result_notes(ledger, timeline.tracks))
        return Measurement(
            name=self.name,
            status=status,  # type: ignore[arg-type]
            started_at=self._started_at,
            duration_s=duration,
            energy_j=energy,
            uncertainty_j=unc,
            avg_power_w=energy / duration if energy is not None and duration > 0 else None,
            peak_power_w=timeline.peak_total_power_w() if devices else None,
            devices=tuple(devices),
            phases=tuple(self._phase_energy(bool(p.curves), live, energy, unc, t1)),
            steps=self._step_energy(p, start, live, bool(p.curves)),
            period_s=self._sampler.period_s,
            idle_power_w=idle_w,
            energy_above_idle_j=(
                energy - idle_w * duration if energy is not None and idle_w is not None else None
            ),
            partial=bool(failed) or timeline.guard_filled(),
            notes=tuple(notes),
            carbon=account(energy, self._accounting) if energy is not None else None,
            flops=flops,
            flops_executed=executed,
            peak_flops_per_s=peak,
            mfu=mfu,
        )

    def _phase_energy(
        self, measured: bool, live: bool, total_j: float | None, total_u: float | None, t1: float
    ) -> list[PhaseEnergy]:
        assert self._ledger is not None
        ledger = self._ledger
        if not ledger.phases and not (live and self._open):
            return []
        out = [_phase(name, spans, measured) for name, spans in ledger.phases.items()]
        out.append(_phase(OTHER_PHASE, ledger.other, measured))
        if live:  # the last seconds are not attributed yet: say so, so the parts add up
            top = [ph for ph in out if "/" not in ph.name]
            done_s = math.fsum(ph.duration_s for ph in top)
            done_j = math.fsum(ph.energy_j or 0.0 for ph in top)
            out.append(
                PhaseEnergy(
                    name=UNSETTLED_PHASE,
                    count=1,
                    duration_s=max(t1 - self._t0 - done_s, 0.0),
                    energy_j=max(total_j - done_j, 0.0) if total_j is not None else None,
                    uncertainty_j=total_u,
                )
            )
        return out

    def _step_energy(self, p: Pass, start: Point, live: bool, measured: bool) -> StepEnergy:
        assert self._ledger is not None
        ledger = self._ledger
        count = self.steps
        if not count:
            return StepEnergy()
        flops = None if self._flops_per_step is None else self._flops_per_step[0] * count
        totals = StepEnergy(
            count=count,
            samples=self._samples if self._counted[0] else None,
            tokens=self._tokens if self._counted[1] else None,
            flops=flops,
        )
        done = ledger.steps_done
        last = ledger.last_step_point()
        if measured and done and last is not None and start:
            # Steps tile [t0, last step]: their sum is that window, with its own uncertainty.
            t_last, point = last
            whole = ledger.parts([start], [point], [self._t0], [t_last])
            totals = dataclasses.replace(
                totals,
                measured_count=done,
                measured_energy_j=float(whole.energy_j[0]),
                measured_uncertainty_j=float(whole.uncertainty_j[0]),
            )
        if live:
            return totals
        return dataclasses.replace(
            totals,
            duration_s=tuple(ledger.step_duration_s),
            energy_j=tuple(ledger.step_energy_j) if measured else (),
            uncertainty_j=tuple(ledger.step_uncertainty_j) if measured else (),
        )

    def _flop_totals(self) -> tuple[float | None, float | None]:
        nominal, executed = self._flops
        if self._flops_per_step is not None:
            nominal += self._flops_per_step[0] * self.steps
            executed += self._flops_per_step[1] * self.steps
        if not nominal and not executed and self._flops_per_step is None:
            return None, None
        return nominal, executed

    def _peak_flops_per_s(self, notes: list[str]) -> float | None:
        """Summed datasheet peak of the GPUs measured, for MFU; None (with a note) if unknown."""
        from greenai.flops import peak_flops_per_s

        gpus = [d for d in self.devices if d.kind == "gpu"]
        if not gpus or self._dtype is None:
            notes.append("MFU not computed: it needs a GPU and a known compute dtype (dtype=)")
            return None
        try:
            peaks = [
                peak_flops_per_s(str(getattr(g, "model", None) or ""), self._dtype) for g in gpus
            ]
        except ConfigError as exc:
            notes.append(f"MFU not computed: {exc}")
            return None
        if any(p is None for p in peaks):
            names = [getattr(g, "model", None) or g.name for g in gpus]
            notes.append(f"MFU not computed: no datasheet peak for {names} at {self._dtype}")
            return None
        return math.fsum(p for p in peaks if p is not None)


class _LiveThread:
    """Settles the ledger every few seconds and feeds the sinks every ``checkpoint_s``.

    A settling pass costs about a millisecond per device whatever it settles (numpy's
    overhead on a short stretch), so passes come every :attr:`SETTLE_S` seconds, not on
    every tick: ``stop()`` then settles at most that much.
    """

    SETTLE_S = 5.0

    def __init__(self, tracker: Tracker, clock: Clock, checkpoint_s: float) -> None:
        self._tracker = tracker
        self._clock = clock
        self._checkpoint_s = checkpoint_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._clock.attach(self)
        self._thread = threading.Thread(target=self._run, name="greenai-live", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self._clock.detach(self)
            raise

    def _run(self) -> None:
        t = self._tracker
        mark_background("the tracker's live thread")
        try:
            now = self._clock.now()
            settle_at = now + min(self.SETTLE_S, self._checkpoint_s)
            update_at = now + self._checkpoint_s
            while not self._clock.wait_until(self, min(settle_at, update_at), self._stop):
                now = self._clock.now()
                try:
                    if now >= update_at:
                        update_at = max(update_at + self._checkpoint_s, now)
                        if t._store_sink is not None or t._sinks.sinks:
                            snap = t.snapshot()
                            if t._store_sink is not None:
                                t._store_sink.update(snap)
                            t._sinks.update(snap)
                        else:  # nobody reads snapshots: settle only
                            t.settle()
                    elif now >= settle_at:
                        t.settle()
                except Exception:  # never let a bug here touch the user's job
                    log.exception("greenai: live update failed")
                    update_at = max(update_at + self._checkpoint_s, now)
                if now >= settle_at:
                    settle_at = max(settle_at + self.SETTLE_S, now)
        finally:
            self._clock.detach(self)

    def stop(self) -> bool:
        """End the thread; False when a sink's update() kept it past the deadline."""
        from greenai.sinks import UPDATE_TIMEOUT_S

        if self._thread is None:
            return True
        self._stop.set()
        self._thread.join(UPDATE_TIMEOUT_S)
        stopped = not self._thread.is_alive()
        self._thread = None
        return stopped


def track(name: str = "job", **options: Any) -> Tracker:
    """Track energy as a context manager or decorator.

    Example:
        >>> import greenai
        >>> from greenai.testing import FakeGPU
        >>> with greenai.track("train", devices=[FakeGPU(seed=1)]) as job:
        ...     for batch in range(3):
        ...         job.step(samples=32)
        >>> job.result.steps.count
        3

    Options are those of :class:`Tracker` (``devices``, ``period_s``, ``baseline_s``,
    ``clock``); an unknown option raises :class:`~greenai.errors.ConfigError`.
    """
    return Tracker(name, **options)


def _phase(name: str, spans: Spans, measured: bool) -> PhaseEnergy:
    return PhaseEnergy(
        name=name,
        count=spans.count,
        duration_s=spans.duration_s,
        energy_j=spans.energy_j if measured else None,
        uncertainty_j=spans.uncertainty_j if measured else None,
    )


def _intensity_series(value: Any) -> IntensitySeries | None:
    """``carbon_intensity_series=`` loaded and checked, so that a bad one fails at once."""
    if value is None:
        return None
    import pandas as pd

    from greenai.carbon.series import IntensitySeries, load_intensity_series

    if isinstance(value, IntensitySeries):
        return value
    if not isinstance(value, str | os.PathLike | pd.Series):
        raise ConfigError(
            "carbon_intensity_series takes a CSV path (UTC times, g CO2e/kWh) or a pandas"
            f" Series with a DatetimeIndex; got {type(value).__name__}"
        )
    return load_intensity_series(value)


def _embodied_source(figures: EmbodiedFigures) -> str:
    """Where the embodied figure comes from, in one line: each factor, its source, the basis."""
    parts = [
        f"{s.factor.description}: {s.factor.kg_co2e:g} kg CO2e"
        f"{' (class estimate)' if s.factor.class_estimate else ''} × {s.device_hours:.4g}"
        f" device-hours; source: {s.factor.source}"
        for s in figures.shares
    ]
    return " | ".join([*parts, figures.basis])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_seconds(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite positive number of seconds, got {value!r}")


def _count(name: str, value: Any) -> int:
    """A step's samples or tokens: a non-negative integer (numpy integers too)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(
            f"step({name}=...) takes a non-negative integer count, got {value!r}"
            f" (for a batch, pass len(batch) or the batch size)"
        )
    return int(value)


def _check_flops(name: str, value: Any) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a non-negative number of FLOPs, got {value!r}")


def _unknown_options_message(unknown: dict[str, Any]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, OPTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{key!r}{hint}")
    return f"unknown option(s) {', '.join(parts)}; known options are {', '.join(OPTIONS)}"
