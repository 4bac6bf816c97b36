"""TrackOptions: each option named once; the CLI, the magic and track() all take it from there."""

from __future__ import annotations

import argparse
import dataclasses
import threading
from typing import Any, ClassVar

import pytest

import greenai
from greenai.errors import ConfigError
from greenai.flags import add_flags, flag_options
from greenai.measurement import Measurement
from greenai.options import OPTIONS, TrackOptions
from greenai.testing import FakeClock, FakeGPU


def test_options_are_frozen_checked_once_and_listed_once() -> None:
    options = TrackOptions(period_s=0.1, country="FRA", devices=[FakeGPU()])
    assert isinstance(options.devices, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.pue = 2.0  # type: ignore[misc]
    assert tuple(f.name for f in dataclasses.fields(TrackOptions)) == OPTIONS
    assert len(OPTIONS) == len(set(OPTIONS))
    with pytest.raises(ConfigError, match="pue"):
        options.replace(pue=0.5)
    with pytest.raises(ConfigError, match="did you mean 'period_s'"):
        TrackOptions.from_kwargs({"period": 0.1})
    with pytest.raises(ConfigError, match="period_s"):
        TrackOptions(period_s=-1.0)


def test_a_tracker_takes_options_whole_or_as_keywords() -> None:
    options = TrackOptions(devices=[], country="FRA")
    job = greenai.Tracker("job", options, pue=1.2)
    assert job.config == options.replace(pue=1.2)
    assert job.options["country"] == "FRA" and job.options["pue"] == 1.2
    assert greenai.track("job", devices=[], pue=1.2, country="FRA").config == job.config


def test_the_constructor_reads_no_file(tmp_path: Any) -> None:
    missing = tmp_path / "grid.csv"
    job = greenai.track("job", devices=[], carbon_intensity_series=missing, store=tmp_path / "s")
    assert not missing.exists() and not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        job.start()


def test_flags_come_from_the_options() -> None:
    parser = argparse.ArgumentParser()
    names = ("period_s", "checkpoint_s", "country", "carbon_intensity_g_per_kwh", "scope")
    add_flags(parser, names, country="WORLD")
    args = parser.parse_args(["--period", "0.5", "--carbon-intensity", "80", "--scope", "process"])
    options = flag_options(args, names)
    assert options == {
        "period_s": 0.5,
        "checkpoint_s": 5.0,
        "country": "WORLD",
        "carbon_intensity_g_per_kwh": 80.0,
        "scope": "process",
    }
    assert TrackOptions(**options).country == "WORLD"
    with pytest.raises(ValueError, match="no command-line flag"):
        add_flags(argparse.ArgumentParser(), ["clock"])


class Recording:
    """A sink that records what it is given; one per job."""

    made: ClassVar[list[Recording]] = []

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        Recording.made.append(self)

    def start(self, job: Any) -> None:
        self.calls.append("start")

    def update(self, snapshot: Measurement) -> None:
        with self.lock:
            self.calls.append("update")

    def finish(self, result: Measurement) -> None:
        self.calls.append("finish")


def test_a_decorated_function_makes_fresh_sinks_per_call() -> None:
    Recording.made = []
    clock = FakeClock()

    @greenai.track("fn", devices=[FakeGPU(clock=clock)], clock=clock, sinks=[Recording])
    def work(n: int) -> int:
        clock.advance(0.5)
        return n

    assert work(1) == 1 and work(2) == 2
    assert len(Recording.made) == 2
    for sink in Recording.made:
        assert sink.calls[0] == "start" and sink.calls[-1] == "finish"
        assert sink.calls.count("start") == sink.calls.count("finish") == 1


def test_a_decorator_refuses_a_sink_object_it_would_reuse() -> None:
    with pytest.raises(ConfigError, match="factories"):

        @greenai.track("fn", devices=[], sinks=[Recording()])
        def work() -> None:
            pass


def test_a_factory_that_makes_no_sink_fails_at_start() -> None:
    job = greenai.track("job", devices=[], sinks=[lambda: object()])
    with pytest.raises(ConfigError, match="lacks start"):
        job.start()
    assert not job.running
