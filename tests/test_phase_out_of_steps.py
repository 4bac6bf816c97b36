"""Phases kept out of steps (``job.phase(name, in_steps=False)``): eval charged to eval.

Issue 24: an evaluation pass at an epoch's edge was charged to the next step (a spike at
every epoch edge). The property that everything still adds up is in
``tests/test_additivity.py``; these check the figures a user reads.
"""

from __future__ import annotations

import math
import warnings

import pytest

import greenai
from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.testing import FakeClock, FakeGPU


def _epochs(in_steps: bool, step_in_eval: bool = False) -> Measurement:
    clock = FakeClock()
    gpu = FakeGPU(power_w=300.0, clock=clock, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with greenai.track("epochs", devices=[gpu], clock=clock, period_s=0.01) as job:
            for _ in range(3):
                for _ in range(5):
                    with job.phase("train"):
                        clock.advance(0.4)
                    job.step()
                with job.phase("eval", in_steps=in_steps):
                    clock.advance(0.8)
                    if step_in_eval:
                        job.step()
                    clock.advance(0.8)
            with job.phase("train"):
                clock.advance(0.4)
            job.step()
    return job.result


def test_an_eval_pass_is_charged_to_eval_not_to_the_next_step() -> None:
    plain, apart = _epochs(in_steps=True), _epochs(in_steps=False)
    # by default the step after each eval holds it: about 5x a training step's energy
    assert max(plain.steps.energy_j) > 4 * min(plain.steps.energy_j)
    # kept out: every step is a training step (0.4 s at 300 W), no spike at epoch edges
    assert max(apart.steps.energy_j) < 1.1 * min(apart.steps.energy_j)
    assert apart.steps.apart_phases == ("eval",)
    assert plain.steps.apart_phases == ()
    # the eval phase has its own energy, the same either way (1.6 s at 300 W, three times)
    assert apart.phase("eval").energy_j == pytest.approx(plain.phase("eval").energy_j, rel=1e-3)
    assert apart.phase("eval").energy_j == pytest.approx(3 * 1.6 * 300.0, rel=0.05)
    # steps keep their whole span: they still tile the job's time
    assert math.fsum(apart.steps.duration_s) == pytest.approx(apart.duration_s, rel=1e-6)
    # and steps + eval add up to the job
    whole = apart.steps.total_energy_j + (apart.phase("eval").energy_j or 0.0)
    assert whole == pytest.approx(apart.energy_j, rel=1e-9)
    assert math.fsum(apart.steps.energy_j) == pytest.approx(apart.steps.total_energy_j, rel=1e-9)


def test_steps_ending_inside_a_phase_out_of_steps_are_cut_by_it() -> None:
    m = _epochs(in_steps=False, step_in_eval=True)
    assert m.steps.count == 19
    assert m.energy_j is not None
    whole = m.steps.total_energy_j + (m.phase("eval").energy_j or 0.0)
    assert whole == pytest.approx(m.energy_j, rel=1e-9)
    # the step ending inside eval holds the training before it; the next one the training
    # after it, and neither holds eval
    assert max(m.steps.energy_j) < 1.1 * 0.4 * 300.0 * 1.05


def test_the_phases_kept_out_of_steps_survive_a_stored_record() -> None:
    m = _epochs(in_steps=False)
    back = Measurement.from_dict(m.to_dict())
    assert back.steps.apart_phases == ("eval",)
    assert back.steps.total_energy_j == m.steps.total_energy_j


def test_the_step_plot_rings_no_step_for_a_phase_out_of_steps() -> None:
    import pandas as pd

    from greenai.report.plots import step_energy_figure

    # the eval spans of _epochs: 1.6 s after five 0.4 s steps
    rows = [("eval", 0, e * 3.6 + 2.001, e * 3.6 + 3.599) for e in range(3)]
    spans = pd.DataFrame(rows, columns=["phase", "depth", "start_s", "end_s"])

    def ringed(m: Measurement) -> dict[str, list[int]]:
        lines = step_energy_figure(m, spans).axes[0].get_lines()
        return {
            str(line.get_label()): [int(x) for x in line.get_xdata()]
            for line in lines
            if str(line.get_label()).startswith("step that also holds")
        }

    assert ringed(_epochs(in_steps=True)) == {
        "step that also holds eval (its energy is in the phase chart too)": [6, 11, 16]
    }
    assert ringed(_epochs(in_steps=False)) == {}


def test_in_steps_must_be_a_bool() -> None:
    with greenai.track(devices=[FakeGPU(seed=1)]) as job:
        with pytest.raises(ConfigError, match="in_steps"):
            with job.phase("eval", in_steps="no"):  # type: ignore[arg-type]
                pass
