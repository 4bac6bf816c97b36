"""The figures every integration writes, under names that group well in each tool.

All names start with ``greenai/`` so MLflow, W&B and TensorBoard put them in one section.
Every energy figure comes with its uncertainty (``..._uncertainty_...``, about 95%
coverage); how it was obtained (``counter``, ``power``, ``model``) is text, so it goes where
each tool keeps text (:func:`method_tags`), never into a number's name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenai.measurement import FLOP_COUNT_PHASE
from greenai.units import FLOP_PER_TFLOP, J_PER_KWH

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement
    from greenai.tracker import Tracker

__all__ = [
    "FLOP_COUNT_PHASE",
    "PREFIX",
    "CurrentPhase",
    "FlopCounter",
    "figures",
    "method_tags",
    "warn_failure",
    "warn_registered_twice",
    "write_report_files",
]

PREFIX = "greenai/"


def figures(m: Measurement, *, flops: float | None = None) -> dict[str, float]:
    """The headline figures of ``m`` (a snapshot or a final result) as name → number.

    Figures that cannot be computed (no energy source, no steps, no FLOPs, no grid
    intensity) are left out rather than written as 0.

    Args:
        m: The measurement.
        flops: FLOPs to divide by when ``m`` has none of its own (the Hugging Face
            Trainer's estimate); ``m.flops`` wins when set.

    Returns:
        ``greenai/elapsed_s``, ``greenai/steps`` always; with energy: ``energy_kwh``,
        ``energy_uncertainty_kwh``, ``avg_power_w``, ``energy_j_per_step`` (and its
        uncertainty), ``energy_j_per_sample``, ``energy_j_per_token``, ``kwh_per_tflop``,
        ``co2e_kg``, ``co2e_market_kg``, ``facility_energy_kwh``; ``flop_count_energy_j``
        when FLOPs were counted in their own phase (``kwh_per_tflop`` leaves it out, the
        total keeps it); ``power_w`` (the latest
        reading, summed over devices) while the job runs.
    """
    out: dict[str, float] = {"elapsed_s": m.duration_s, "steps": float(m.steps.count)}
    if m.energy_j is not None:
        out["energy_kwh"] = m.energy_j / J_PER_KWH
        out["energy_uncertainty_kwh"] = (m.uncertainty_j or 0.0) / J_PER_KWH
        if m.avg_power_w is not None:
            out["avg_power_w"] = m.avg_power_w
        last = [d.last_power_w for d in m.devices]
        if m.status == "running" and last and all(p is not None for p in last):
            out["power_w"] = sum(p for p in last if p is not None)
        s = m.steps
        for name, value in (
            ("energy_j_per_step", s.mean_energy_j),
            ("energy_j_per_step_uncertainty", s.mean_energy_uncertainty_j),
            ("energy_j_per_sample", s.energy_per_sample_j),
            ("energy_j_per_sample_uncertainty", s.energy_per_sample_uncertainty_j),
            ("energy_j_per_token", s.energy_per_token_j),
            ("energy_j_per_token_uncertainty", s.energy_per_token_uncertainty_j),
            ("facility_energy_kwh", m.facility_energy_kwh),
            ("co2e_kg", m.co2e_kg),
            ("co2e_market_kg", m.co2e_market_kg),
        ):
            if value is not None:
                out[name] = value
        work = m.flops if m.flops else flops
        counting_j = m.flop_count_energy_j
        if counting_j is not None:  # in the job's energy, not in the work's
            out["flop_count_energy_j"] = counting_j
        if work:
            out["tflop"] = work / FLOP_PER_TFLOP
            work_j = m.energy_j - (counting_j or 0.0)
            out["kwh_per_tflop"] = work_j / J_PER_KWH / (work / FLOP_PER_TFLOP)
    return {PREFIX + k: float(v) for k, v in out.items()}


def method_tags(m: Measurement) -> dict[str, str]:
    """How the figures were obtained, as text: ``greenai/method`` and one per device.

    ``greenai/method`` is ``counter``, ``power``, ``model`` or a ``+``-joined mix (a mix
    means part of the total is estimated); ``greenai/device_method/<device>`` is each device's.
    """
    tags = {PREFIX + "method": "+".join(m.methods) or "none (time only)"}
    for d in m.devices:
        tags[f"{PREFIX}device_method/{d.name}"] = d.method
    if m.carbon is not None:
        tags[PREFIX + "carbon_intensity_source"] = m.carbon.carbon_intensity_source
    return tags


class CurrentPhase:
    """The one phase a callback keeps open at a time (``train``, ``evaluation``...)."""

    def __init__(self) -> None:
        self._cm: AbstractContextManager[None] | None = None
        self.name = ""

    def enter(self, job: Tracker | None, name: str, *, in_steps: bool = True) -> None:
        """Close the open phase, then open ``name`` on ``job`` (nothing if it is not running).

        ``name`` already open stays open (a callback registered twice enters it twice).
        ``in_steps=False`` keeps the phase's energy out of every step (an evaluation pass:
        see :meth:`greenai.Tracker.phase`).
        """
        if self._cm is not None and self.name == name:
            return
        self.exit()
        if job is None or not job.running:
            return
        self._cm = job.phase(name, in_steps=in_steps)
        self._cm.__enter__()
        self.name = name

    def exit(self) -> None:
        """Close the open phase, if any."""
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)
            self.name = ""


class FlopCounter:
    """A callback's FLOP counting: once per input shape, the counting apart from the steps.

    Counting a new input shape runs the model on fake tensors (0.2 s to seconds for a small
    transformer): inside a training step it would be charged to that step as training
    energy. So each new shape is counted inside its own tracked phase
    :data:`FLOP_COUNT_PHASE` (``train/flop-count``), kept out of every step
    (``in_steps=False``): its time and energy are measured and shown apart, in no step's
    energy and not in the job's energy per TFLOP
    (:attr:`greenai.Measurement.j_per_tflop`). Later calls with a seen shape are a dict
    lookup.

    Attributes:
        failed: Counting raised once: the counter stays off (the callback falls back).
        seconds: Time spent counting, in seconds.
    """

    def __init__(self) -> None:
        self._seen: set[Any] = set()
        self._busy = False
        self.failed = False
        self.seconds = 0.0

    def __call__(
        self,
        job: Tracker | None,
        model: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        backward: bool,
    ) -> Exception | None:
        """Count one call's FLOPs on ``job``; the error when counting failed, else None."""
        if self._busy or self.failed or job is None or not job.running:
            return None
        import time

        from greenai.flops.cache import shape_key

        try:
            key: Any = (backward, shape_key(*args, **kwargs))
        except Exception:  # an input the cache cannot key: count apart every time
            key = None
        self._busy = True
        start = time.perf_counter()
        try:
            if key is not None and key in self._seen:
                job.count_flops(model, *args, backward=backward, **kwargs)
            else:
                with job.phase(FLOP_COUNT_PHASE, in_steps=False):
                    job.count_flops(model, *args, backward=backward, **kwargs)
                self._seen.add(key)
        except Exception as exc:  # a FLOP counter failure must not stop training
            self.failed = True
            return exc
        finally:
            self._busy = False
            self.seconds += time.perf_counter() - start
        return None


def warn_failure(what: str, exc: BaseException) -> None:
    """Warn that greenai's own ``what`` failed; never raise into the user's training."""
    import warnings

    from greenai.errors import MeasurementWarning

    warnings.warn(
        f"greenai: {what} failed ({type(exc).__name__}: {exc}); training goes on and the"
        " measurement is kept in the callback's result",
        MeasurementWarning,
        stacklevel=3,
    )


def warn_registered_twice(callback: object) -> None:
    """Warn that one callback object was given to one trainer twice."""
    import warnings

    from greenai.errors import MeasurementWarning

    warnings.warn(
        f"greenai: {type(callback).__name__} is registered twice with this trainer; the"
        " second registration is ignored (each step is counted once)",
        MeasurementWarning,
        stacklevel=3,
    )


def write_report_files(folder: Path, job: Tracker | JobView | None, result: Measurement) -> None:
    """Write ``measurement.json`` and ``report.html`` (with the job's power plot) to ``folder``.

    A timeline that cannot be read leaves the report without its plot, not unwritten.
    """
    import json

    from greenai.report import render_html

    timeline = spans = None
    if job is not None:
        try:
            timeline, spans = job.timeline(), job.phase_spans()
        except Exception:  # the report without its power plot is still worth keeping
            timeline = spans = None
    (folder / "measurement.json").write_text(
        json.dumps(result.to_dict(), indent=2), encoding="utf-8"
    )
    (folder / "report.html").write_text(render_html(result, timeline, spans), encoding="utf-8")
