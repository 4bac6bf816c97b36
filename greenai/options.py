"""The tracker's options: one frozen dataclass, checked once, the single source of each option.

:class:`TrackOptions` names every option of :class:`greenai.Tracker` and
:func:`greenai.track` once, with its default, its check and, where it has one, its
command-line flag. The CLI (``greenai run``, ``greenai demo``, ``greenai compress``), the
``%%greenai`` notebook magic, :func:`greenai.runner.run_command` and
:func:`greenai.compress.sweep` take their flags and keyword options from here (through
:mod:`greenai.flags`). Nothing here touches a file or a device: the
intensity series is loaded, the store opened and the devices found at ``Tracker.start()``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from greenai.checks import (
    check_devices,
    check_flops,
    check_seconds,
    check_series,
    check_sinks,
    check_store,
    is_number,
    seconds,
)
from greenai.devices.base import Device
from greenai.errors import ConfigError
from greenai.tags import merge_tags

if TYPE_CHECKING:
    from greenai.carbon.accounting import Accounting
    from greenai.clock import Clock

__all__ = ["OPTIONS", "STORE_HELP", "TrackOptions"]

STORE_HELP = (
    "run store: an SQLite file or a postgresql:// URL"
    " (default: $GREENAI_STORE, else $GREENAI_HOME/runs.db or ./.greenai/runs.db)"
)
"""What ``--store`` means, wherever the command line takes it."""

Scope = Literal["machine", "process"]


def _flag(flag: str, **argparse_kwargs: Any) -> dict[str, Any]:
    """A field's metadata: its command-line flag and argparse settings."""
    return {"flag": flag, "argparse": argparse_kwargs}


_ACCOUNTING = (
    "pue",
    "country",
    "region",
    "cloud",
    "carbon_intensity_g_per_kwh",
    "renewable_share",
    "wue_l_per_kwh",
    "market_factor_g_per_kwh",
    "market_factor_kind",
)


@dataclass(frozen=True)
class TrackOptions:
    """Every option of a tracker, checked once on construction.

    Attributes:
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
            (:func:`greenai.carbon.series.load_intensity_series`). Loaded and checked at
            ``start()``; at stop the power timeline is charged at each hour's intensity,
            giving ``Measurement.co2e_series_kg`` beside the yearly-average figure.
        renewable_share: Share in [0, 1] of energy under renewable contracts (PPAs), for
            market-based CO2e.
        market_factor_g_per_kwh: For market-based CO2e, the factor of the energy not
            covered by ``renewable_share`` (g CO2e/kWh): a supplier-specific rate or a
            residual mix. Without it the grid average stands in (the last-resort tier).
        market_factor_kind: What that factor is: ``"supplier"`` or ``"residual_mix"``.
        wue_l_per_kwh: Water usage effectiveness (litres per IT kWh), for ``water_l``.
        flops_per_step: FLOPs of one step, when known; multiplied by the number of steps.
        dtype: The compute dtype (``"bf16"``, ``torch.float16``...), to find the GPU's peak
            for MFU; by default the dtype of the model given to ``count_flops()``.
        store: Record the run in a run store: ``True`` for the default
            (``$GREENAI_HOME/runs.db`` or ``./.greenai/runs.db``), a path, or a
            :class:`greenai.store.RunStore`. Off by default for library use.
        checkpoint_s: Seconds between snapshots given to the sinks (the store checkpoints
            at each); a killed process keeps everything up to its last checkpoint.
        meta: With a store, extra facts to record with the run (a dict of JSON values).
        tags: With a store, what the run belongs to, for fleet roll-ups: ``{"team": ...,
            "project": ..., "model": ..., "site": ..., any other: ...}`` (strings), over
            those of ``GREENAI_TAGS`` (see :mod:`greenai.tags`); held merged.
        distributed: None joins a torch.distributed job when a process group is up, True
            requires one, False measures this process alone (docs/distributed.md).
        sinks: Where the job's figures go while it runs (:class:`greenai.sinks.Sink`):
            sink objects, or factories (a class, a function) that make one per job, which
            a decorated function needs (each call is a job).
        scope: ``"machine"`` (default): what the hardware drew, whoever used it;
            ``"process"``: each device's share charged to this process's tree
            (:func:`greenai.devices.attribution.apply_scope`), for found and given devices.
        board_gain: Add each GPU board's gain error (about ±5%,
            :data:`greenai.windows.BOARD_GAIN_REL`; Yang, Adámek and Armour, SC'24) to the
            uncertainty as a shared part, for figures compared with a wall meter or across
            boards. Off by default: repeated runs on one board share its gain. A note on
            the result says when it is on.
        sync: Make every mark (start, ``step()``, phase entry and exit, stop) wait for the
            GPU: ``True`` calls ``torch.cuda.synchronize()`` before taking the time, a
            function is called instead (another accelerator's, or several devices'). CUDA
            runs work asynchronously, so without it a mark falls where Python queued the
            work, not where the GPU did it: per-step figures are right on average, phase
            splits (forward against backward) can be far off. It costs the overlap of
            CPU and GPU work at every mark: use it to study phases, not in production
            runs. A note on the result says when ``True`` found no CUDA device.

    Raises:
        ConfigError: An unusable value (:meth:`from_kwargs` also: an unknown option). An
            unknown country or region, and a bad intensity series file, are reported by
            ``Tracker.start()``, before anything is measured.
    """

    devices: tuple[Device, ...] | None = None
    period_s: float | None = field(
        default=None, metadata=_flag("--period", type=seconds, help="sampling period in seconds")
    )
    baseline_s: float = 0.0
    clock: Clock | None = None
    pue: float = field(default=1.0, metadata=_flag("--pue", type=float, help="facility PUE"))
    country: str | None = field(
        default=None,
        metadata=_flag("--country", help="ISO alpha-3 grid for CO2e (e.g. FRA, or WORLD)"),
    )
    region: str | None = field(
        default=None,
        metadata=_flag(
            "--region", help="sub-national grid (US state, ...) or, with --cloud, the cloud region"
        ),
    )
    cloud: str | None = field(
        default=None,
        metadata=_flag(
            "--cloud",
            choices=["aws", "gcp", "azure"],
            help="cloud provider: the grid is --region's (e.g. --cloud gcp --region us-central1)",
        ),
    )
    carbon_intensity_g_per_kwh: float | None = field(
        default=None,
        metadata=_flag(
            "--carbon-intensity", type=float, help="grid g CO2e/kWh (overrides --country)"
        ),
    )
    carbon_intensity_series: Any = field(
        default=None,
        metadata=_flag(
            "--carbon-intensity-series",
            metavar="FILE",
            help="CSV of UTC times and g CO2e/kWh: also charge CO2e hour by hour",
        ),
    )
    renewable_share: float | None = field(
        default=None,
        metadata=_flag(
            "--renewable-share", type=float, help="share in [0, 1] under renewable contracts"
        ),
    )
    market_factor_g_per_kwh: float | None = None
    market_factor_kind: Any = None
    wue_l_per_kwh: float | None = None
    flops_per_step: float | None = None
    dtype: Any = None
    store: Any = field(
        default=None,
        metadata=_flag("--store", help=STORE_HELP),
    )
    checkpoint_s: float = field(
        default=5.0,
        metadata=_flag("--checkpoint", type=seconds, help="seconds between checkpoints"),
    )
    meta: Mapping[str, Any] | None = None
    tags: Mapping[str, str] | None = None
    distributed: bool | None = None
    sinks: tuple[Any, ...] = ()
    scope: Scope = field(
        default="machine",
        metadata=_flag(
            "--scope",
            choices=["machine", "process"],
            help="machine: all the hardware drew; process: the command's share",
        ),
    )
    board_gain: bool = False
    sync: bool | Callable[[], Any] = False

    def __post_init__(self) -> None:
        check_seconds("period_s", self.period_s, allow_none=True)
        check_seconds("checkpoint_s", self.checkpoint_s)
        if not (is_number(self.baseline_s) and math.isfinite(self.baseline_s)):
            raise ConfigError(
                f"baseline_s must be a finite number >= 0 seconds, got {self.baseline_s!r}"
            )
        if self.baseline_s < 0:
            raise ConfigError(
                f"baseline_s must be a finite number >= 0 seconds, got {self.baseline_s!r}"
            )
        object.__setattr__(self, "baseline_s", float(self.baseline_s))
        object.__setattr__(self, "devices", check_devices(self.devices))
        object.__setattr__(self, "sinks", check_sinks(self.sinks))
        object.__setattr__(self, "tags", merge_tags(self.tags))
        if not isinstance(self.board_gain, bool):
            raise ConfigError(f"board_gain must be True or False, got {self.board_gain!r}")
        if not (isinstance(self.sync, bool) or callable(self.sync)):
            raise ConfigError(
                "sync must be True (torch.cuda.synchronize before each mark), False, or a"
                f" function to call before each mark; got {self.sync!r}"
            )
        if self.flops_per_step is not None:
            check_flops("flops_per_step", self.flops_per_step)
        if self.dtype is not None:
            from greenai.flops.peaks import check_dtype

            check_dtype(self.dtype)  # fail now: at stop() the measurement would be lost
        if self.scope not in ("machine", "process"):
            raise ConfigError(
                f"scope must be 'machine' (what the hardware drew) or 'process' (this process"
                f" tree's share); got {self.scope!r}"
            )
        check_series(self.carbon_intensity_series)
        check_store(self.store)
        self.accounting()  # its values are checked on construction

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> TrackOptions:
        """The options from keyword arguments, as :func:`greenai.track` takes them.

        Raises:
            ConfigError: An unknown option (with the closest known name) or a bad value.
        """
        unknown = [key for key in options if key not in OPTIONS]
        if unknown:
            raise ConfigError(_unknown_options_message(unknown))
        return cls(**options)

    def replace(self, **changes: Any) -> TrackOptions:
        """A copy with ``changes`` (checked again; unknown names raise ConfigError)."""
        unknown = [key for key in changes if key not in OPTIONS]
        if unknown:
            raise ConfigError(_unknown_options_message(unknown))
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """``{option: value}`` for every option (a shallow copy; lists as given)."""
        out = {name: getattr(self, name) for name in OPTIONS}
        out["devices"] = None if self.devices is None else list(self.devices)
        out["sinks"] = list(self.sinks)
        out["meta"] = None if self.meta is None else dict(self.meta)
        out["tags"] = dict(self.tags or {})
        return out

    def accounting(self) -> Accounting:
        """How energy becomes facility energy, CO2e and water (checked; no lookup yet)."""
        from greenai.carbon.accounting import Accounting

        return Accounting(**{name: getattr(self, name) for name in _ACCOUNTING})


OPTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrackOptions))
"""Keyword options of :class:`greenai.Tracker` and :func:`greenai.track`."""


def _unknown_options_message(unknown: Sequence[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, OPTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{key!r}{hint}")
    return f"unknown option(s) {', '.join(parts)}; known options are {', '.join(OPTIONS)}"
