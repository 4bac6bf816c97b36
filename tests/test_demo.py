from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from greenai.demo import EpochResult, epoch_line, epoch_table, run_demo
from greenai.errors import ConfigError
from greenai.store import RunStore
from greenai.testing import FakeClock, FakeGPU


def test_demo_learns_digits_and_splits_energy_by_epoch(tmp_path: Path) -> None:
    seen: list[EpochResult] = []
    demo = run_demo(
        epochs=3, store=tmp_path / "r.db", devices=[FakeGPU(power_w=300.0)], on_epoch=seen.append
    )
    m = demo.measurement
    assert [e.epoch for e in seen] == [1, 2, 3] and seen[-1].test_accuracy > 0.85
    assert seen[0].train_loss > seen[-1].train_loss  # it learns
    names = {p.name for p in m.phases}
    assert {"train", "eval", "train/forward", "train/backward", "train/optimizer"} <= names
    assert {p.name: p.count for p in m.phases}["eval"] == 3
    assert m.steps.count == 3 * 45 and m.steps.samples == 3 * 1437
    assert m.flops and m.flops > 0
    # eval and FLOP counting are kept out of the steps: no step holds an eval pass
    assert {"eval", "train/flop-count"} <= set(m.steps.apart_phases)
    # the first step of epochs 2 and 3 spans the eval before it; at a steady 300 W its
    # energy is 300 W x its span less that eval's (charged to it: 300 W x its whole span)
    eval_s = m.phase("eval").duration_s / 3
    for k in (45, 90):
        d, e = m.steps.duration_s[k], m.steps.energy_j[k]
        assert 0 < e < 300.0 * (d - 0.5 * eval_s)
    for e in demo.epochs:  # a steady 300 W device: each epoch drew 300 W x its duration
        assert e.energy_j is not None and e.uncertainty_j is not None
        assert e.energy_j == pytest.approx(300.0 * e.duration_s, rel=0.05, abs=5.0)
        assert e.methods == ("counter",) and e.j_per_sample == e.energy_j / 1437
    assert sum(e.energy_j or 0.0 for e in demo.epochs) <= (m.energy_j or 0.0) + 1e-6
    with RunStore(tmp_path / "r.db") as store:
        run = store.get(demo.run_id or "")
    assert run.status == "completed"
    # what it learned is stored with the run, for `greenai report`
    learned = run.meta["learning"]
    assert [(r["epoch"], r["step"]) for r in learned] == [(1, 45), (2, 90), (3, 135)]
    assert [r["accuracy"] for r in learned] == pytest.approx([e.test_accuracy for e in seen])


def test_demo_without_an_energy_source_says_so() -> None:
    demo = run_demo(epochs=1, store=False, devices=[], country=None)
    assert demo.run_id is None and demo.epochs[0].energy_j is None
    table = epoch_table(demo.epochs)
    assert "not measured" in table and "±" not in table


def test_epoch_line_and_table_show_loss_accuracy_and_energy() -> None:
    e = EpochResult(2, 0.25, 0.975, 1.5, 1000, 30.0, 3.0, ("model",))
    assert epoch_line(e, 12) == "epoch  2/12  loss 0.2500  test accuracy  97.5%   1.50 s"
    table = epoch_table([e])
    assert "97.5%" in table and "30 ± 3" in table and "0.03" in table
    assert "estimated (model)" in table


def test_demo_refuses_bad_values() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        run_demo(epochs=0, store=False)
    with pytest.raises(ConfigError, match="batch_size"):
        run_demo(epochs=1, batch_size=0, store=False)


def test_cli_demo_prints_epochs_stores_the_run_and_writes_the_report(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc = subprocess.run(
        [sys.executable, "-m", "greenai", "demo", "--quick", "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "epoch 1/3  loss" in out and "epoch 3/3  loss" in out and "test accuracy" in out
    assert re.search(r"energy per epoch \(train \+ eval\): (measured|estimated) \(", out)
    assert "demo-digits-cnn: completed" in out and "J/sample" in out
    report = Path(out.split("report: ")[1].split()[0])
    assert report.is_file() and "<img" in report.read_text(encoding="utf-8")
    with RunStore(db) as store:
        assert store.get("latest").meta["epochs"] == 3


def test_epochs_older_than_the_kept_history_say_so_instead_of_failing() -> None:
    clock = FakeClock()

    def long_epoch(e: EpochResult) -> None:
        if e.epoch == 1:
            clock.advance(700.0)  # the first epoch ends out of the 600 s kept at the end

    demo = run_demo(
        epochs=3,
        store=False,
        country=None,
        devices=[FakeGPU(clock=clock, power_w=300.0)],
        clock=clock,
        on_epoch=long_epoch,
    )
    first, *rest = demo.epochs
    assert first.energy_j is None and first.note == "older than 10 min"
    assert all(e.energy_j is not None and e.note == "" for e in rest)
    table = epoch_table(demo.epochs)
    assert "— (older than 10 min)" in table and "keeps 10 min" in table
