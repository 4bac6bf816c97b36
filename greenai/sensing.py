"""What a job's figures assume about the GPU's sensor, said as notes and warnings.

GPU power sensors see only part of each update period (about 25 ms of each 100 ms on A100
and H100), each board has a steady gain error of about ±5%, and whether the energy counter
samples part-time too is not published (Yang, Adámek and Armour, "Accurate and Convenient
Energy Measurements for GPUs", SC'24; preprint arXiv:2312.02741). The uncertainty covers a
part-time counter where the readings can show it (:func:`greenai.windows.sampling_j`); these
notes say where they cannot. docs/accuracy.md has the measured numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from greenai.curve import SHORT_REGION_UPDATES
from greenai.windows import BOARD_GAIN_REL

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from greenai.ledger import Ledger
    from greenai.timeline import DeviceTrack

__all__ = [
    "aliased_note",
    "board_gain_note",
    "devices_linear_note",
    "end_step_note",
    "fallback_note",
    "few_updates_note",
    "jitter_untold_note",
    "load_steps_note",
    "locked_bound_note",
    "locked_note",
    "part_time_varying_note",
    "power_only_note",
    "read_beat_note",
    "result_notes",
    "sensor_notes",
    "short_region_note",
    "slow_reads_note",
    "start_step_note",
]


def locked_note(device: str, period_s: float, update_period_s: float) -> str:
    """The note for a loop locked to the sensor updates of ``device`` (one or more names)."""
    return (
        f"a loop repeating every {period_s * 1e3:.4g} ms is locked to the sensor updates of"
        f" {device} (every {update_period_s * 1e3:.4g} ms): the sensor sees the same part of "
        "it every time, so per-step and per-phase figures carry only the counter's bracket, "
        "and if the counter samples part of each update (not published for NVIDIA) the "
        "figures can be off by up to the loop's power swing; vary the loop's timing (a "
        "few ms of random delay per step) or measure it against steady loads"
    )


def aliased_note(
    device: str, shape_rel: float, limit_w: float | None, per_update: bool = False
) -> str:
    """The note for a device whose sensor sees one part of every update (no loop marked).

    ``per_update``: told from the power values missing whole updates while agreeing with
    the counter over the stretch (the sensor sees a different part of each update).
    """
    side = "more" if shape_rel > 0 else "less"
    bound = (
        f"anywhere from 0 to its {limit_w:.4g} W power limit inside an update"
        if limit_w
        else "anywhere from 0 to twice the highest power read inside an update (it declares"
        " no power limit)"
    )
    seen = (
        f"{device}'s power values miss its counter update by update on a load the counter"
        " sees steady from one update to the next: its power sensor sees a different part of"
        " each update of a load that varies inside one, so where energy"
        if per_update
        else f"{device}'s counter read {abs(shape_rel):.0%} {side} than its power values over"
        " a load that does not vary from one update to the next: its power sensor sees the"
        " same part of every update, as under a loop locked to the updates, so where energy"
    )
    return (
        seen + f" falls inside one is not seen, and each edge's ± is a bound (the load {bound}),"
        " not a calibrated interval; mark the loop's steps (job.step()), vary its timing by"
        " a few ms, or compare whole updates"
    )


def locked_bound_note(device: str, bound_w: float, declared: bool) -> str:
    """The note for a part-time counter under a locked loop: its ± spans the power bound."""
    source = (
        "its enforced power limit"
        if declared
        else "the highest power its readings showed: it declares no power limit, so a load "
        "drawing more between updates would not be covered"
    )
    return (
        f"{device}'s counter may sample part of each update and a loop is locked to them: "
        f"its figures' ± spans what the load could draw in the rest of each update, 0 to "
        f"{bound_w:.4g} W ({source}); a wide bound, not a calibrated interval"
    )


def fallback_note(
    device: str, update_period_s: float, power_values: bool = True, limit_w: float | None = None
) -> str:
    """The note for a counter device whose figure fell back to its power values.

    ``power_values``: whether the device reported any; without them the figure is not a
    measurement (0 J, with a ± of ``limit_w`` × the duration where its power limit is known).
    """
    said = (
        f"{device} fell back from counter to power: its energy counter did not change during "
        f"the job (shorter than its {update_period_s * 1e3:.4g} ms update), "
    )
    if not power_values:
        bound = (
            f"its ± is its {limit_w:.4g} W power limit over the job"
            if limit_w
            else "nothing bounds it"
        )
        return (
            f"{said}and it reports no power values, so its energy was not measured: the "
            f"figure counts 0 J and {bound}; measure a longer stretch"
        )
    return (
        f"{said}so the figure integrates a few part-time power values (method 'power') and "
        "its ± is at least the figure itself; measure a longer stretch or repeat it "
        "(greenai.protocol)"
    )


def few_updates_note(device: str, update_period_s: float) -> str:
    """The note for a counter device seen over fewer than four updates."""
    return (
        f"{device} saw fewer than four counter updates (every {update_period_s * 1e3:.4g} ms):"
        " how the load varies inside an update cannot be told from so few readings, so its ±"
        " is a bound from the sensor model (half an update's energy at each edge), not a"
        " calibrated interval; measure at least a second"
    )


def jitter_untold_note(device: str, bound_s: float, update_period_s: float) -> str:
    """The note for a counter whose updates' jitter too few updates could tell."""
    return (
        f"{device}'s counter updated too few times (every {update_period_s * 1e3:.4g} ms)"
        " to tell whether its updates jitter off their grid, and its readings allow up to"
        f" {bound_s * 1e3:.2g} ms (one sd): the ± takes that as a bound, not a 95% interval;"
        " measure at least two seconds"
    )


def devices_linear_note(devices: Sequence[str], update_period_s: float) -> str:
    """The note for counter devices whose update phases could not be told apart."""
    return (
        f"{', '.join(devices)} add their ± linearly: read less than four times per counter "
        f"update (every {update_period_s * 1e3:.4g} ms), where each one's updates fall "
        "cannot be told, so their edge errors may be one error; a bound where they update "
        "apart (read every 10 ms, the native loop's default, to tell)"
    )


def devices_linear_notes(ledger: Ledger, tracks: Mapping[str, DeviceTrack]) -> list[str]:
    """:func:`devices_linear_note` per group of counter devices (one update period).

    For groups of two or more of which one or more had no update phase told.
    """
    groups: dict[float, list[str]] = {}
    for name, model in ledger.models.items():
        spec = tracks[name].spec if name in tracks else None
        if spec is None or spec.method != "counter" or model.fallback:
            continue
        groups.setdefault(round(spec.update_period_s, 9), []).append(name)
    notes = []
    for update_s, names in groups.items():
        unknown = [n for n in names if not math.isfinite(ledger.models[n].update_phase_s)]
        if len(names) >= 2 and unknown:
            notes.append(devices_linear_note(names, update_s))
    return notes


def power_only_note(device: str, relative_uncertainty: float) -> str:
    """The note for a device without an energy counter (method ``power``)."""
    return (
        f"{device} has no energy counter: its figure integrates power values (method 'power')"
        f" and its ± includes the sensor's declared ±{relative_uncertainty:.0%} scale error,"
        " which the readings cannot show and which dominates on a steady load"
    )


def short_region_note(what: str, duration_s: float, update_period_s: float) -> str:
    """The note for a region shorter than about ten sensor updates on a varying load."""
    return (
        f"{what} lasted {duration_s:.3g} s, fewer than {SHORT_REGION_UPDATES} sensor updates "
        f"(every {update_period_s * 1e3:.4g} ms) on a varying load: its figure rests on a few "
        "part-time samples; measure at least 5 s, or repeat it at shifted start offsets "
        "(greenai bench and the pytest plugin do)"
    )


def part_time_varying_note(device: str, update_period_s: float) -> str:
    """The note for a counter that may see part of each update, on a load varying faster."""
    return (
        f"{device}'s counter may add up power values that see part of each update (every "
        f"{update_period_s * 1e3:.4g} ms; not published for NVIDIA), and the load varies from "
        "one update to the next: the ± covers what the unseen part may hold from how much "
        "the updates differ, a bound that loads varying evenly (periodic kernels, square "
        "waves) stay well inside, up to ~5x wider than a 95% interval there"
    )


def load_steps_note(device: str, update_period_s: float) -> str:
    """The note for a load that steps (a change well beyond its update-to-update spread)."""
    return (
        f"{device}'s load steps: where inside its update (every {update_period_s * 1e3:.4g} ms)"
        " each step fell is unknown, so figures of windows holding one, or beyond one, carry"
        " a bound on the step's misplacement (up to ~3x wider than a 95% interval where"
        " steps cancel or the shape holds)"
    )


def start_step_note(device: str, step_w: float, update_period_s: float) -> str:
    """The note for a load that stepped at the job's start (a GPU idle until its work)."""
    return (
        f"{device}'s load stepped by {step_w:.0f} W at the job's start (its first power value,"
        f" from before the job, lies outside the job's own): where inside the first update"
        f" (every {update_period_s * 1e3:.4g} ms) it did is placed from that update's energy"
        " where the counter is read much faster and one step explains it, else unknown; the"
        " job's figure carries a bound on the step's place, not a 95% interval (start the"
        " tracker right before the work, or measure from a later mark)"
    )


def end_step_note(device: str, step_w: float, update_period_s: float) -> str:
    """The note for a load that changed inside the counter update the job ended in."""
    return (
        f"{device}'s load changed by {step_w:.0f} W inside the counter update the job ended"
        f" in (every {update_period_s * 1e3:.4g} ms; read from the counter's next changes,"
        " after the end): the figure places one step there from that update's energy and"
        " its neighbours', and its ± bounds where the step fell, not a 95% interval (the"
        " usual case where the work ends with the tracker: stop it a moment after the"
        " work for a calibrated one)"
    )


def slow_reads_note(device: str, seg_s: float, update_period_s: float) -> str:
    """The note for a counter read slower than it updates (segments of several updates)."""
    return (
        f"{device} was read every {seg_s * 1e3:.4g} ms, slower than its counter updates (every"
        f" {update_period_s * 1e3:.4g} ms): each power value shows one update of several,"
        " so energy inside a stretch between reads is placed by time where their shape"
        " predicts the stretches worse than their neighbours do, and the ± of windows and"
        " steps inside one is a bound, not a 95% interval (the default period, the"
        " counter's own, gives calibrated figures)"
    )


def read_beat_note(device: str, read_s: float, update_period_s: float) -> str:
    """The note for reads whose gap does not divide the counter's update period."""
    ms = update_period_s * 1e3
    return (
        f"{device} was read every {read_s * 1e3:.4g} ms, which does not divide its counter's"
        f" update period ({ms:.4g} ms): each update's change is placed within its own read"
        " gap, and the ± takes those places as independent misplacements, a bound where"
        " reads beat against the updates in a repeating pattern (up to ~2x wider than a"
        f" 95% interval); read every {ms / 10:.4g} or {ms / 4:.4g} ms for calibrated figures"
    )


def board_gain_note() -> str:
    """The note on a result whose uncertainty includes the boards' gain error."""
    return (
        f"uncertainty includes each GPU board's gain error (±{BOARD_GAIN_REL:.0%}, shared; "
        "Yang, Adámek and Armour, SC'24): comparable with a wall meter and across boards"
    )


def sensor_notes(ledger: Ledger, tracks: Mapping[str, DeviceTrack], duration_s: float) -> list[str]:
    """Warnings on what a job's figures assume about its sensors (each said once)."""
    notes = []
    groups: dict[tuple[float, float], list[str]] = {}  # one note per loop, all its devices
    for name, period in ledger.locked_s.items():
        groups.setdefault((period, tracks[name].spec.update_period_s), []).append(name)
    for (period, update_s), names in groups.items():
        notes.append(locked_note(", ".join(names), period, update_s))
    for name in ledger.locked_s:
        model = ledger.models.get(name)
        if name in tracks and model is not None and model.part_time:
            limit = tracks[name].spec.power_limit_w
            bound = limit or model.max_power_w
            notes.append(locked_bound_note(name, bound, limit is not None))
    short = [
        tracks[name].spec.update_period_s
        for name, model in ledger.models.items()
        if name in tracks
        and (model.varying or model.jump_rate > 0)
        and tracks[name].spec.method == "counter"
        and duration_s < SHORT_REGION_UPDATES * tracks[name].spec.update_period_s
    ]
    if short:
        notes.append(short_region_note("the job", duration_s, max(short)))
    for name, model in ledger.models.items():
        if name not in tracks:
            continue
        if model.fallback:
            spec = tracks[name].spec
            notes.append(
                fallback_note(
                    name, spec.update_period_s, model.max_power_w > 0.0, spec.power_limit_w
                )
            )
        elif model.few_updates:
            notes.append(few_updates_note(name, tracks[name].spec.update_period_s))
        if model.aliased and name not in ledger.locked_s:
            limit = tracks[name].spec.power_limit_w
            notes.append(aliased_note(name, model.shape_rel, limit, model.aliased_per_update))
    return notes


def result_notes(ledger: Ledger, tracks: Mapping[str, DeviceTrack]) -> list[str]:
    """Notes that say what the uncertainty includes (no warning: a choice, not a risk)."""
    notes = [
        power_only_note(name, t.spec.relative_uncertainty)
        for name, t in tracks.items()
        if t.spec.method == "power" and t.spec.kind == "gpu" and name in ledger.models
    ]
    for name, model in ledger.models.items():
        spec = tracks[name].spec if name in tracks else None
        if spec is None or spec.method != "counter" or model.fallback:
            continue
        if model.part_time and model.varying:
            notes.append(part_time_varying_note(name, spec.update_period_s))
        if model.jump_rate > 0:
            notes.append(load_steps_note(name, spec.update_period_s))
        if model.start_step_w > 0:
            notes.append(start_step_note(name, model.start_step_w, spec.update_period_s))
        if model.end_step_w > 0:
            notes.append(end_step_note(name, model.end_step_w, spec.update_period_s))
        if model.slow_reads:
            notes.append(slow_reads_note(name, model.seg_s, spec.update_period_s))
        if model.read_beat_s > 0:
            notes.append(read_beat_note(name, model.read_beat_s, spec.update_period_s))
        if model.jitter_untold_s > 0:
            notes.append(jitter_untold_note(name, model.jitter_untold_s, spec.update_period_s))
    notes.extend(devices_linear_notes(ledger, tracks))
    if ledger.board_gain and any(t.spec.kind == "gpu" for t in tracks.values()):
        notes.append(board_gain_note())
    return notes
