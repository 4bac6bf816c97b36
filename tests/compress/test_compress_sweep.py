from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from greenai.compress import COLUMNS, Method, StructuredL1, break_even, pareto_front, sweep
from greenai.compress.rows import SweepRow, row_energy, row_ratios
from greenai.errors import ConfigError
from greenai.measurement import Measurement


class Broken(Method):
    name = "broken"

    def _apply(self, model: nn.Module) -> nn.Module:
        raise RuntimeError("kernel exploded")


def _accuracy(x: torch.Tensor) -> Any:
    reference = None

    def eval_fn(model: nn.Module) -> float:
        nonlocal reference
        out = model(x).argmax(1)
        if reference is None:
            reference = out
        return float((out == reference).float().mean())

    return eval_fn


def test_sweep_rows_columns_and_skips(mlp: nn.Module, fast_options: dict[str, Any]) -> None:
    x = torch.randn(32, 16)
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    frame = sweep(
        mlp,
        ["l1:0.5", StructuredL1(0.5), "int8-dynamic", "sparse24", Broken()],
        x,
        eval_fn=_accuracy(x),
        **fast_options,
    )
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["label"]) == [
        "baseline",
        "l1-layer 50%",
        "structured 50%",
        "int8-dynamic",
        "sparse-2:4",
        "broken",
    ]
    ok = frame[frame["status"] == "ok"]
    assert list(ok["label"]) == list(frame["label"][:4])
    skipped = frame.set_index("label").loc[["sparse-2:4", "broken"]]
    assert (skipped["status"] == "skipped").all()
    assert "needs CUDA" in skipped.loc["sparse-2:4", "reason"]
    assert skipped.loc["broken", "reason"] == "RuntimeError: kernel exploded"
    assert not skipped["pareto"].any() and skipped["energy_per_inference_j"].isna().all()
    for key, value in mlp.state_dict().items():  # the user's model is untouched
        torch.testing.assert_close(value, before[key])

    base = frame.iloc[0]
    assert base["accuracy"] == 1.0 and base["accuracy_delta"] == 0.0
    assert base["compression_ratio"] == 1.0 and base["energy_vs_baseline"] == 1.0
    assert base["batch_size"] == 32 and base["energy_method"] == "counter"
    assert (ok["repeats"] == 2).all() and (ok["inferences_per_window"] >= 1).all()
    assert (ok["energy_ci_j"] >= ok["energy_repeat_ci_j"]).all()
    assert (ok["energy_ci_j"] >= ok["energy_uncertainty_j"]).all()
    assert (ok["latency_p99_ms"] >= ok["latency_p50_ms"]).all()
    structured = frame.set_index("label").loc["structured 50%"]
    assert structured["compression_ratio"] > 1.5
    assert structured["flops_nominal"] < base["flops_nominal"]
    assert frame.set_index("label").loc["l1-layer 50%", "sparsity"] == pytest.approx(0.5, abs=0.02)
    assert list(frame["pareto"]) == pareto_front(
        frame["energy_per_inference_j"].tolist(), frame["accuracy"].tolist()
    )
    assert isinstance(frame.attrs["measurement"], Measurement)
    assert frame.attrs["window_s"] == pytest.approx(0.1)  # 10 periods of 10 ms


def test_energy_per_inference_is_power_times_time_per_inference(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    frame = sweep(mlp, [], torch.randn(8, 16), **fast_options)
    row = frame.iloc[0]
    seconds_per_inference = row["batch_size"] / row["throughput_samples_per_s"]
    # the fake GPU draws a steady 100 W, so J/inference = 100 W × s/inference
    assert row["energy_per_inference_j"] == pytest.approx(100.0 * seconds_per_inference, rel=0.1)
    assert row["kwh_per_1k_inferences"] == pytest.approx(row["energy_per_inference_j"] / 3600)
    assert row["co2e_g_per_1k_inferences"] == pytest.approx(
        row["kwh_per_1k_inferences"] * 475.0,
        rel=0.01,  # codecarbon's world average, g/kWh
    )
    assert row["j_per_tflop"] == pytest.approx(
        row["energy_per_inference_j"] / row["flops_nominal"] * 1e12
    )
    assert math.isnan(row["accuracy"])


def test_time_only_sweep_has_no_energy(mlp: nn.Module, fast_options: dict[str, Any]) -> None:
    fast_options["devices"] = []
    frame = sweep(mlp, "l1:0.3", torch.randn(4, 16), **fast_options)
    assert frame["energy_per_inference_j"].isna().all()
    assert set(frame["energy_method"]) == {"none (no energy source)"}
    assert (frame["latency_p50_ms"] > 0).all()
    # throughput is timing, not energy: it is there without an energy source
    assert (frame["throughput_samples_per_s"] > 0).all()


def test_bad_arguments(mlp: nn.Module, fast_options: dict[str, Any]) -> None:
    x = torch.randn(4, 16)
    with pytest.raises(ConfigError, match="repeats"):
        sweep(mlp, [], x, repeats=1)
    with pytest.raises(ConfigError, match=r"nn\.Module"):
        sweep(lambda t: t, [], x)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="does not run on example_inputs"):
        sweep(mlp, [], torch.randn(4, 3), **fast_options)
    with pytest.raises(ConfigError, match="repeated"):
        sweep(mlp, ["l1:0.5", "l1:0.5"], x)
    with pytest.raises(ConfigError, match="device must be"):
        sweep(mlp, [], x, device="tpu")
    with pytest.raises(ConfigError, match="tensor"):
        sweep(mlp, [], [1, 2])
    with pytest.raises(ConfigError, match="CUDA is not available"):
        if not torch.cuda.is_available():
            sweep(mlp, [], x, device="cuda")
        else:  # pragma: no cover - on a GPU machine
            raise ConfigError("CUDA is not available")


def test_a_window_stops_when_calls_slow_down_after_calibration(
    mlp: nn.Module, fast_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    sweep_module = sys.modules["greenai.compress.sweep"]  # the module, not the function
    # calibration believes a call takes 1 µs: 100,000 calls planned for a 0.1 s window
    monkeypatch.setattr(sweep_module, "call_latencies", lambda call, sync, seconds: [1e-6] * 20)
    frame = sweep(mlp, [], torch.randn(4, 16), **fast_options)
    row = frame.iloc[0]
    assert row["inferences_per_window"] >= 100_000
    assert "windows cut at 5× their planned length" in row["notes"]
    phases = frame.attrs["measurement"].phases
    assert all(p.duration_s < 0.5 + 0.2 for p in phases if p.name.startswith("row0"))
    seconds_per_inference = row["batch_size"] / row["throughput_samples_per_s"]
    assert row["energy_per_inference_j"] == pytest.approx(100.0 * seconds_per_inference, rel=0.1)


class _Opaque(torch.Tensor):
    """A weight format greenai cannot read values from (as an exotic subclass might be)."""

    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return [], None

    def to_dense(self) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError


class OpaqueWeights(Method):
    name = "opaque"

    def _apply(self, model: nn.Module) -> nn.Module:
        first = model[0]
        first.weight = nn.Parameter(first.weight.detach().as_subclass(_Opaque))
        return model


def test_an_unreadable_weight_leaves_a_gap_and_a_note(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    frame = sweep(mlp, [OpaqueWeights()], torch.randn(4, 16), **fast_options)
    row = frame.iloc[1]
    assert row["status"] == "ok" and math.isnan(row["sparsity"])
    assert "sparsity not computed: ValueError" in row["notes"]
    # its hidden storage counts at its dense size: the model is not "compressed"
    assert row["size_bytes"] == frame.iloc[0]["size_bytes"]
    assert row["compression_ratio"] == 1.0
    assert "size_bytes counts 1 tensor(s) of _Opaque at their dense size" in row["notes"]
    assert row["energy_per_inference_j"] > 0


def test_the_interval_is_student_t_over_the_windows_plus_the_sensor_in_quadrature() -> None:
    from types import SimpleNamespace

    from greenai.compress import Baseline
    from greenai.measurement import PhaseEnergy

    # three windows; the second was cut short (8 of 10 calls): per call 1.0, 1.2, 1.4 J
    energies, uncertainties, calls = [10.0, 9.6, 14.0], [0.5, 0.4, 0.5], [10, 8, 10]
    phases = {
        f"w{i}": PhaseEnergy(f"w{i}", 1, 1.0, e, u)
        for i, (e, u) in enumerate(zip(energies, uncertainties, strict=True))
    }
    m = SimpleNamespace(energy_j=40.0, co2e_kg=None, methods=("counter",), phase=phases.get)
    row = SweepRow(Baseline(), 0, phases=list(phases), calls=calls)
    out = row_energy(row, m, batch=4)
    assert out["energy_per_window_j"] == energies
    assert out["energy_per_inference_j"] == pytest.approx(1.2)
    # t for n - 1 = 2 degrees of freedom, the sample standard deviation (0.2), / sqrt(n)
    spread = 4.303 * 0.2 / math.sqrt(3)
    assert out["energy_repeat_ci_j"] == pytest.approx(spread, rel=1e-12)
    assert out["energy_uncertainty_j"] == pytest.approx(0.05, rel=1e-12)  # mean of u / calls
    assert out["energy_ci_j"] == pytest.approx(math.sqrt(spread**2 + 0.05**2), rel=1e-12)
    assert out["energy_per_sample_j"] == pytest.approx(0.3)


def test_the_row_shows_each_window_it_averaged(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    from greenai.compress.stats import t_quantile_975
    from greenai.testing import FakeGPU

    protocol = dataclasses.replace(fast_options["protocol"], min_rounds=3, max_rounds=3)
    fast_options.update(protocol=protocol, devices=[FakeGPU(noise_w=40.0, update_period_s=0.01)])
    frame = sweep(mlp, [], torch.randn(8, 16), **fast_options)
    row = frame.iloc[0]
    calls, energies = row["calls_per_window"], row["energy_per_window_j"]
    assert len(calls) == len(energies) == 3 and all(n >= 1 for n in calls)
    m = frame.attrs["measurement"]
    windows = [m.phase(f"row0-r{r}") for r in range(3)]
    assert energies == [w.energy_j for w in windows]
    per = [e / n for e, n in zip(energies, calls, strict=True)]
    spread = t_quantile_975(2) * float(np.std(per, ddof=1)) / math.sqrt(3)
    sensor = float(np.mean([w.uncertainty_j / n for w, n in zip(windows, calls, strict=True)]))
    assert row["energy_per_inference_j"] == pytest.approx(float(np.mean(per)), rel=1e-12)
    assert row["energy_repeat_ci_j"] == pytest.approx(spread, rel=1e-9)
    assert row["energy_uncertainty_j"] == pytest.approx(sensor, rel=1e-12)
    assert row["energy_ci_j"] == pytest.approx(math.hypot(spread, sensor), rel=1e-12)


def test_the_windows_run_in_eval_mode_whatever_eval_fn_leaves(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    modes: list[bool] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            modes.append(self.training)
            return x

    def eval_fn(model: nn.Module) -> float:
        model.train()  # as a careless evaluation might
        return 1.0

    frame = sweep(nn.Sequential(mlp, Spy()), [], torch.randn(4, 16), eval_fn, **fast_options)
    assert frame.iloc[0]["status"] == "ok"
    assert len(modes) > 20 and not any(modes)


def _busy_finetune(log: list[nn.Module], seconds: float = 0.15) -> Any:
    """A real (tiny) training loop that runs for ``seconds``, recording each model it gets."""

    def finetune(model: nn.Module) -> nn.Module | None:
        log.append(model)
        params = [p for p in model.parameters() if p.requires_grad and type(p) is nn.Parameter]
        if not params:
            return None
        opt = torch.optim.SGD(params, lr=1e-2)
        x = torch.randn(16, 16)
        start = time.perf_counter()
        model.train()
        while time.perf_counter() - start < seconds:
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model

    return finetune


def test_finetune_is_its_own_measured_phase_on_each_compressed_copy(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    log: list[nn.Module] = []
    frame = sweep(
        mlp,
        ["l1:0.5", "l1-masked:0.5"],
        torch.randn(8, 16),
        finetune_fn=_busy_finetune(log),
        **fast_options,
    )
    assert len(log) == 2 and all(m is not mlp for m in log)  # never the baseline, never the user's
    by = frame.set_index("label")
    assert math.isnan(by.loc["baseline", "finetune_s"])
    assert math.isnan(by.loc["baseline", "compress_energy_j"])
    for label in ("l1-layer 50%", "l1-layer 50% +masks"):
        row = by.loc[label]
        assert row["finetune_s"] >= 0.15
        # the fake GPU draws a steady 100 W: a phase's energy is 100 W × its duration
        assert row["finetune_energy_j"] == pytest.approx(100.0 * row["finetune_s"], abs=3.0)
        assert row["compress_energy_j"] == pytest.approx(100.0 * row["compress_s"], abs=3.0)
        expected = break_even(
            row["compress_energy_j"] + row["finetune_energy_j"],
            row["compress_energy_uncertainty_j"] + row["finetune_energy_uncertainty_j"],
            by.loc["baseline", "energy_per_inference_j"],
            by.loc["baseline", "energy_ci_j"],
            row["energy_per_inference_j"],
            row["energy_ci_j"],
        )
        assert row["break_even"] == expected.text
    # training re-grows weights that pruning zeroed, unless the masks stay attached
    assert "re-grew pruned weights" in by.loc["l1-layer 50%", "notes"]
    assert by.loc["l1-layer 50%", "sparsity"] < 0.4
    assert by.loc["l1-layer 50% +masks", "sparsity"] == pytest.approx(0.5, abs=0.02)
    assert "re-grew" not in by.loc["l1-layer 50% +masks", "notes"]


def test_a_failing_finetune_skips_the_row_with_its_reason(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    def finetune(model: nn.Module) -> None:
        raise ValueError("no data")

    frame = sweep(mlp, "l1:0.5", torch.randn(8, 16), finetune_fn=finetune, **fast_options)
    assert list(frame["status"]) == ["ok", "skipped"]
    assert frame.iloc[1]["reason"] == "finetune_fn failed: ValueError: no data"
    with pytest.raises(ConfigError, match="finetune_fn must be callable"):
        sweep(mlp, "l1:0.5", torch.randn(8, 16), finetune_fn=3, **fast_options)  # type: ignore[arg-type]


def test_residual_model_structured_and_pipeline_rows(fast_options: dict[str, Any]) -> None:
    pytest.importorskip("torch_pruning")
    pytest.importorskip("optimum.quanto")
    from tests.compress.models import ResidualMLP

    torch.manual_seed(0)
    model = ResidualMLP(width=64, hidden=128).eval()
    frame = sweep(model, "structured:0.5,structured:0.5+int4wo", torch.randn(8, 16), **fast_options)
    assert list(frame["status"]) == ["ok"] * 3, frame["reason"].tolist()
    base, structured, pipe = (frame.iloc[i] for i in range(3))
    assert structured["params"] == pytest.approx(base["params"] / 2, rel=0.1)
    assert structured["flops_nominal"] <= 0.7 * base["flops_nominal"]
    assert pipe["compression_ratio"] >= 10
    assert pipe["compress_s"] > 0 and "steps: structured 50%" in pipe["notes"]


def test_windows_shorter_than_the_sensor_update_repeat_at_shifted_offsets(
    mlp: nn.Module, fast_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 ms windows against 100 ms updates: 8 windows, each after a delay in its slot."""
    import sys

    from greenai.protocol import SHIFTS, shift_s
    from greenai.testing import FakeGPU

    delays: list[float] = []

    def recorded(i: int, period_s: float) -> float:
        delays.append(shift_s(i, period_s))
        return delays[-1]

    monkeypatch.setattr(sys.modules["greenai.compress.sweep"], "shift_s", recorded)
    fast_options.update(
        devices=[FakeGPU(power_w=100.0, noise_w=0.0, update_period_s=0.1)], periods_per_window=4
    )
    frame = sweep(mlp, [], torch.randn(8, 16), **fast_options)
    row = frame.iloc[0]
    assert row["repeats"] == SHIFTS and len(row["energy_per_window_j"]) == SHIFTS
    # one delay a round; a round re-measured (an outlying baseline on a busy host) adds one
    assert len(delays) == SHIFTS + frame.attrs["rounds_remeasured"]
    for i, d in enumerate(delays):
        slot = i % SHIFTS
        assert slot * 0.1 / SHIFTS <= d < (slot + 1) * 0.1 / SHIFTS
    assert "shifted start offsets" in row["notes"]
    assert row["energy_ci_j"] >= row["energy_repeat_ci_j"] > 0


def test_windows_as_long_as_an_update_are_not_shifted(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    frame = sweep(mlp, [], torch.randn(8, 16), **fast_options)  # updates every 10 ms
    row = frame.iloc[0]
    assert row["repeats"] == 2 and "shifted" not in row["notes"]


def _fake_rows(per_round_j: dict[str, list[float]], methods: dict[str, Method]) -> Any:
    """Rows and a measurement whose windows spent ``per_round_j`` (J per call) each round."""
    from types import SimpleNamespace

    from greenai.measurement import PhaseEnergy

    phases: dict[str, PhaseEnergy] = {}
    rows = []
    for index, (label, energies) in enumerate(per_round_j.items()):
        row = SweepRow(methods[label], index)
        for r, e in enumerate(energies):
            name = f"row{index}-r{r}"
            phases[name] = PhaseEnergy(name, 1, 1.0, e * 10, 0.0)
            row.phases.append(name)
            row.calls.append(10)
            row.durations_s.append(e)  # time per window tracks energy
        row.values.update(status="ok", flops_nominal=1e6, size_bytes=1000)
        rows.append(row)
    m = SimpleNamespace(energy_j=1.0, co2e_kg=None, methods=("counter",), phase=phases.get)
    return rows, m


def test_a_saving_with_the_same_dense_work_and_no_kernel_is_a_note_not_a_gain() -> None:
    from greenai.compress import Baseline, L1Unstructured
    from greenai.paired import Protocol, Rounds

    # the case: a cold baseline made masked L1 pruning look 9x cheaper
    base = [1.0, 1.02, 0.98, 1.01, 0.99]
    pruned = [0.11, 0.112, 0.108, 0.111, 0.109]
    rows, m = _fake_rows(
        {"baseline": base, "l1": pruned}, {"baseline": Baseline(), "l1": L1Unstructured(0.3)}
    )
    rounds = Rounds([base, pruned], kept=[True] * 5)
    out = row_ratios(rows, m, rounds, Protocol())
    assert out[1]["energy_vs_baseline"] == pytest.approx(0.11, rel=0.01)
    assert out[1]["verdict"].startswith("no measurable difference (implausible saving")
    assert any("not a real saving" in n for n in out[1]["extra_notes"])
    # the same figures from a method that runs a low-bit kernel are a real saving
    rows[1].method = Method.__new__(type("Q", (Baseline,), {"kernel": "int8 (test)"}))
    rows[1].method.params, rows[1].method.notes = {}, []
    out = row_ratios(rows, m, rounds, Protocol())
    assert out[1]["verdict"].startswith("89% less energy")
    assert out[0]["verdict"] == "baseline" and out[0]["energy_vs_baseline"] == 1.0


def test_rows_are_measured_in_interleaved_rounds_with_paired_ratios(
    mlp: nn.Module, fast_options: dict[str, Any]
) -> None:
    protocol = dataclasses.replace(fast_options["protocol"], min_rounds=4, max_rounds=4, seed=3)
    fast_options["protocol"] = protocol
    stages: list[tuple[str, int, int]] = []
    frame = sweep(
        mlp,
        ["l1:0.3", "structured:0.5"],
        torch.randn(8, 16),
        progress=lambda *a: stages.append(a),
        **fast_options,
    )
    from greenai.paired import round_order

    m = frame.attrs["measurement"]
    orders = frame.attrs["round_orders"]
    # a busy machine may re-measure a round whose baseline was an outlier (on top of the 4)
    assert 4 <= len(orders) <= 4 + protocol.max_remeasure
    assert orders == [round_order(r, 3, seed=3) for r in range(len(orders))]
    for r in range(len(orders)):  # each round ran all three rows
        assert all(m.phase(f"row{i}-r{r}").count == 1 for i in range(3))
    assert [s for s in stages if s[0] == "prepare"][-1] == ("prepare", 3, 3)
    assert ("rounds", 4, 4) in stages
    assert "interleaved" in frame.attrs["protocol"]
    pruned = frame.set_index("label").loc["l1-layer 30%"]
    assert pruned["energy_vs_baseline_low"] <= pruned["energy_vs_baseline"]
    assert pruned["energy_vs_baseline"] <= pruned["energy_vs_baseline_high"]
    assert pruned["time_vs_baseline_low"] <= pruned["time_vs_baseline_high"]
    # masked L1 pruning runs the dense kernels: never reported as a gain
    assert "less" not in pruned["verdict"].split("(")[0]


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, round_index: int, window: int) -> None:
    """Ctrl-C as the ``window``-th window (1-based) of round ``round_index`` starts."""
    import greenai.tracker

    phase = greenai.tracker.Tracker.phase
    seen = []

    def tripped(self: Any, name: str, **kwargs: Any) -> Any:
        if name.endswith(f"-r{round_index}"):
            seen.append(name)
            if len(seen) == window:
                raise KeyboardInterrupt
        return phase(self, name, **kwargs)

    monkeypatch.setattr(greenai.tracker.Tracker, "phase", tripped)


def test_ctrl_c_during_the_rounds_keeps_the_rounds_done(
    mlp: nn.Module, fast_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenai.compress import SweepInterrupted
    from greenai.paired import Protocol

    options = {**fast_options, "protocol": Protocol(min_rounds=6, max_rounds=6, warmup_window=3,
                                                    warmup_max_s=0.05)}  # fmt: skip
    _interrupt_at(monkeypatch, round_index=3, window=2)  # the 4th round, its 2nd window
    x = torch.randn(32, 16)
    with pytest.raises(SweepInterrupted) as caught:
        sweep(mlp, ["l1:0.5", "structured:0.5"], x, **options)
    exc = caught.value
    assert exc.exit_code == 130 and exc.rounds.kept.count(True) == 3
    frame = exc.frame
    assert frame.attrs["rounds_stopped_by"] == "interrupted"
    assert list(frame["status"]) == ["ok", "ok", "ok"]
    assert list(frame["repeats"]) == [3, 3, 3]  # the window of the round cut short is out
    assert frame["energy_per_inference_j"].notna().all()


def test_ctrl_c_before_two_rounds_is_a_plain_interrupt(
    mlp: nn.Module, fast_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenai.compress import SweepInterrupted

    _interrupt_at(monkeypatch, round_index=1, window=1)  # one round done
    with pytest.raises(KeyboardInterrupt) as caught:
        sweep(mlp, ["l1:0.5"], torch.randn(32, 16), **fast_options)
    assert not isinstance(caught.value, SweepInterrupted)


def test_greenai_compress_prints_the_partial_table_and_exits_130(
    mlp: nn.Module,
    fast_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import greenai.cli
    import greenai.compress.cli
    from greenai.compress import SweepInterrupted
    from greenai.paired import Protocol

    options = {**fast_options, "protocol": Protocol(min_rounds=4, max_rounds=4, warmup_window=3,
                                                    warmup_max_s=0.05)}  # fmt: skip
    with monkeypatch.context() as m:
        _interrupt_at(m, round_index=2, window=1)
        with pytest.raises(SweepInterrupted) as caught:
            sweep(mlp, ["l1:0.5"], torch.randn(32, 16), **options)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise caught.value

    monkeypatch.setattr(greenai.compress.cli, "sweep", interrupted)
    code = greenai.cli.main(["compress", "greenai.demo:build_mlp", "--input-shape", "4,64"])
    out, err = capsys.readouterr()
    assert code == 130
    assert "baseline" in out and "l1" in out  # the table of the 2 rounds done
    assert "interrupted by SIGINT after 2 rounds" in err and "Traceback" not in err
