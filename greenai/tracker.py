"""Tracker and ``track()``: wrap any loop and get a :class:`~greenai.Measurement`.

``step()`` and ``phase()`` only record a timestamp on the caller's thread; every device read
happens on the sampler thread, and all energy is computed once, at ``stop()``, by integrating
the timeline over each window.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import functools
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from greenai.carbon.accounting import Accounting, account
from greenai.checkpoint import Checkpointer, resolve_store
from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.devices.base import Device
from greenai.distributed.session import DistributedSession, open_session
from greenai.errors import ConfigError, MeasurementWarning, TrackerStateError
from greenai.measurement import DeviceEnergy, Measurement, PhaseEnergy, StepEnergy
from greenai.sampling.sampler import Sampler
from greenai.timeline import EnergyCurve, Timeline, timeline_frame

if TYPE_CHECKING:
    import pandas as pd

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS = (
    "devices",
    "period_s",
    "baseline_s",
    "clock",
    "pue",
    "country",
    "region",
    "carbon_intensity_g_per_kwh",
    "renewable_share",
    "wue_l_per_kwh",
    "flops_per_step",
    "dtype",
    "store",
    "checkpoint_s",
    "meta",
    "distributed",
)
"""Keyword options of :class:`Tracker` and :func:`track`."""

OTHER_PHASE = "(other)"

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
        region: Sub-national grid (a US state, Canadian or Chinese province, Nordic zone).
        carbon_intensity_g_per_kwh: Grid intensity to use instead of a lookup.
        renewable_share: Share in [0, 1] of energy under renewable contracts (PPAs), for
            market-based CO2e.
        wue_l_per_kwh: Water usage effectiveness (litres per IT kWh), for ``water_l``.
        flops_per_step: FLOPs of one step, when known; multiplied by the number of steps.
        dtype: The compute dtype (``"bf16"``, ``torch.float16``...), to find the GPU's peak
            for MFU; by default the dtype of the model given to :meth:`count_flops`.
        store: Record the run in a run store: ``True`` for the default
            (``$GREENAI_HOME/runs.db`` or ``./.greenai/runs.db``), a path, or a
            :class:`greenai.store.RunStore`. Off by default for library use.
        checkpoint_s: With a store, seconds between checkpoints of the running job; a killed
            process keeps everything up to its last checkpoint.
        meta: With a store, extra facts to record with the run (a dict of JSON values).
        distributed: None joins a torch.distributed job when a process group is up, True
            requires one, False measures this process alone (docs/distributed.md).

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
        carbon_intensity_g_per_kwh: float | None = None,
        renewable_share: float | None = None,
        wue_l_per_kwh: float | None = None,
        flops_per_step: float | None = None,
        dtype: Any = None,
        store: Any = None,
        checkpoint_s: float = 5.0,
        meta: dict[str, Any] | None = None,
        distributed: bool | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(_unknown_options_message(unknown))
        if period_s is not None and not (isinstance(period_s, int | float) and period_s > 0):
            raise ConfigError(f"period_s must be a positive number of seconds, got {period_s!r}")
        if not (isinstance(baseline_s, int | float) and baseline_s >= 0):
            raise ConfigError(f"baseline_s must be >= 0 seconds, got {baseline_s!r}")
        if devices is not None:
            names = [d.name for d in devices]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"device names must be unique; repeated: {dupes}")
        if flops_per_step is not None:
            _check_flops("flops_per_step", flops_per_step)
        if dtype is not None:
            from greenai.flops.peaks import check_dtype

            check_dtype(dtype)  # fail now: at stop() the measurement would be lost
        self.name = name
        self._accounting = Accounting(
            pue=pue,
            country=country,
            region=region,
            carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh,
            renewable_share=renewable_share,
            wue_l_per_kwh=wue_l_per_kwh,
        )
        self._options: dict[str, Any] = {
            "devices": devices,
            "period_s": period_s,
            "baseline_s": float(baseline_s),
            "clock": clock,
            "pue": pue,
            "country": country,
            "region": region,
            "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh,
            "renewable_share": renewable_share,
            "wue_l_per_kwh": wue_l_per_kwh,
            "flops_per_step": flops_per_step,
            "dtype": dtype,
            "store": store,
            "checkpoint_s": checkpoint_s,
            "meta": meta,
            "distributed": distributed,
        }
        if not (isinstance(checkpoint_s, int | float) and checkpoint_s > 0):
            raise ConfigError(
                f"checkpoint_s must be a positive number of seconds, got {checkpoint_s!r}"
            )
        self._store = resolve_store(store)
        self._checkpointer: Checkpointer | None = None
        self.run_id: str | None = None
        self._flops = [0.0, 0.0]  # nominal, executed: added or counted outside steps
        self._flops_per_step: tuple[float, float] | None = (
            None if flops_per_step is None else (float(flops_per_step), float(flops_per_step))
        )
        self._flop_caches: dict[tuple[bool, bool], Any] = {}
        self._dtype: Any = dtype
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._now = self._clock.now
        self._running = False
        self._result: Measurement | None = None
        self._sampler: Sampler | None = None
        self._timeline: Timeline | None = None
        self._steps: list[float] = []
        self._step_counts: list[tuple[int, int | None, int | None]] = []
        self._phases: list[tuple[str, int, float, float]] = []
        self._open: list[tuple[str, float]] = []
        self._t0 = self._t_baseline = 0.0
        self._checkpointed_s = -math.inf
        self._started_at = ""
        self._token: contextvars.Token[Tracker | None] | None = None
        self._dist: DistributedSession | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> Tracker:
        """Discover/open devices, take the idle baseline if asked, and start sampling."""
        if self._running or self._result is not None:
            raise TrackerStateError(
                f"tracker {self.name!r} was already started; create a new Tracker per run"
            )
        self._accounting.grid()  # an unknown country/region fails now, not after the job
        self._dist = open_session(self)  # None unless distributed; ranks > 0 drop the store
        if self._store is not None:
            self._checkpointer = Checkpointer(
                self._store,
                self.name,
                self._snapshot,
                clock=self._clock,
                period_s=self._options["checkpoint_s"],
                meta=self._options["meta"],
            )
        devices = self._options["devices"]
        if devices is None:
            from greenai.devices.discovery import discover

            devices = discover()
            if self._dist is not None:  # each rank measures the devices it owns
                devices = self._dist.own(devices)
        self._timeline = Timeline(list(devices))
        self._sampler = Sampler(
            list(devices), self._timeline, period_s=self._options["period_s"], clock=self._clock
        )
        self._sampler.start()
        self._t_baseline = self._now()
        baseline_s = self._options["baseline_s"]
        if baseline_s > 0:
            self._clock.wait_until(object(), self._t_baseline + baseline_s, threading.Event())
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self._t0 = self._now()
        self._checkpointed_s = -math.inf  # timeline rows up to here are in the store
        self._running = True
        self._token = _current.set(self)
        if self._checkpointer is not None:
            try:
                self._checkpointer.start()
            except BaseException:
                self._running = False
                self._sampler.stop()
                _current.set(None)
                raise
            self.run_id = self._checkpointer.run_id
        return self

    def stop(self, *, status: str = "completed") -> Measurement:
        """Stop sampling and return the :class:`Measurement` (also kept as :attr:`result`)."""
        if not self._running:
            raise TrackerStateError(
                f"tracker {self.name!r} is not running: call start() (or use `with`) first"
            )
        t1 = self._now()
        self._running = False
        notes: list[str] = []
        if self._open:
            names = [n for n, _ in self._open]
            message = f"phase(s) {names} still open when {self.name!r} stopped; closed at stop"
            warnings.warn(message, MeasurementWarning, stacklevel=2)
            notes.append(message)
            while self._open:
                self._close_phase(t1)
        assert self._sampler is not None and self._timeline is not None
        try:
            self._sampler.stop()
        finally:
            if self._token is not None:
                try:
                    _current.reset(self._token)
                except ValueError:  # stopped from another context
                    _current.set(None)
                self._token = None
        self._result = self._measure(t1, status, notes)
        if self._dist is not None:  # rank 0 gets the job; other ranks their own view
            self._result = self._dist.finish(self, self._result)
        if self._checkpointer is not None:
            self._checkpointer.finish(self._result, self.timeline(), self.phase_spans())
        if self._dist is not None:  # its warnings (and a held SIGTERM) once the record is kept
            self._dist.close()
        return self._result

    def _snapshot(self) -> tuple[Measurement, pd.DataFrame, pd.DataFrame]:
        """The job so far, for a checkpoint: curves built once, only new timeline rows."""
        assert self._timeline is not None
        curves = self._timeline.curves()
        measurement = self._measure(self._now(), "running", [], per_step=False, curves=curves)
        frame = timeline_frame(curves, self._t0, after_s=self._checkpointed_s)
        if len(frame):
            self._checkpointed_s = float(frame["t_s"].max())
        return measurement, frame, self.phase_spans()

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
        """Use as a decorator: each call is tracked; the last result is ``fn.last_result``."""
        options = dict(self._options)
        name = self.name

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tracker = Tracker(name, **options)
            try:
                with tracker:
                    return fn(*args, **kwargs)
            finally:
                wrapper.last_result = tracker._result  # type: ignore[attr-defined]

        wrapper.last_result = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    # --- marks on the hot path ----------------------------------------------------------
    def step(self, samples: int | None = None, tokens: int | None = None) -> None:
        """Mark the end of a training/inference step; optionally count its samples/tokens."""
        if not self._running:
            raise TrackerStateError(f"step() on tracker {self.name!r}, which is not running")
        self._steps.append(self._now())
        if samples is not None or tokens is not None:
            self._step_counts.append((len(self._steps) - 1, samples, tokens))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the energy inside the block to phase ``name`` (nestable)."""
        if not self._running:
            raise TrackerStateError(f"phase() on tracker {self.name!r}, which is not running")
        if not name or "/" in name:
            raise ConfigError(f"phase names must be non-empty and contain no '/', got {name!r}")
        path = "/".join([n for n, _ in self._open] + [name])
        self._open.append((path, self._now()))
        depth = len(self._open)
        try:
            yield
        finally:
            # stop() may already have closed it (phase left open across stop()).
            if len(self._open) == depth and self._open[-1][0] == path:
                self._close_phase(self._now())

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

    def _close_phase(self, t: float) -> None:
        path, start = self._open.pop()
        self._phases.append((path, len(self._open), start, t))

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

    def timeline(self) -> pd.DataFrame:
        """Per-device readings: time since start, power, raw counter and cumulative energy.

        Columns: ``t_s``, ``device``, ``method``, ``power_w``, ``counter_j`` (the raw
        counter, NaN without one) and ``energy_j`` (cumulative since the job started).
        """
        if self._timeline is None:
            raise TrackerStateError(f"tracker {self.name!r} has not started")
        return timeline_frame(self._timeline.curves(), self._t0)

    def phase_spans(self) -> pd.DataFrame:
        """Every closed phase span, for plots that shade phases on the timeline.

        Columns: ``phase`` (its path), ``depth``, ``start_s`` and ``end_s`` (seconds since
        the job started).
        """
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(
            [(p, d, a - self._t0, b - self._t0) for p, d, a, b in self._phases],
            columns=["phase", "depth", "start_s", "end_s"],
        )
        return frame

    def energy_between(self, starts: Sequence[float], ends: Sequence[float]) -> PhaseEnergy:
        """Energy (J) and uncertainty over windows ``[starts[i], ends[i]]`` on this clock.

        For windows marked outside :meth:`phase` (the pytest plugin's benchmark rounds); call
        it after :meth:`stop`. Windows' edge errors combine in quadrature, as for phases.
        """
        if self._timeline is None or self._running:
            raise TrackerStateError(f"energy_between() needs tracker {self.name!r} stopped")
        a, b = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
        return _phase("window", list(self._timeline.curves().values()), a, b)

    def _measure(
        self,
        t1: float,
        status: str,
        notes: list[str],
        *,
        per_step: bool = True,
        curves: dict[str, EnergyCurve] | None = None,
    ) -> Measurement:
        assert self._sampler is not None and self._timeline is not None
        t0, duration = self._t0, t1 - self._t0
        curves = self._timeline.curves() if curves is None else curves
        failed = self._sampler.failed
        devices = [self._device_energy(c, t0, t1, failed.get(c.name)) for c in curves.values()]
        for name, error in failed.items():
            if name not in curves:
                notes.append(f"{name} gave no reading: {error}")
        if not curves:
            notes.append("no energy source was measured; only time is reported")
        energy = math.fsum(d.energy_j for d in devices) if devices else None
        flops, executed = self._flop_totals()
        peak = self._peak_flops_per_s(notes) if flops else None
        idle = [d.idle_power_w for d in devices if d.idle_power_w is not None]
        idle_w = math.fsum(idle) if idle and len(idle) == len(devices) else None
        return Measurement(
            name=self.name,
            status=status,  # type: ignore[arg-type]
            started_at=self._started_at,
            duration_s=duration,
            energy_j=energy,
            uncertainty_j=math.fsum(d.uncertainty_j for d in devices) if devices else None,
            avg_power_w=energy / duration if energy is not None and duration > 0 else None,
            peak_power_w=_peak_total_power(list(curves.values()), t0, t1),
            devices=tuple(devices),
            phases=tuple(self._phase_energy(list(curves.values()), t0, t1)),
            steps=self._step_energy(list(curves.values()), t0, per_step),
            period_s=self._sampler.period_s,
            idle_power_w=idle_w,
            energy_above_idle_j=(
                energy - idle_w * duration if energy is not None and idle_w is not None else None
            ),
            partial=bool(failed),
            notes=tuple(notes),
            carbon=account(energy, self._accounting) if energy is not None else None,
            flops=flops,
            flops_executed=executed,
            peak_flops_per_s=peak,
            mfu=flops / duration / peak if flops and peak and duration > 0 else None,
        )

    def _flop_totals(self) -> tuple[float | None, float | None]:
        nominal, executed = self._flops
        if self._flops_per_step is not None:
            nominal += self._flops_per_step[0] * len(self._steps)
            executed += self._flops_per_step[1] * len(self._steps)
        if not nominal and not executed and self._flops_per_step is None:
            return None, None
        return nominal, executed

    def _peak_flops_per_s(self, notes: list[str]) -> float | None:
        """Summed datasheet peak of the GPUs measured, for MFU; None (with a note) if unknown."""
        from greenai.flops import peak_flops_per_s

        assert self._sampler is not None
        gpus = [d for d in self._sampler.devices if d.kind == "gpu"]
        if not gpus or self._dtype is None:
            notes.append("MFU not computed: it needs a GPU and a known compute dtype (dtype=)")
            return None
        peaks = [peak_flops_per_s(str(getattr(g, "model", None) or ""), self._dtype) for g in gpus]
        if any(p is None for p in peaks):
            names = [getattr(g, "model", None) or g.name for g in gpus]
            notes.append(f"MFU not computed: no datasheet peak for {names} at {self._dtype}")
            return None
        return math.fsum(p for p in peaks if p is not None)

    def _device_energy(
        self, curve: EnergyCurve, t0: float, t1: float, error: str | None
    ) -> DeviceEnergy:
        energy, unc = _windows([curve], np.array([t0]), np.array([t1]))
        inside = (curve.t >= t0) & (curve.t <= t1)
        power = curve.power_at_samples()
        idle_w = None
        baseline_s = t0 - self._t_baseline
        if self._options["baseline_s"] > 0 and baseline_s > 0:
            idle_e, _ = _windows([curve], np.array([self._t_baseline]), np.array([t0]))
            idle_w = float(idle_e[0]) / baseline_s
        duration = t1 - t0
        return DeviceEnergy(
            name=curve.name,
            kind=curve.kind,
            method=curve.method,
            energy_j=float(energy[0]),
            uncertainty_j=float(unc[0]),
            avg_power_w=float(energy[0]) / duration if duration > 0 else 0.0,
            peak_power_w=float(power[inside].max()) if inside.any() else float(power.max()),
            samples=int(inside.sum()),
            partial=error is not None,
            error=error,
            idle_power_w=idle_w,
        )

    def _phase_energy(self, curves: list[EnergyCurve], t0: float, t1: float) -> list[PhaseEnergy]:
        if not self._phases:
            return []
        out = []
        for path in dict.fromkeys(p for p, *_ in self._phases):
            spans = np.array([(a, b) for p, _, a, b in self._phases if p == path])
            out.append(_phase(path, curves, spans[:, 0], spans[:, 1]))
        top = sorted((a, b) for _, depth, a, b in self._phases if depth == 0)
        starts, ends, cursor = [], [], t0
        for a, b in top:
            if a > cursor:
                starts.append(cursor)
                ends.append(a)
            cursor = max(cursor, b)
        if t1 > cursor:
            starts.append(cursor)
            ends.append(t1)
        out.append(_phase(OTHER_PHASE, curves, np.array(starts), np.array(ends)))
        return out

    def _step_energy(self, curves: list[EnergyCurve], t0: float, per_step: bool) -> StepEnergy:
        if not self._steps:
            return StepEnergy()
        count = len(self._steps)
        samples = [s for _, s, _ in self._step_counts if s is not None]
        tokens = [k for _, _, k in self._step_counts if k is not None]
        totals = StepEnergy(
            count=count,
            samples=sum(samples) if samples else None,
            tokens=sum(tokens) if tokens else None,
            flops=None if self._flops_per_step is None else self._flops_per_step[0] * count,
        )
        if not per_step:  # checkpoints skip the per-step arrays to stay cheap
            return totals
        ends = np.array(self._steps)
        starts = np.concatenate([[t0], ends[:-1]])
        durations = tuple((ends - starts).tolist())
        if not curves:
            return dataclasses.replace(totals, duration_s=durations)
        energy, unc = _windows(curves, starts, ends)
        return dataclasses.replace(
            totals,
            duration_s=durations,
            energy_j=tuple(energy.tolist()),
            uncertainty_j=tuple(unc.tolist()),
        )


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


def _windows(
    curves: list[EnergyCurve], a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Energy and uncertainty summed over devices for each window [a_i, b_i]."""
    energy = np.zeros(len(a))
    unc = np.zeros(len(a))
    for curve in curves:
        e, u = curve.window(a, b)
        energy += e
        unc += u
    return energy, unc


def _phase(
    name: str, curves: list[EnergyCurve], a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> PhaseEnergy:
    energy = independent = shared = np.zeros(len(a))
    for curve in curves if len(a) else []:
        e, i, sh = curve.window_parts(a, b)
        energy, independent, shared = energy + e, independent + i, shared + sh
    return PhaseEnergy(
        name=name,
        count=len(a),
        duration_s=float(np.sum(b - a)) if len(a) else 0.0,
        energy_j=float(energy.sum()) if curves else None,
        # Spans' edge errors are independent: root-sum-square, not a plain sum (a phase of
        # 200 short spans would otherwise claim ±50% on a well-measured job). A device's
        # scale error is the same in every span: it adds linearly.
        uncertainty_j=float(np.sqrt(np.sum(independent**2)) + np.sum(shared)) if curves else None,
    )


def _peak_total_power(curves: list[EnergyCurve], t0: float, t1: float) -> float | None:
    """Highest total power (W) across devices at any reading inside the job."""
    if not curves:
        return None
    grid = np.unique(np.concatenate([c.t for c in curves]))
    inside = grid[(grid >= t0) & (grid <= t1)]
    if len(inside) == 0:
        inside = grid
    total = sum(np.interp(inside, c.t, c.power_at_samples()) for c in curves)
    return float(np.max(total))


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
