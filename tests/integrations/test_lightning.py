from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

pl = pytest.importorskip("lightning.pytorch")
torch = pytest.importorskip("torch")

from greenai.integrations.lightning import GreenAICallback  # noqa: E402
from greenai.testing import FakeGPU  # noqa: E402


class Regression(pl.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader(n: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 8, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=4)


def test_fit_is_tracked_and_figures_reach_the_loggers(tmp_path: Path) -> None:
    callback = GreenAICallback(devices=[FakeGPU(power_w=120.0, seed=3)])
    logger = pl.loggers.CSVLogger(str(tmp_path), name="fit")
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=logger, callbacks=[callback],
        log_every_n_steps=2, accumulate_grad_batches=2, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, limit_val_batches=2,
    )  # fmt: skip
    trainer.fit(Regression(), loader(32), loader(16))
    m = callback.result
    assert m is not None and m.status == "completed"
    assert m.steps.count == trainer.global_step == 8  # 8 batches / 2 accumulated, 2 epochs
    assert m.steps.samples == 2 * 32
    phases = {p.name: p for p in m.phases}
    assert {"train", "validation"} <= set(phases)
    assert phases["validation"].count == 3  # the sanity check and once per epoch
    # FLOPs counted as the Trainer callback counts them (no flops_per_step= given): per
    # sample, Linear(8, 1) forward 2·8 and the weight's gradient 2·8 (the input needs none),
    # for 64 training samples; forward only for the 2 × 8 validation samples after training
    # started (the sanity check runs before)
    assert m.flops == 64 * (2 * 8 + 2 * 8) + 16 * 2 * 8
    assert "train/flop-count" in phases or "validation/flop-count" in phases
    # validation (the sanity check's too) and FLOP counting are kept out of the steps
    assert "validation" in m.steps.apart_phases
    assert {p for p in phases if p.endswith("flop-count")} <= set(m.steps.apart_phases)
    apart = m.steps.apart_phases
    outermost = [p for p in apart if not any(p.startswith(q + "/") for q in apart)]
    apart_j = math.fsum(phases[p].energy_j or 0.0 for p in outermost)
    assert m.energy_j is not None and m.steps.total_energy_j + apart_j <= m.energy_j * (1 + 1e-9)
    rows = list(csv.DictReader((Path(logger.log_dir) / "metrics.csv").open()))
    live = [r for r in rows if r.get("greenai/energy_kwh")]
    assert len(live) >= 4  # every 2nd of 8 optimizer steps, and the final figures
    assert float(live[-1]["greenai/energy_kwh"]) == pytest.approx(m.energy_kwh)
    assert int(live[-1]["step"]) == 8
    hparams = (Path(logger.log_dir) / "hparams.yaml").read_text()
    # how the figures were obtained reaches the logger (a fit this short may end before the
    # counter changed twice, and then reads "power": the tag must say what the result says)
    assert f"greenai/method: {'+'.join(m.methods)}" in hparams


def test_an_exception_in_fit_stops_the_job_as_failed() -> None:
    class Broken(Regression):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            if batch_idx == 2:
                raise RuntimeError("diverged")
            return super().training_step(batch, batch_idx)

    callback = GreenAICallback(devices=[FakeGPU(seed=4)])
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="diverged"):
        trainer.fit(Broken(), loader(32))
    assert callback.result is not None and callback.result.status == "failed"
    assert callback.result.steps.count == 2
    assert callback.job is not None and not callback.job.running


def test_the_callbacks_tags_are_stored_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenai.store import RunStore

    monkeypatch.setenv("GREENAI_TAGS", "site=par1,team=infra")
    callback = GreenAICallback(
        devices=[FakeGPU(power_w=120.0, seed=3)],
        store=tmp_path / "runs.db",
        tags={"team": "vision", "model": "regression"},
    )
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Regression(), loader(8))
    with RunStore(tmp_path / "runs.db") as store:
        run = store.get("latest")
    assert run.tags == {"model": "regression", "site": "par1", "team": "vision"}
    assert run.status == "completed"


def test_the_epochs_loss_and_accuracy_reach_the_stored_run_and_its_report(tmp_path: Path) -> None:
    import greenai.cli
    from greenai.report.learning import learning_rows
    from greenai.store import RunStore

    class Logged(Regression):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            loss = super().training_step(batch, batch_idx)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            super().validation_step(batch, batch_idx)
            x, y = batch
            self.log("val_acc", ((self.layer(x) - y).abs() < 1.0).float().mean())

    store = tmp_path / "runs.db"
    callback = GreenAICallback(devices=[FakeGPU(power_w=120.0, seed=3)], store=store)
    trainer = pl.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Logged(), loader(16), loader(8))
    with RunStore(store, read_only=True) as runs:
        run = runs.get("latest")
    learned = run.meta["learning"]
    # one row per epoch, at its last optimizer step (16 samples in batches of 4)
    assert [(r["epoch"], r["step"]) for r in learned] == [(0, 4), (1, 8), (2, 12)]
    assert all(r["loss"] > 0 and r["eval_loss"] > 0 and 0 <= r["accuracy"] <= 1 for r in learned)
    # the training loss falls epoch to epoch on this regression
    assert learned[-1]["loss"] < learned[0]["loss"]
    rows = learning_rows(run.meta, run.measurement)
    m = run.measurement
    assert sum(r["energy_j"] for r in rows) == pytest.approx(m.steps.total_energy_j, rel=1e-9)
    out = tmp_path / "r.html"
    args = ["report", "latest", "--store", str(store), "--format", "html", "--output", str(out)]
    assert greenai.cli.main(args) == 0
    page = out.read_text()
    assert "Learning and energy" in page and "eval loss" in page


def test_the_learning_curve_reads_the_metric_names_the_user_gives(tmp_path: Path) -> None:
    from greenai.errors import ConfigError, MeasurementWarning
    from greenai.store import RunStore

    class Named(Regression):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            loss = super().training_step(batch, batch_idx)
            self.log("objective", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            super().validation_step(batch, batch_idx)  # logs val_loss: found as before
            x, y = batch
            self.log("top1", ((self.layer(x) - y).abs() < 1.0).float().mean())
            self.log("val_acc", torch.tensor(-1.0))  # the default pick, not the one named

    store = tmp_path / "runs.db"
    callback = GreenAICallback(
        devices=[FakeGPU(power_w=120.0, seed=3)],
        store=store,
        learning_metrics={"loss": "objective", "accuracy": "top1"},
    )
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Named(), loader(16), loader(8))
    with RunStore(store, read_only=True) as runs:
        learned = runs.get("latest").meta["learning"]
    assert [r["epoch"] for r in learned] == [0, 1]
    assert all(r["loss"] > 0 and r["eval_loss"] > 0 and 0 <= r["accuracy"] <= 1 for r in learned)

    # a name that is never logged: said once (not every epoch), the role left out
    callback = GreenAICallback(
        devices=[FakeGPU(power_w=120.0, seed=3)], learning_metrics={"eval_loss": "val/mse"}
    )
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, callbacks=[callback],
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )  # fmt: skip
    with pytest.warns(MeasurementWarning, match=r"'val/mse'.*logged: val_loss") as seen:
        trainer.fit(Regression(), loader(8), loader(8))
    assert sum("val/mse" in str(w.message) for w in seen) == 1
    assert callback.result is not None and callback.result.status == "completed"

    with pytest.raises(ConfigError, match=r"unknown role 'acc'.*loss, eval_loss, accuracy"):
        GreenAICallback(learning_metrics={"acc": "top1"})
    with pytest.raises(ConfigError, match=r"learning_metrics\['loss'\]"):
        GreenAICallback(learning_metrics={"loss": ""})
