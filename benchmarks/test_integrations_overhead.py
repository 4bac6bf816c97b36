"""What the Hugging Face Trainer callback costs a training step (tiny BERT, CPU).

Target (issue 14): at most 1% per step. Nothing here asserts a time (shared machines are
noisy): read the pytest-benchmark table, where group ``trainer`` shows a short run with and
without the callback side by side, and the paired test's ``extra_info``
(``--benchmark-json``, or ``-s`` to print): the per-step overhead, from the slope between a
short and a long run so the one-off costs (starting the tracker, counting the FLOPs of the
one input shape) are reported apart, as ``fixed_cost_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from greenai.integrations.transformers import GreenAICallback  # noqa: E402
from greenai.testing import FakeGPU  # noqa: E402

SEQ, BATCH = 32, 8
SHORT, LONG = 5, 25
"""Optimizer steps of the short and long runs (the slope between them is per-step cost)."""


def _data(n: int) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (n, SEQ), generator=g)
    return [{"input_ids": x, "labels": int(x[0]) % 2} for x in ids]


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, str | None], float]:
    """Run ``steps`` optimizer steps of a tiny BERT, with the callback (flops mode) or not."""
    config = transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=SEQ, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    data = _data(LONG * BATCH)
    out = Path(tmp_path_factory.mktemp("trainer"))

    def run(steps: int, flops: str | None) -> float:
        callbacks = [] if flops is None else [GreenAICallback(flops=flops, devices=[FakeGPU()])]
        args = transformers.TrainingArguments(
            output_dir=str(out), per_device_train_batch_size=BATCH, max_steps=steps,
            logging_steps=5, report_to=[], save_strategy="no", use_cpu=True,
            disable_tqdm=True, log_level="error",
        )  # fmt: skip
        trainer = transformers.Trainer(
            model=model, args=args, train_dataset=data, callbacks=callbacks
        )
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
        if callbacks:
            result = callbacks[0].result
            assert result is not None and result.steps.count == steps
        return elapsed

    return run


@pytest.mark.parametrize(
    "flops", [None, "trainer", "count"], ids=["plain", "cb-trainer", "cb-count"]
)
@pytest.mark.benchmark(group="trainer")
def test_trainer_run(benchmark, train, flops: str | None) -> None:  # type: ignore[no-untyped-def]
    """A short Trainer run: plain, with the callback (Trainer's FLOPs), counting FLOPs."""
    benchmark.pedantic(train, args=(SHORT, flops), rounds=3, warmup_rounds=1)


class _Nothing(torch.nn.Module):  # type: ignore[misc]
    """A model whose forward costs next to nothing: what remains is the call and its hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, input_ids: Any = None, labels: Any = None) -> Any:
        return self.scale * 1.0


@pytest.mark.parametrize("hooked", [False, True], ids=["plain", "callback"])
@pytest.mark.benchmark(group="callback-per-step")
def test_callback_work_per_step(benchmark, hooked: bool) -> None:  # type: ignore[no-untyped-def]
    """What the callback adds to one optimizer step, without the step's own noise.

    One empty forward with the inputs of a batch (the callback's forward pre-hook reads
    their shape and looks its FLOPs up), then ``on_step_end`` (one ``job.step()``); the
    plain variant is the empty forward alone. Divide the difference by a real step's time
    (``plain_step_ms`` of the paired test) for the share.
    """
    model = _Nothing().train()
    batch = {"input_ids": torch.zeros(BATCH, SEQ, dtype=torch.long), "labels": torch.zeros(BATCH)}
    args = state = control = None
    if hooked:
        callback = GreenAICallback(flops="count", devices=[FakeGPU()])
        state = transformers.TrainerState()
        callback.on_train_begin(args, state, control, model=model)

        def step() -> None:
            model(**batch)
            state.global_step += 1  # as the Trainer does before on_step_end
            callback.on_step_end(args, state, control)
    else:

        def step() -> None:
            model(**batch)

    benchmark.pedantic(step, rounds=20, iterations=500, warmup_rounds=1)
    if hooked:
        callback.on_train_end(args, state, control)
        ran = 1 if benchmark.disabled else 500  # --benchmark-disable runs the step once
        assert callback.result is not None and callback.result.steps.count >= ran
        assert callback.result.steps.samples == callback.result.steps.count * BATCH


@pytest.mark.benchmark(group="trainer-paired")
def test_trainer_per_step_overhead(benchmark, train) -> None:  # type: ignore[no-untyped-def]
    """Per-step slowdown (slope between a short and a long run) and the one-off cost."""
    slopes: dict[str, list[float]] = {"plain": [], "callback": []}
    fixed: list[float] = []

    def pair() -> None:
        plain = [train(SHORT, None), train(LONG, None)]
        with_cb = [train(SHORT, "count"), train(LONG, "count")]
        slopes["plain"].append((plain[1] - plain[0]) / (LONG - SHORT))
        slopes["callback"].append((with_cb[1] - with_cb[0]) / (LONG - SHORT))
        fixed.append(with_cb[0] - plain[0] - SHORT * (slopes["callback"][-1] - slopes["plain"][-1]))

    benchmark.pedantic(pair, rounds=3, warmup_rounds=0)
    ratios = sorted(c / p for c, p in zip(slopes["callback"], slopes["plain"], strict=True))
    overhead_pct = 100.0 * (ratios[len(ratios) // 2] - 1.0)
    step_ms = 1000 * sorted(slopes["plain"])[len(ratios) // 2]
    benchmark.extra_info["per_step_overhead_pct_median"] = round(overhead_pct, 2)
    benchmark.extra_info["plain_step_ms"] = round(step_ms, 2)
    benchmark.extra_info["fixed_cost_s"] = round(sorted(fixed)[len(fixed) // 2], 3)
    print(
        f"\nTrainer step {step_ms:.1f} ms; callback per step {overhead_pct:+.2f}% (median of"
        f" {len(ratios)}), one-off {benchmark.extra_info['fixed_cost_s']} s"
    )
