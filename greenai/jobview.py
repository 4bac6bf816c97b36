"""What a sink, an exporter or the distributed session may read of a job: a read-only view.

:class:`JobView` is the whole of it: the job's name and facts, the figures so far, and what
is new since a cursor (timeline rows after a time, phase spans after a count, windows on
the curves). It reads; it never starts, marks or stops the job. The tracker gives one to
its sinks at start and answers its own read methods from it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError

if TYPE_CHECKING:  # the numeric modules load with the first read, not with the tracker
    import pandas as pd

    from greenai.carbon.accounting import Accounting
    from greenai.curve import EnergyCurve
    from greenai.devices.base import Device
    from greenai.ledger import Ledger
    from greenai.measurement import Measurement, PhaseEnergy
    from greenai.timeline import Timeline

__all__ = ["SPAN_COLUMNS", "JobReads", "JobView"]

SPAN_COLUMNS = ("phase", "depth", "start_s", "end_s")
"""Columns of phase spans: the phase's path, its depth, its start and end (s since start)."""


class JobView:
    """One job, read-only: what a :class:`~greenai.sinks.Sink` gets at ``start``.

    Args:
        name: The job's name.
        facts: Gives the job's ``meta`` and ``tags`` (fresh copies).
        accounting: How energy becomes facility energy, CO2e and water.
        timeline: The job's readings.
        ledger: The job's settled figures.
        t0: The job's start on its clock (s).
        devices: The devices read.
        snapshot: Gives the job so far (its result once stopped).
        clock: Gives ``(running, elapsed_s)``.
        counts: Gives ``(steps so far, the stored run's id or None)``.
        rank: This process's rank in a distributed job (0 alone).
    """

    def __init__(
        self,
        name: str,
        *,
        facts: Callable[[], tuple[dict[str, Any], dict[str, str]]],
        accounting: Accounting,
        timeline: Timeline,
        ledger: Ledger,
        t0: float,
        devices: Sequence[Device],
        snapshot: Callable[[], Measurement],
        clock: Callable[[], tuple[bool, float]],
        counts: Callable[[], tuple[int, str | None]],
        rank: int = 0,
    ) -> None:
        self.name = name
        self.accounting = accounting
        self._facts = facts
        self._timeline = timeline
        self._ledger = ledger
        self._t0 = t0
        self._devices = list(devices)
        self._snapshot = snapshot
        self._clock = clock
        self._counts = counts
        self.rank = rank

    @property
    def meta(self) -> dict[str, Any]:
        """Facts recorded with the run (a copy)."""
        return self._facts()[0]

    @property
    def tags(self) -> dict[str, str]:
        """The run's tags (a copy)."""
        return self._facts()[1]

    @property
    def started(self) -> bool:
        """Always True: a view exists once the job has started."""
        return True

    @property
    def steps(self) -> int:
        """``step()`` calls so far."""
        return self._counts()[0]

    @property
    def run_id(self) -> str | None:
        """The stored run's id, with a store (once it is recorded); None otherwise."""
        return self._counts()[1]

    @property
    def devices(self) -> list[Device]:
        """The devices being read (those that opened)."""
        return list(self._devices)

    @property
    def running(self) -> bool:
        """Whether the job is between start and stop."""
        return self._clock()[0]

    @property
    def elapsed_s(self) -> float:
        """Seconds since the job started (its length once stopped)."""
        return self._clock()[1]

    @property
    def start_s(self) -> float:
        """When the job started, on its clock (s)."""
        return self._t0

    @property
    def retention_s(self) -> float:
        """Seconds of recent readings and phase spans kept at full resolution."""
        from greenai.timeline import RETENTION_S

        return RETENTION_S

    def snapshot(self) -> Measurement:
        """The job so far (status ``running``), or its result once stopped."""
        return self._snapshot()

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
        """
        return self._timeline.rows(
            self._t0, after_s=after_s, settled_only=settled, buckets=buckets, as_frame=as_frame
        )

    def timeline_buckets(self, *, after_s: float = -math.inf, as_frame: bool = True) -> Any:
        """Only the bucket rows (older readings thinned) later than ``after_s``."""
        return self._timeline.bucket_rows(self._t0, after_s=after_s, as_frame=as_frame)

    def curves(self) -> dict[str, EnergyCurve]:
        """Each device's energy curve over the readings kept at full resolution."""
        return self._timeline.curves()

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
        with ledger.lock:  # the newest ``total - seen`` spans, read from the end
            total = ledger.spans_seen
            new = min(max(total - seen, 0), len(ledger.recent_spans))
            spans = list(itertools.islice(reversed(ledger.recent_spans), new))[::-1]
        if not as_frame:
            return {name: [span[i] for span in spans] for i, name in enumerate(SPAN_COLUMNS)}, total
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(spans, columns=list(SPAN_COLUMNS))
        return frame, total

    def device_phases(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Per device, per phase (``(other)`` included): settled energy and uncertainty (J)."""
        return {
            device: {k: (s.energy_j, s.uncertainty_j) for k, s in phases.items()}
            for device, phases in self._ledger.device_phases.items()
        }

    def energy_between(self, starts: Sequence[float], ends: Sequence[float]) -> PhaseEnergy:
        """Energy (J) and uncertainty over windows ``[starts[i], ends[i]]`` on the job's clock.

        For windows marked outside phases (the pytest plugin's benchmark rounds), once the
        job has stopped. Windows' edge errors combine in quadrature, as for phases. Windows
        in the last :data:`~greenai.timeline.RETENTION_S` seconds of the job are evaluated
        on its curves; older windows are not kept.

        Raises:
            ConfigError: A window older than the :data:`~greenai.timeline.RETENTION_S`
                seconds kept at full resolution.
        """
        import numpy as np

        from greenai.measurement import PhaseEnergy
        from greenai.timeline import RETENTION_S
        from greenai.windows import Spans, device_correlation, sum_devices

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
            rho = device_correlation([c.model for c in curves.values()])
            parts = sum_devices((c.window_parts(a, b) for c in curves.values()), len(a), rho)
            spans.add(parts, b - a)
        return PhaseEnergy(
            name="window",
            count=len(a),
            duration_s=float(np.sum(b - a)) if len(a) else 0.0,
            energy_j=spans.energy_j if curves else None,
            uncertainty_j=spans.uncertainty_j if curves else None,
        )


class JobReads:
    """The read methods of :class:`JobView`, answered from a job view found at call time.

    :class:`greenai.Tracker` inherits them: before ``start()`` there is no view (reading the
    timeline raises :class:`~greenai.errors.TrackerStateError`; spans and phases are
    empty), after it the tracker's view answers, also once the job has stopped.
    """

    def _job_view(self, required: bool = True) -> JobView | None:
        """The view that answers; with ``required``, raise when there is none yet."""
        raise NotImplementedError

    @property
    def retention_s(self) -> float:
        """Seconds of recent readings and phase spans kept at full resolution."""
        from greenai.timeline import RETENTION_S

        return RETENTION_S

    @property
    def rank(self) -> int:
        """This process's rank in a distributed job (0 alone, and before start)."""
        view = self._job_view(required=False)
        return 0 if view is None else view.rank

    def timeline(
        self,
        *,
        after_s: float = -math.inf,
        settled: bool = False,
        buckets: bool = True,
        as_frame: bool = True,
    ) -> Any:
        """Per-device readings (:meth:`JobView.timeline`).

        Raises:
            TrackerStateError: The job has not started.
        """
        view = self._job_view()
        assert view is not None
        return view.timeline(after_s=after_s, settled=settled, buckets=buckets, as_frame=as_frame)

    def timeline_buckets(self, *, after_s: float = -math.inf, as_frame: bool = True) -> Any:
        """Only the bucket rows later than ``after_s`` (:meth:`JobView.timeline_buckets`).

        Raises:
            TrackerStateError: The job has not started.
        """
        view = self._job_view()
        assert view is not None
        return view.timeline_buckets(after_s=after_s, as_frame=as_frame)

    def curves(self) -> dict[str, EnergyCurve]:
        """Each device's energy curve over the readings kept at full resolution.

        Raises:
            TrackerStateError: The job has not started.
        """
        view = self._job_view()
        assert view is not None
        return view.curves()

    def phase_spans(self) -> pd.DataFrame:
        """Recent closed phase spans (:meth:`JobView.phase_spans`); empty before start."""
        frame: pd.DataFrame = self.phase_spans_since(0)[0]
        return frame

    def phase_spans_since(self, seen: int, *, as_frame: bool = True) -> tuple[Any, int]:
        """Spans settled after the first ``seen`` (:meth:`JobView.phase_spans_since`)."""
        view = self._job_view(required=False)
        if view is not None:
            return view.phase_spans_since(seen, as_frame=as_frame)
        empty: dict[str, list[Any]] = {name: [] for name in SPAN_COLUMNS}
        if not as_frame:
            return empty, 0
        import pandas as pd

        return pd.DataFrame(empty), 0

    def device_phases(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Per device, per phase (``(other)`` included): energy and uncertainty (J).

        Settled figures; complete once the job has stopped; empty before it starts.
        """
        view = self._job_view(required=False)
        return {} if view is None else view.device_phases()
