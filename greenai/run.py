"""The active run: what exists only between a tracker's ``start()`` and ``stop()``.

:class:`ActiveRun` opens the devices, samples them, takes the marks into its ledger, feeds
the sinks through its live thread, and at the end turns everything into the job's
:class:`~greenai.Measurement`. The :class:`~greenai.Tracker` makes one at ``start()`` and
lets it go at ``stop()``, keeping only the result and a read-only :class:`JobView`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from greenai.assembly import fallback, measure
from greenai.busy import CpuWatch
from greenai.carbon.extras import load_series, with_embodied_and_hourly, with_job_embodied
from greenai.checkpoint import StoreSink, resolve_store
from greenai.checks import is_sink_factory
from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.cuda_sync import resolve_sync
from greenai.devices.base import Device
from greenai.distributed.cluster import cluster_identity
from greenai.distributed.session import DistributedSession, open_session
from greenai.errors import ConfigError, MeasurementWarning, TrackerStateError
from greenai.jobview import JobView
from greenai.ledger import Ledger, OpenPhase
from greenai.live import LiveThread
from greenai.measurement import Measurement
from greenai.options import TrackOptions
from greenai.phase_block import PhaseBlock
from greenai.sampling.sampler import Sampler
from greenai.sinks import Sink, SinkSet
from greenai.timeline import Timeline

if TYPE_CHECKING:
    from greenai.carbon.accounting import Accounting
    from greenai.carbon.series import IntensitySeries
    from greenai.work import WorkTally

__all__ = ["ActiveRun"]


class ActiveRun:
    """One tracked job while it runs (see the module docstring).

    Args:
        name: The job's name.
        config: The tracker's options.
        accounting: The job's accounting (checked; its grid is looked up at start).
        work: The job's tally of samples, tokens and FLOPs.
    """

    def __init__(
        self, name: str, config: TrackOptions, accounting: Accounting, work: WorkTally
    ) -> None:
        self.name = name
        self.config = config
        self.accounting = accounting
        self.work = work
        self.meta = dict(config.meta or {})
        self.clock: Clock = config.clock or SYSTEM_CLOCK
        self.now = self.clock.now
        self.sync: Callable[[], Any] | None = None
        self.sync_notes: list[str] = []
        self.series: IntensitySeries | None = None
        self.store_sink: StoreSink | None = None
        self.sinks = SinkSet([])
        self.dist: DistributedSession | None = None
        self.timeline = Timeline([])
        self.ledger = Ledger(self.timeline)
        self.sampler = Sampler([], self.timeline, clock=self.clock)
        self.t0 = self.t_baseline = 0.0
        self.started_at = ""
        self.open_phases: list[OpenPhase] = []
        self.last_live: dict[str, float] = {}
        self.running = False
        self.result: Measurement | None = None
        self.view: JobView | None = None
        self._live: LiveThread | None = None
        self.cpu_watch: CpuWatch | None = None

    @property
    def steps(self) -> int:
        """``step()`` calls so far."""
        return self.ledger.steps_done + len(self.ledger.steps)

    def elapsed_s(self) -> float:
        """Seconds since the job started; its length once stopped."""
        if self.running:
            return max(self.now() - self.t0, 0.0)
        return self.result.duration_s if self.result is not None else 0.0

    # --- start ---------------------------------------------------------------------------
    def start(self) -> None:
        """Open what the job writes to, find and open its devices, sample, start the sinks.

        Raises:
            ConfigError: An unknown grid, an unreadable intensity series, a store that
                cannot be opened, a sink factory that makes no sink.
        """
        self._prepare()
        devices = self._devices()
        self.cpu_watch = _watch_cpu(devices, self.config.scope)
        self.timeline = Timeline(devices)
        self.ledger = Ledger(self.timeline, board_gain=self.config.board_gain)
        self.sampler = Sampler(
            devices, self.timeline, period_s=self.config.period_s, clock=self.clock
        )
        self.sync, self.sync_notes = resolve_sync(self.config.sync)  # nothing to undo yet
        self.sampler.start()
        try:  # from here on a failure (a sync that raises, Ctrl-C in the baseline) stops it
            self._begin()
            self._start_sinks()
        except BaseException:
            if self.running and self.store_sink is not None and self.store_sink.run_id:
                raise  # stored as running: the tracker ends the run with what was measured
            self.running = False
            self.sampler.stop()
            raise

    def _prepare(self) -> None:
        self.accounting.grid()  # an unknown country/region fails now, not after the job
        self.series = load_series(self.config.carbon_intensity_series)
        store = resolve_store(self.config.store)
        made = _made_sinks(self.config.sinks)
        self.dist = open_session(  # None unless distributed
            self.name, self.config.distributed, devices_given=self.config.devices is not None
        )
        if self.dist is not None:
            if self.dist.info.rank != 0:
                store = None  # rank 0 records the job
            else:
                self.meta = {**self.meta, **self.dist.meta()}
        cluster = cluster_identity()  # SLURM job/step, Kubernetes pod: for `greenai reconcile`
        if cluster:
            self.meta = {"cluster": cluster.to_dict(), **self.meta}
        if store is not None:  # a required sink: its start() must succeed (greenai.sinks)
            self.store_sink = StoreSink(store, clock=self.clock)
        self.sinks = SinkSet([*([] if self.store_sink is None else [self.store_sink]), *made])
        if self.sinks.sinks:
            # Snapshots build frames on the live thread: import pandas here, on the caller's
            # thread, so no background thread ever holds an import lock (a fork() at that
            # moment deadlocks the child) and the first checkpoint is not late.
            import pandas  # noqa: F401

    def _devices(self) -> list[Device]:
        given = self.config.devices
        devices: list[Device] = [] if given is None else list(given)
        if given is None:
            from greenai.devices.discovery import discover

            devices = discover()
            if self.dist is not None:  # each rank measures the devices it owns
                devices = self.dist.own(devices, scope=self.config.scope)
        if self.config.scope != "machine":  # found or given: charge this process its share
            from greenai.devices.attribution import apply_scope

            devices = apply_scope(list(devices), self.config.scope, pid=os.getpid())
        return list(devices)

    def _begin(self) -> None:
        self.t_baseline = self.now()
        baseline_s = self.config.baseline_s
        if baseline_s > 0:
            self.clock.wait_until(object(), self.t_baseline + baseline_s, threading.Event())
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.t0 = self.mark_now()
        self.timeline.t0 = self.t0
        self.ledger.begin(self.t_baseline, self.t0, baseline_s > 0)
        self.running = True
        self.view = JobView(
            self.name,
            facts=lambda: (dict(self.meta), dict(self.config.tags or {})),
            accounting=self.accounting,
            timeline=self.timeline,
            ledger=self.ledger,
            t0=self.t0,
            devices=self.sampler.devices,
            snapshot=self.snapshot,
            clock=lambda: (self.running, self.elapsed_s()),
            counts=lambda: (
                self.steps,
                None if self.store_sink is None else self.store_sink.run_id,
            ),
            rank=0 if self.dist is None else self.dist.info.rank,
        )

    def _start_sinks(self) -> None:
        assert self.view is not None
        self.sinks.start(self.view)  # the store first: its errors raise, nothing ran yet
        readers = bool(self.sinks.sinks)
        self._live = LiveThread(
            self.clock,
            self.config.checkpoint_s,
            settle=self.settle,
            publish=self._publish if readers else None,
        )
        self._live.start()

    # --- while it runs -------------------------------------------------------------------
    def mark_now(self) -> float:
        """The clock at a mark (start, step, phase edge, stop), after ``sync`` if asked."""
        if self.sync is not None:
            self.sync()
        return self.now()

    def phase(self, name: str, in_steps: bool = True) -> PhaseBlock:
        """A block that is phase ``name`` each time it is entered (see :class:`PhaseBlock`)."""
        return PhaseBlock(self, name, in_steps)

    @contextmanager
    def phase_span(self, name: str, in_steps: bool = True) -> Iterator[None]:
        """The block is phase ``name`` (see :meth:`greenai.Tracker.phase`).

        Raises:
            TrackerStateError: Phases exited out of order.
            ConfigError: ``name`` is empty, not a string, or contains ``/``.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"phase names must be non-empty strings without '/', got {name!r}")
        opened = self.open_phases
        parent = opened[-1].path + "/" if opened else ""
        if not isinstance(in_steps, bool):
            raise ConfigError(f"phase(in_steps=...) takes True or False, got {in_steps!r}")
        entry = OpenPhase(parent + name, len(opened), self.mark_now(), in_steps=in_steps)
        if not in_steps and all(ph.in_steps for ph in opened):  # the outermost one counts
            self.ledger.apart.append(entry)
        opened.append(entry)
        self.ledger.open_phases = opened
        try:
            yield
        finally:
            if entry.end is None:  # stop() may already have closed it
                if not opened or opened[-1] is not entry:
                    inner = opened[-1].path if opened else None
                    raise TrackerStateError(
                        f"phase {entry.path!r} exited while {inner!r} is still open: phases"
                        " must nest (exit the inner one first)"
                    )
                try:
                    t = self.mark_now()
                except BaseException:  # a failing sync still closes the phase, where it is
                    self.close_phase(entry, self.now())
                    raise
                self.close_phase(entry, t)

    def close_phase(self, entry: OpenPhase, t: float) -> None:
        """End an open phase at ``t``."""
        self.open_phases.remove(entry)
        entry.end = t
        self.ledger.closed.append(entry)

    def settle(self) -> None:
        """Fold what the devices have settled into the running figures."""
        if self.running:
            self.ledger.settle(self.now()).commit()

    def snapshot(self) -> Measurement:
        """The job so far (status ``running``); its result once stopped."""
        if self.result is not None and not self.running:
            return self.result
        now = self.now()
        p = self.ledger.settle(now)
        p.commit()  # its curves stay valid for the figures below
        with self.ledger.lock:  # a sink's snapshot and the user's may overlap
            return measure(self, p, now, "running", [], live=True)

    def _publish(self) -> None:
        self.sinks.update(self.snapshot())

    # --- stop ----------------------------------------------------------------------------
    def halt(self, notes: list[str]) -> float:
        """Take the end mark, close open phases, stop the live thread and the sampler.

        Returns the job's end on its clock; what went wrong is added to ``notes``.
        """
        notes.extend(self.sync_notes)
        try:
            t1 = self.mark_now()
        except Exception as exc:  # the user's sync function: never lose the measurement
            notes.append(f"sync() failed at stop ({exc!r}); the job ends where stop() was called")
            t1 = self.now()
        self.running = False
        if self.open_phases:
            names = [ph.path for ph in self.open_phases]
            message = f"phase(s) {names} still open when {self.name!r} stopped; closed at stop"
            warnings.warn(message, MeasurementWarning, stacklevel=4)
            notes.append(message)
            while self.open_phases:
                self.close_phase(self.open_phases[-1], t1)
        try:
            if self._live is not None and not self._live.stop():
                notes.append(
                    "a sink's update() was still running at stop and was left behind; the"
                    " final figures were computed without waiting for it"
                )
        finally:
            self.sampler.stop()
        busy = self.cpu_watch.note() if self.cpu_watch is not None else None
        if busy is not None:  # once per job: stop() runs once
            warnings.warn(busy, MeasurementWarning, stacklevel=4)
            notes.append(busy)
        return t1

    def conclude(self, t1: float, status: str, notes: list[str]) -> Measurement:
        """The final figures, the distributed job's record, and the sinks' last call."""
        try:
            result = self._final(t1, status, notes)
        except Exception as exc:  # keep what can be kept: time, and why the rest is missing
            result = fallback(self, t1, status, [*notes, f"figures not computed: {exc!r}"])
        if self.dist is not None:  # rank 0 gets the job; other ranks their own view
            own = result
            assert self.view is not None
            result = self.dist.finish(self.view, result)
            if result.job is not None and result.job.scope == "job":
                result = with_job_embodied(own, result)
        known = list(self.sinks.problems)  # a sink that failed so far: noted in the record too
        if known:
            result = dataclasses.replace(result, notes=(*result.notes, *known))
        self.result = result
        self.sinks.finish(result)  # waits for the store's (a required sink)
        store_problems: list[str] = []
        if self.store_sink is not None:
            for message in self.store_sink.problems:  # on the caller's thread, once each kind
                warnings.warn(message, MeasurementWarning, stacklevel=4)
            store_problems = [f"run store: {p}" for p in self.store_sink.problems]
        for message in self.sinks.problems:
            warnings.warn(message, MeasurementWarning, stacklevel=4)
        late = [p for p in self.sinks.problems if p not in known]  # in finish(): not stored
        if late or store_problems:
            self.result = dataclasses.replace(result, notes=(*result.notes, *store_problems, *late))
        if self.dist is not None:  # its warnings (and a held SIGTERM) once the record is kept
            self.dist.close()
        return self.result

    def _final(self, t1: float, status: str, notes: list[str]) -> Measurement:
        p = self.ledger.settle(max(self.now(), t1), final=True, t1=t1)
        p.commit()  # its curves stay valid for the figures below
        with self.ledger.lock:
            result = measure(self, p, t1, status, notes, live=False)
        timeline = None if self.view is None else self.view.timeline
        return with_embodied_and_hourly(result, self.series, timeline)


def _watch_cpu(devices: list[Device], scope: str) -> CpuWatch | None:
    """Other processes' CPU time, for a machine-scope job that measures CPU or memory.

    Devices attributed to a process tree already (``Device.scope``, as ``serve-proxy``
    passes them) are process scope whatever the job's own ``scope`` says: not watched.
    """
    watched = [d for d in devices if d.kind in ("cpu", "dram") and d.scope == "machine"]
    if scope != "machine" or not watched:
        return None
    try:
        watch = CpuWatch.for_process()
        watch.start()
    except Exception:  # psutil on an odd platform: no note, never a failed start
        return None
    return watch


def _made_sinks(given: tuple[Any, ...]) -> list[Sink]:
    """The job's sinks: those given, and one from each factory.

    Raises:
        ConfigError: A factory made something that is not a sink.
    """
    sinks = []
    for sink in given:
        made = sink() if is_sink_factory(sink) else sink
        if not isinstance(made, Sink):
            raise ConfigError(
                f"sink factory {sink!r} made {made!r}, which lacks start(job), update(snapshot)"
                " and finish(result)"
            )
        sinks.append(made)
    return sinks
