"""Callbacks count right and never touch the user's exceptions (issue 28)."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from greenai.errors import MeasurementWarning
from greenai.testing import FakeGPU

transformers = pytest.importorskip("transformers")
pl = pytest.importorskip("lightning.pytorch")
torch = pytest.importorskip("torch")

from test_lightning import Regression, loader  # noqa: E402
from test_transformers import trainer  # noqa: E402

from greenai.integrations.lightning import GreenAICallback as LightningCallback  # noqa: E402
from greenai.integrations.transformers import GreenAICallback as TrainerCallback  # noqa: E402


def _greenai_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("greenai-") and t.is_alive()]


def test_a_trainer_callback_registered_twice_counts_each_step_once(tmp_path: Path) -> None:
    callback = TrainerCallback(devices=[FakeGPU(seed=1)], flops="none")
    t = trainer(tmp_path, callback, eval_strategy="no")
    t.add_callback(callback)  # the same object a second time
    with pytest.warns(MeasurementWarning, match="registered twice"):
        t.train()
    assert callback.result is not None and callback.result.status == "completed"
    assert callback.result.steps.count == 6
    assert callback.result.steps.samples == 6 * 4


def test_a_lightning_callback_registered_twice_counts_each_step_once() -> None:
    callback = LightningCallback(devices=[FakeGPU(seed=2)])
    trainer_ = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, callbacks=[callback, callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer_.fit(Regression(), loader(32))
    m = callback.result
    assert m is not None and m.status == "completed"
    assert m.steps.count == trainer_.global_step == 8
    assert m.steps.samples == 32
    assert not _greenai_threads()


def test_a_lightning_fit_resumed_from_a_checkpoint_counts_only_the_steps_run(
    tmp_path: Path,
) -> None:
    first = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    first.fit(Regression(), loader(32))
    ckpt = first.checkpoint_callback.best_model_path  # type: ignore[union-attr]
    assert ckpt and first.global_step == 8
    callback = LightningCallback(devices=[FakeGPU(seed=3)])
    second = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    second.fit(Regression(), loader(32), ckpt_path=ckpt)
    assert second.global_step == 16
    assert callback.result is not None and callback.result.steps.count == 8


class RaisingLogger(pl.loggers.Logger):  # type: ignore[misc]
    """A logger that fails on greenai's figures (a full disk, a server gone)."""

    @property
    def name(self) -> str:
        return "raising"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if any(k.startswith("greenai/") for k in metrics):
            raise OSError("no space left on device")


def _fit(module: Any, callback: LightningCallback) -> Any:
    t = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=RaisingLogger(), callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        log_every_n_steps=1000,
    )  # fmt: skip
    t.fit(module, loader(16))
    return t


def test_a_logger_failing_on_the_final_figures_never_fails_a_completed_fit() -> None:
    callback = LightningCallback(devices=[FakeGPU(seed=4)])
    with pytest.warns(MeasurementWarning, match="no space left"):
        _fit(Regression(), callback)
    assert callback.result is not None and callback.result.status == "completed"
    assert not _greenai_threads()


def test_a_logger_failing_never_replaces_the_users_exception() -> None:
    class Broken(Regression):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            if batch_idx == 2:
                raise RuntimeError("the user's own")
            return super().training_step(batch, batch_idx)

    callback = LightningCallback(devices=[FakeGPU(seed=5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="the user's own"):
            _fit(Broken(), callback)
    assert callback.result is not None and callback.result.status == "failed"
    assert not _greenai_threads()
