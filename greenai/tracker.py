"""Tracker and ``track()``: wrap any loop and get a :class:`~greenai.Measurement`.

A :class:`Tracker` starts, marks and stops; nothing more. Between ``start()`` and ``stop()``
the job is an :class:`~greenai.run.ActiveRun` (devices, sampler, ledger, live thread,
sinks); ``stop()`` turns it into the immutable Measurement and lets it go, keeping a
read-only :class:`~greenai.jobview.JobView` for the timeline and the windows. ``step()`` and
``phase()`` only record a timestamp on the caller's thread; every device read happens on
the sampler thread.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from greenai.errors import ConfigError, TrackerStateError
from greenai.facts import RunFacts
from greenai.interrupts import shield
from greenai.jobview import JobReads, JobView
from greenai.options import OPTIONS as OPTIONS
from greenai.options import TrackOptions
from greenai.sinks import refuse_from_background
from greenai.work import WorkTally

if TYPE_CHECKING:  # the run and the figures load at start(), not with ``greenai.track``
    from greenai.carbon.accounting import Accounting
    from greenai.devices.base import Device
    from greenai.distributed.session import DistributedSession
    from greenai.measurement import Measurement, PhaseEnergy
    from greenai.run import ActiveRun

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("greenai")

_current: contextvars.ContextVar[Tracker | None] = contextvars.ContextVar(
    "greenai_tracker", default=None
)


def current() -> Tracker | None:
    """The innermost running tracker in this context, for code inside a decorated function."""
    return _current.get()


class Tracker(JobReads, RunFacts):
    """Measure the energy of everything between :meth:`start` and :meth:`stop`.

    Args:
        name: A label for the job (stored with the result).
        options: The options as one :class:`~greenai.options.TrackOptions`; keyword
            options (its field names: ``devices``, ``period_s``, ``country``, ``sinks``...)
            are applied on top of it.

    Raises:
        ConfigError: An unknown option or an unusable value. An unknown country or region,
            and an unreadable intensity series, are reported by :meth:`start`, before
            anything is measured.
    """

    def __init__(self, name: str = "job", options: TrackOptions | None = None, **kwargs: Any):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"the job name must be a non-blank string, got {name!r}")
        if options is None:
            options = TrackOptions.from_kwargs(kwargs)
        elif kwargs:
            options = options.replace(**kwargs)
        self.name = name
        self.config = options
        self.work = WorkTally(options.flops_per_step, options.dtype)
        self._accounting = options.accounting()
        self._run: ActiveRun | None = None
        self._view: JobView | None = None
        self._result: Measurement | None = None
        self._dist: DistributedSession | None = None
        self._run_id: str | None = None
        self._steps = 0
        self._meta = dict(options.meta or {})
        self._token: contextvars.Token[Tracker | None] | None = None

    # --- what it is ----------------------------------------------------------------------
    @property
    def tags(self) -> dict[str, str]:
        """The run's tags: ``GREENAI_TAGS`` overridden by ``tags=`` (strings)."""
        return dict(self.config.tags or {})

    @property
    def options(self) -> dict[str, Any]:
        """The options this tracker was made with, as a dict (a copy; :attr:`config` whole)."""
        return self.config.as_dict()

    @property
    def accounting(self) -> Accounting:
        """How energy becomes facility energy, CO2e and water for this job."""
        return self._accounting

    @property
    def devices(self) -> list[Device]:
        """The devices being read (after :meth:`start`; those that opened)."""
        return [] if self._view is None else self._view.devices

    @property
    def run(self) -> ActiveRun | None:
        """The running job (between :meth:`start` and :meth:`stop`), else None."""
        return self._run

    @property
    def run_id(self) -> str | None:
        """The id of the stored run, with a store; None otherwise."""
        if self._run is not None and self._run.store_sink is not None:
            return self._run.store_sink.run_id
        return self._run_id

    @property
    def started(self) -> bool:
        """Whether the job has started (past any idle baseline)."""
        return self.running or self._result is not None

    @property
    def running(self) -> bool:
        """Whether the tracker is between start() and stop()."""
        return self._run is not None and self._run.running

    @property
    def start_s(self) -> float | None:
        """When the job started, on its clock (s); None before :meth:`start`."""
        return None if self._view is None else self._view.start_s

    @property
    def elapsed_s(self) -> float:
        """Seconds since the job started; its length once stopped; 0 before."""
        if self._run is not None and self._run.running:
            return self._run.elapsed_s()
        return self._result.duration_s if self._result is not None else 0.0

    @property
    def steps(self) -> int:
        """``step()`` calls so far."""
        return self._run.steps if self._run is not None else self._steps

    @property
    def distributed_session(self) -> DistributedSession | None:
        """This rank's part in a distributed job, or None."""
        return self._run.dist if self._run is not None else self._dist

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> Tracker:
        """Discover/open devices, take the idle baseline if asked, and start sampling.

        Raises:
            TrackerStateError: The tracker was already started.
            ConfigError: See :meth:`greenai.run.ActiveRun.start`.
        """
        if self._run is not None or self._result is not None:
            raise TrackerStateError(
                f"tracker {self.name!r} was already started; create a new Tracker per run"
            )
        from greenai.run import ActiveRun

        run = ActiveRun(self.name, self.config, self._accounting, self.work)
        self._run = run
        self._token = _current.set(self)
        try:
            run.start()
        except BaseException as exc:
            if run.running:  # Ctrl-C just after the store opened: end the run there, never
                self._view = run.view  # leave it ``running``
                stopped = isinstance(exc, KeyboardInterrupt | SystemExit)
                try:
                    self.stop(status="interrupted" if stopped else "failed")
                except Exception:  # the original failure is what the caller must see
                    log.exception("greenai: stopping %r after a failed start failed", self.name)
                raise
            self._run = None
            _current.set(None)
            raise
        self._view = run.view
        return self

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
        run = self._run
        if run is None or not run.running:
            raise TrackerStateError(
                f"tracker {self.name!r} is not running: call start() (or use `with`) first"
            )
        refuse_from_background(f"stop() of tracker {self.name!r}")
        notes: list[str] = []
        try:
            t1 = run.halt(notes)
        finally:
            if self._token is not None:
                try:
                    _current.reset(self._token)
                except ValueError:  # stopped from another context
                    _current.set(None)
                self._token = None
        try:
            run.conclude(t1, status, notes)
        finally:  # a warning made an error (at the very end) still leaves the result kept
            self._result = run.result
            self._dist, self._meta, self._steps = run.dist, run.meta, run.steps
            self._run_id = None if run.store_sink is None else run.store_sink.run_id
            self._run = None
        assert self._result is not None
        return self._result

    def snapshot(self) -> Measurement:
        """The job so far: a Measurement with status ``running`` (the result once stopped).

        Energy never decreases from one snapshot to the next; it costs what is new since
        the last settling pass; per-step arrays are left out (``steps.count`` is set).

        Raises:
            TrackerStateError: The tracker has not started.
        """
        if self._result is not None:
            return self._result
        if self._run is None or not self._run.running:
            raise TrackerStateError(f"tracker {self.name!r} has not started")
        return self._run.snapshot()

    def settle(self) -> None:
        """Fold what the devices have settled into the running figures.

        The live thread does this every few seconds; public for code that needs figures now.
        """
        if self._run is not None:
            self._run.settle()

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.running:
            return
        if exc_type is None:
            self.stop()
        elif issubclass(exc_type, KeyboardInterrupt | SystemExit):
            self.stop(status="interrupted")
        else:
            self.stop(status="failed")

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call is a job; the last result is ``fn.last_result``.

        Each call makes its own sinks, so sinks must be given as factories.

        Raises:
            ConfigError: A sink given as an object (it would serve every call).
        """
        from greenai.decorate import tracked

        name, options = self.name, self.config
        return tracked(fn, lambda: Tracker(name, options), options.sinks)

    # --- marks on the hot path ----------------------------------------------------------
    def step(self, samples: int | None = None, tokens: int | None = None) -> None:
        """Mark the end of a training/inference step; optionally count its samples/tokens.

        Raises:
            TrackerStateError: The tracker is not running.
            ConfigError: ``samples`` or ``tokens`` is not a non-negative integer.
        """
        run = self._run
        if run is None or not run.running:
            raise TrackerStateError(f"step() on tracker {self.name!r}, which is not running")
        if samples is None and tokens is None:
            run.ledger.steps.append(run.mark_now())
            return
        counts = self.work.check_counts(samples, tokens)  # both, before either
        t = run.mark_now()
        self.work.add_counts(*counts)
        run.ledger.steps.append(t)

    def phase(self, name: str, *, in_steps: bool = True) -> AbstractContextManager[None]:
        """Attribute the energy inside the block to phase ``name`` (nestable).

        ``in_steps=False`` keeps the block's energy out of the step whose span holds it
        (an eval pass at an epoch's edge, FLOP counting): steps, such blocks and the time
        after the last step still add up to the job exactly.

        Raises:
            TrackerStateError: The tracker is not running, or phases are exited out of
                order (an outer phase's block ended while an inner one was still open).
            ConfigError: ``name`` is empty, not a string, or contains ``/``; ``in_steps``
                is not a bool.
        """
        run = self._run
        if run is None or not run.running:
            raise TrackerStateError(f"phase() on tracker {self.name!r}, which is not running")
        return run.phase(name, in_steps)

    # --- work done -----------------------------------------------------------------------
    def add_flops(self, flops: float, executed: float | None = None) -> None:
        """Add FLOPs done in this job (``executed`` defaults to ``flops``, the nominal).

        Raises:
            ConfigError: A negative or non-finite count.
        """
        self.work.add_flops(flops, executed)

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
        return self.work.count_flops(
            model, inputs, kwargs, backward=backward, causal=causal, per_step=per_step
        )

    # --- results; what sinks read comes from JobReads (greenai.jobview) ----------------
    @property
    def result(self) -> Measurement:
        """The Measurement of a stopped tracker. Raises TrackerStateError before stop()."""
        if self._result is None:
            raise TrackerStateError(f"tracker {self.name!r} has no result until it is stopped")
        return self._result

    def _job_view(self, required: bool = True) -> JobView | None:
        if self._view is None and required:
            raise TrackerStateError(f"tracker {self.name!r} has not started")
        return self._view

    def energy_between(self, starts: Sequence[float], ends: Sequence[float]) -> PhaseEnergy:
        """Energy (J) and uncertainty over windows ``[starts[i], ends[i]]``, after :meth:`stop`.

        See :meth:`greenai.jobview.JobView.energy_between`.

        Raises:
            TrackerStateError: The tracker has not stopped.
            ConfigError: A window older than what the tracker keeps.
        """
        if self._view is None or self.running:
            raise TrackerStateError(f"energy_between() needs tracker {self.name!r} stopped")
        return self._view.energy_between(starts, ends)


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

    Options are the fields of :class:`~greenai.options.TrackOptions` (``devices``,
    ``period_s``, ``baseline_s``, ``clock``...); an unknown option raises
    :class:`~greenai.errors.ConfigError`.
    """
    return Tracker(name, **options)
