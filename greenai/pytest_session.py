"""The measuring part of the pytest plugin (``pytest --greenai``).

:mod:`greenai.pytest_plugin` imports this module only when ``--greenai`` is given, so a pytest
run without it never imports the tracker, numpy or torch.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from greenai.clock import SYSTEM_CLOCK
from greenai.errors import ConfigError, GreenAIError, MeasurementWarning
from greenai.pytest_rounds import RoundRecorder
from greenai.tracker import Tracker

__all__ = ["EnergySession", "summary_lines"]


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a real number >= 0 (numpy scalars too), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _per_call(
    values: Mapping[str, Any], key: str, where: str = "@pytest.mark.energy"
) -> float | None:
    """A per-call figure greenai was given explicitly: a number >= 0, or a ConfigError."""
    value = values.get(key)
    if value is None:
        return None
    number = _number(value)
    if number is None:
        raise ConfigError(f"{where}({key}=...) must be a number >= 0 per call, got {value!r}")
    return number


@dataclass
class _Probe:
    """One test's measurement: its tracker, what one call does, and its benchmark rounds."""

    tracker: Tracker
    flops: float | None
    samples: float | None
    rounds: RoundRecorder | None = None
    started: bool = False


class EnergySession:
    """The ``--greenai`` part of the plugin: one per pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.period_s: float | None = config.getoption("greenai_period")
        self.rows: list[dict[str, Any]] = []
        self._probes: dict[str, _Probe] = {}
        self._devices: list[Any] | None = None
        self._machine: dict[str, Any] | None = None
        self._warned: set[str] = set()

    def machine(self) -> dict[str, Any]:
        """This machine's identity (:func:`greenai.bench.machine.machine_info`), made once."""
        if self._machine is None:
            from greenai.bench.machine import machine_info

            self._machine = machine_info()
        return self._machine

    def probe(self, request: pytest.FixtureRequest) -> _Probe | None:
        """The probe of the test of ``request``, made on first use; None if not measured."""
        item = request.node
        if item.nodeid in self._probes:
            return self._probes[item.nodeid]
        marker = item.get_closest_marker("energy")
        names = getattr(item, "fixturenames", ())
        if marker is None and "energy" not in names and "benchmark" not in names:
            return None
        devices = request.getfixturevalue("greenai_devices")
        if devices is None:
            if self._devices is None:
                from greenai.devices.discovery import discover

                self._devices = discover()
            devices = self._devices
        tracker = Tracker(item.name, devices=devices, period_s=self.period_s, clock=SYSTEM_CLOCK)
        kwargs = {} if marker is None else marker.kwargs
        probe = _Probe(tracker, _per_call(kwargs, "flops"), _per_call(kwargs, "samples"))
        self._probes[item.nodeid] = probe
        return probe

    @pytest.fixture(autouse=True)
    def _greenai_probe(self, request: pytest.FixtureRequest) -> None:
        self.probe(request)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        """Track the test function's call (and its benchmark's timed rounds)."""
        probe = self._probes.pop(item.nodeid, None)  # popped: its timeline is freed after
        if probe is None:
            return (yield)
        funcargs = getattr(item, "funcargs", {})
        bench = funcargs.get("benchmark")
        if bench is not None and getattr(bench, "enabled", False):
            probe.rounds = RoundRecorder.install(bench, probe.tracker, SYSTEM_CLOCK.now)
        try:
            probe.tracker.start()
            probe.started = True
        except GreenAIError as exc:  # a sensor problem must never fail the user's test
            warnings.warn(f"greenai: {item.nodeid} not measured: {exc}", MeasurementWarning, 2)
        try:
            return (yield)
        finally:
            if probe.started:
                try:
                    self._finish(item, probe, bench)
                finally:
                    if probe.tracker.running:  # _finish raised before stopping it
                        probe.tracker.stop()

    def _finish(self, item: pytest.Item, probe: _Probe, bench: Any) -> None:
        timed = bench is not None and getattr(bench, "enabled", False)
        if bench is not None:  # per-call figures the test put in extra_info win
            probe.flops = self._declared(bench.extra_info, "flops") or probe.flops
            probe.samples = self._declared(bench.extra_info, "samples") or probe.samples
        if not timed and probe.flops:  # one call per test (a disabled benchmark calls once)
            probe.tracker.add_flops(probe.flops)
        m = probe.tracker.stop()
        row: dict[str, Any] = {"test": item.nodeid, "method": ",".join(m.methods) or "-"}
        if probe.rounds is not None and probe.rounds.count:
            info = probe.rounds.extra_info(probe.flops, probe.samples)
            info["energy_method"] = row["method"]
            info["energy_machine"] = self.machine()["fingerprint"]
            bench.extra_info.update(info)
            row.update(
                per="round",
                energy_j=info["energy_per_round_j"],
                uncertainty_j=info["energy_per_round_uncertainty_j"],
                avg_power_w=info["avg_power_w"],
                j_per_tflop=info["j_per_tflop"],
                j_per_sample=info["j_per_sample"],
                rounds=info["energy_rounds"],
                iterations=info["energy_iterations"],
                per_call_j=info["energy_per_call_j"],
                group=_group(item, bench),
                round_s=[(b - a) / info["energy_iterations"] for a, b in probe.rounds.windows],
            )
        else:
            per_sample = m.energy_j / probe.samples if m.energy_j and probe.samples else None
            row.update(
                per="test",
                energy_j=m.energy_j,
                uncertainty_j=m.uncertainty_j,
                avg_power_w=m.avg_power_w,
                j_per_tflop=m.j_per_tflop,
                j_per_sample=per_sample,
                rounds=None,
                iterations=None,
                per_call_j=None,
            )
        for key in ("energy_j", "uncertainty_j", "avg_power_w", "j_per_tflop", "method"):
            item.user_properties.append((f"greenai_{key}", row[key]))
        self.rows.append(row)

    def _declared(self, info: Mapping[str, Any], key: str) -> float | None:
        """FLOPs or samples per call from ``extra_info``: ``greenai_<key>``, else ``<key>``.

        ``greenai_flops``/``greenai_samples`` are greenai's own keys: a bad value is a
        ConfigError. ``flops``/``samples`` are generic keys that a test may use for its own
        purposes: a value that is not a number >= 0 is ignored, with one warning per key
        and session, rather than failing a test that passes without the plugin.
        """
        own = _per_call(info, f"greenai_{key}", "benchmark.extra_info")
        if own is not None:
            return own
        value = info.get(key)
        number = _number(value)
        if value is not None and number is None and key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"greenai: benchmark.extra_info[{key!r}] = {value!r} is not a number >= 0, so "
                f"it is not used as {key} per call; declare them with "
                f"extra_info['greenai_{key}'] or @pytest.mark.energy({key}=...)",
                MeasurementWarning,
                3,
            )
        return number

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(
        self, config: pytest.Config, machine_info: dict[str, Any]
    ) -> None:
        """Add greenai's machine identity (GPU, driver, fingerprint) to pytest-benchmark's."""
        machine_info["greenai"] = self.machine()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The table of energy per test, then each benchmark group's comparison."""
        if not self.rows:
            return
        terminalreporter.write_sep("-", "greenai energy")
        for line in summary_lines(self.rows):
            terminalreporter.write_line(line)
        for line in comparison_lines(self.rows):
            terminalreporter.write_line(line)


def _group(item: pytest.Item, bench: Any) -> str:
    """The benchmark's group (``@pytest.mark.benchmark(group=...)``), else its function."""
    group = getattr(bench, "group", None)
    if isinstance(group, str) and group:
        return group
    return item.nodeid.split("[", 1)[0]


def comparison_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Each benchmark group's tests against the group's first, by :mod:`greenai.paired`'s rules.

    Time per call: the ratio of the rounds' geometric means with a Welch 95% interval
    (pytest-benchmark runs one test's rounds after another's, so they cannot be paired);
    energy per call: the ratio with both sides' uncertainties. A change is claimed only when
    its interval excludes 1; otherwise "no measurable difference at this precision (±X%)".
    """
    from greenai.paired import Ratio, unpaired_ratio, verdict

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("round_s"):
            groups.setdefault(r["group"], []).append(r)
    lines: list[str] = []
    for group, members in groups.items():
        if len(members) < 2:
            continue
        base = members[0]
        lines.append(f"greenai: group {group}, against {base['test']}")
        for r in members[1:]:
            time_text = verdict(unpaired_ratio(base["round_s"], r["round_s"]), "time per call")
            lines.append(f"  {r['test']}: {time_text}")
            ea, eb = base.get("per_call_j"), r.get("per_call_j")
            ua, ub = base.get("uncertainty_j"), r.get("uncertainty_j")
            if ea and eb and ua is not None and ub is not None:
                value = eb / ea
                rel = math.hypot(ua / base["energy_j"], ub / r["energy_j"])
                energy = Ratio(value, value * (1 - rel), value * (1 + rel), 2)
                lines.append(f"  {' ' * len(r['test'])}  {verdict(energy, 'energy per call')}")
    return lines


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The terminal table: one line per measured test.

    ``energy J`` and ``± J`` are per round for a benchmark (``round (R × N calls)``: R timed
    rounds of N calls each) and per test otherwise; ``J/call`` is the energy of one call of
    the benchmarked function, the unit of pytest-benchmark's own table.
    """
    head = ("test", "per", "energy J", "± J", "J/call", "avg W", "J/TFLOP", "J/sample", "method")
    cells: list[tuple[str, ...]] = [head]
    fmt: Callable[[Any, str], str] = _fmt
    for r in rows:
        per = r["per"]
        if r["rounds"]:
            calls = r.get("iterations") or 1
            per += f" ({r['rounds']} × {calls} call{'s' if calls != 1 else ''})"
        cells.append(
            (
                r["test"],
                per,
                fmt(r["energy_j"], ".4g"),
                fmt(r["uncertainty_j"], ".2g"),
                fmt(r.get("per_call_j"), ".4g"),
                fmt(r["avg_power_w"], ".1f"),
                fmt(r["j_per_tflop"], ".4g"),
                fmt(r["j_per_sample"], ".3g"),
                r["method"],
            )
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    if any(r["rounds"] for r in rows):
        lines.append(
            "energy J, ± J: per timed round; J/call: per call of the benchmarked function "
            "(the unit of pytest-benchmark's table)"
        )
    if any("model" in r["method"] for r in rows):
        lines.append("'model': estimated from utilisation and a TDP table, not measured")
    return lines
