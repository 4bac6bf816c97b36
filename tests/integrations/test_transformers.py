from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import greenai  # noqa: E402
import greenai.cli  # noqa: E402
from greenai.integrations.transformers import FLOP_SOURCES, GreenAICallback  # noqa: E402
from greenai.store import RunStore  # noqa: E402
from greenai.testing import FakeGPU  # noqa: E402

SEQ = 16


class Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, 100, (n, SEQ), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert() -> object:
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=SEQ, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def trainer(tmp_path: Path, callback: GreenAICallback, **args: object) -> object:
    options = {
        "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4, "max_steps": 6, "logging_steps": 2,
        "eval_strategy": "steps", "eval_steps": 3, "report_to": [], "save_strategy": "no",
        "use_cpu": True, "disable_tqdm": True, "gradient_accumulation_steps": 1,
    }  # fmt: skip
    options.update(args)
    return transformers.Trainer(
        model=tiny_bert(),
        args=transformers.TrainingArguments(**options),
        train_dataset=Tokens(32),
        eval_dataset=Tokens(8, seed=1),
        callbacks=[callback],
    )


def test_trainer_run_is_tracked_per_step_phase_and_logged(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    callback = GreenAICallback(
        devices=[FakeGPU(power_w=150.0, seed=1)], store=store, training_type="fine-tuning"
    )
    t = trainer(tmp_path, callback, gradient_accumulation_steps=2)
    t.train()
    m = callback.result
    assert m is not None and m.status == "completed"
    # one step per optimizer step; each held 2 micro-batches of 4 samples of SEQ tokens
    assert m.steps.count == t.state.global_step == 6
    assert m.steps.samples == 6 * 2 * 4
    assert m.steps.tokens == 6 * 2 * 4 * SEQ
    phases = {p.name: p for p in m.phases}
    assert {"train", "evaluation"} <= set(phases)
    assert phases["evaluation"].count == 2  # eval at steps 3 and 6
    assert phases["train"].energy_j and phases["evaluation"].energy_j
    assert m.flops and m.flops > 0 and callback.flops_source == "count"
    # each new input shape was counted apart from the steps, in its own measured phase
    assert phases["train/flop-count"].count >= 1 and phases["train/flop-count"].duration_s > 0
    # evaluation and FLOP counting are kept out of the steps: steps + both = the job, up to
    # the time after the last step (the end of training)
    assert {"evaluation", "train/flop-count"} <= set(m.steps.apart_phases)
    apart_j = (phases["evaluation"].energy_j or 0.0) + (phases["train/flop-count"].energy_j or 0.0)
    assert m.energy_j is not None and m.steps.total_energy_j + apart_j <= m.energy_j * (1 + 1e-9)
    # the counting's energy is in the total and said, not in the energy per TFLOP
    counted = [p.energy_j or 0.0 for p in m.phases if p.name.endswith("/flop-count")]
    counting_j = sum(counted)
    assert counting_j and m.flop_count_energy_j == pytest.approx(counting_j)
    assert m.j_per_tflop == pytest.approx((m.energy_j - counting_j) / (m.flops / 1e12))
    # counted per shape: training forwards+backwards and evaluation forwards
    assert m.flops > 6 * 2 * 4 * SEQ * 2 * 3  # > 6 FLOPs per parameter-token, roughly
    logged = [h for h in t.state.log_history if "loss" in h]
    assert len(logged) == 3
    for entry in logged:
        assert entry["greenai/energy_kwh"] > 0
        assert entry["greenai/steps"] == entry["step"]
        assert "greenai/kwh_per_tflop" in entry
    # per-step figures appear once steps have settled (live: a second or so); at the end:
    final = t.state.log_history[-1]
    assert final["greenai/method"] == "+".join(m.methods)  # counter, or power if very short
    assert final["greenai/energy_j_per_step"] == pytest.approx(m.steps.mean_energy_j)
    assert final["greenai/energy_j_per_token"] == pytest.approx(m.steps.energy_per_token_j)
    with RunStore(store, read_only=True) as runs:
        run = runs.get("latest")
    assert run.measurement.steps.count == 6
    assert run.meta["flops_source"] == FLOP_SOURCES["count"]
    assert run.meta["training_type"] == "fine-tuning"
    # what it learned reaches the stored run: the evaluations at steps 3 and 6, the first
    # epoch's end at 4 (32 samples, 8 a step), each with the last logged training loss
    learned = run.meta["learning"]
    assert [r["step"] for r in learned] == [3, 4, 6]
    assert learned[0]["eval_loss"] > 0 and learned[2]["eval_loss"] > 0
    assert "eval_loss" not in learned[1] and learned[1]["epoch"] == 1.0
    assert learned[-1]["loss"] == pytest.approx(logged[-1]["loss"])
    from greenai.report.learning import learning_rows

    rows = learning_rows(run.meta, run.measurement)
    assert [r["eval_loss"] for r in rows] == [r.get("eval_loss") for r in learned]
    # each row's energy is its steps': together, the steps' (eval is in none of them)
    assert sum(r["energy_j"] for r in rows) == pytest.approx(m.steps.total_energy_j, rel=1e-9)
    assert greenai.cli.main(["report", "latest", "--store", str(store), "--format", "html",
                             "--output", str(tmp_path / "r.html")]) == 0  # fmt: skip
    page = (tmp_path / "r.html").read_text()
    assert "Learning and energy" in page and "accuracy and loss against energy" in page


def test_add_to_puts_the_figures_in_front_of_report_to_integrations(tmp_path: Path) -> None:
    seen: list[dict[str, float]] = []

    class Reporter(transformers.TrainerCallback):  # stands for a report_to integration
        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(dict(logs))

    t = trainer(tmp_path, Reporter(), eval_strategy="no")
    callback = GreenAICallback.add_to(t, flops="trainer", devices=[FakeGPU(seed=2)])
    t.train()
    assert seen and all("greenai/energy_kwh" in logs for logs in seen)
    assert all("greenai/kwh_per_tflop" in logs for logs in seen)  # from state.total_flos
    assert callback.result is not None
    assert callback.result.flops == pytest.approx(t.state.total_flos)


def test_bad_options_fail_when_the_callback_is_made() -> None:
    with pytest.raises(greenai.GreenAIError, match="flops must be one of"):
        GreenAICallback(flops="guess")  # type: ignore[arg-type]
    with pytest.raises(greenai.GreenAIError, match="did you mean 'country'"):
        GreenAICallback(contry="FRA")


def test_in_a_process_group_rank_0_records_one_job(tmp_path: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        db = tmp_path / "runs.db"
        callback = GreenAICallback(devices=[FakeGPU(seed=6)], store=db, flops="none")
        trainer(tmp_path, callback, max_steps=2, eval_strategy="no").train()
    finally:
        dist.destroy_process_group()
    m = callback.result
    assert m is not None and m.job is not None
    assert m.job.world_size == 1 and m.job.complete and m.job.ranks[0].steps == 2
    with RunStore(tmp_path / "runs.db", read_only=True) as runs:
        run = runs.get("latest")
    assert run.meta["distributed"]["world_size"] == 1
    assert run.meta["integration"] == "transformers.Trainer"


def test_a_train_that_raised_is_stopped_as_failed_by_the_next(tmp_path: Path) -> None:
    callback = GreenAICallback(devices=[FakeGPU(seed=7)], flops="none")
    t = trainer(tmp_path, callback, max_steps=2, eval_strategy="no")

    class Boom(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == 1:
                raise RuntimeError("diverged")

    boom = Boom()
    t.add_callback(boom)
    with pytest.raises(RuntimeError, match="diverged"):
        t.train()
    assert callback.job is not None and callback.job.running  # no callback ran
    first = callback.job
    t.remove_callback(boom)
    t.train()
    assert not first.running and first.result.status == "failed"
    assert callback.result is not None and callback.result.status == "completed"
    assert callback.result.steps.count == 2 and callback.result.steps.samples == 2 * 4


def test_the_callbacks_tags_are_stored_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENAI_TAGS", "site=par1,team=infra")
    store = tmp_path / "runs.db"
    callback = GreenAICallback(
        devices=[FakeGPU(power_w=120.0, seed=3)],
        store=store,
        flops="none",
        tags={"team": "nlp", "model": "tiny-bert"},
    )
    trainer(tmp_path, callback, max_steps=2, eval_strategy="no").train()
    with RunStore(store, read_only=True) as runs:
        run = runs.get("latest")
    # the callback's tags win over GREENAI_TAGS key by key; the others are kept
    assert run.tags == {"model": "tiny-bert", "site": "par1", "team": "nlp"}
    assert run.status == "completed"
