"""Lightning: energy of ``Trainer.fit`` through the module's own logging.

Needs the ``lightning`` extra (``pip install 'greenai[lightning]'``). Works with the
``lightning`` package (``lightning.pytorch``); with only ``pytorch_lightning`` installed it
uses that.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError, MeasurementWarning
from greenai.integrations import require
from greenai.integrations.figures import (
    CurrentPhase,
    FlopCounter,
    figures,
    method_tags,
    warn_failure,
    warn_registered_twice,
)
from greenai.integrations.learning import LearningLog

if TYPE_CHECKING:
    from greenai.measurement import Measurement
    from greenai.tracker import Tracker

__all__ = ["GreenAICallback"]

try:
    _pl = importlib.import_module("lightning.pytorch")
except ImportError:
    _pl = require("pytorch_lightning", "lightning", "lightning")


class GreenAICallback(_pl.Callback):  # type: ignore[misc,name-defined]
    """Track ``Trainer.fit``: energy per optimizer step, per phase, in the trainer's loggers.

    From ``on_fit_start`` to ``on_fit_end`` a :class:`greenai.Tracker` measures the run:
    one ``step()`` per optimizer step with the samples of its batches (Lightning's
    ``extract_batch_size``), phases ``train`` and ``validation``. Every
    ``log_every_n_steps`` optimizer steps the figures so far
    (:func:`greenai.integrations.figures.figures`) go through ``pl_module.log_dict`` to
    every logger of the trainer; at the end the final figures and how they were obtained
    (``greenai/method``, as hyperparameters) go to each logger directly, and the
    :class:`~greenai.Measurement` is :attr:`result`.

    Args:
        name: The job's name.
        learning_metrics: Which of ``trainer.callback_metrics`` to note at each training
            epoch's end for the run's learning curve, by role: ``{"loss": ...,
            "eval_loss": ..., "accuracy": ...}`` (any of the three; e.g. ``{"accuracy":
            "val/top1"}``). A role not named is found as before: the loss under
            ``train_loss``, ``loss`` or ``train/loss``, the validation loss under
            ``val_loss`` or ``val/loss``, the accuracy under the first name holding ``acc``
            (a validation one first). A named metric that is not logged is warned about
            once and left out.
        **options: :class:`greenai.Tracker` options (``devices``, ``store``, ``country``,
            ``flops_per_step``, ``sinks``...).

    Attributes:
        job: The tracker, while and after ``fit`` runs.
        result: The final Measurement after ``on_fit_end``.

    Raises:
        ConfigError: An unknown tracker option; a role of ``learning_metrics`` other than
            ``loss``, ``eval_loss`` and ``accuracy``, or a name that is not a non-empty
            string.
    """

    def __init__(
        self,
        name: str = "fit",
        *,
        learning_metrics: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        from greenai.tracker import Tracker

        super().__init__()
        self.name = name
        self.learning_metrics = _check_learning_metrics(learning_metrics)
        self._missing_warned: set[str] = set()
        self._options = options
        Tracker(name, **options)  # bad options fail here, not when fit starts
        self.job: Tracker | None = None
        self.result: Measurement | None = None
        self._current = CurrentPhase()
        self._samples = 0
        self._last_step = 0
        self._trainer: Any = None
        self._last_batch: tuple[int, int, int] | None = None
        self._live_failed = False
        self._hooks: list[Any] = []
        self._depth = 0
        self._flop_counter = FlopCounter()
        self._learning = LearningLog()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the tracker (once per fit, however often the callback is registered).

        A tracker still running from an earlier fit (one whose end no hook reported) is
        stopped first, as ``failed``.
        """
        from greenai.tracker import Tracker

        if self.job is not None and self.job.running:
            if self._trainer is trainer:
                warn_registered_twice(self)
                return
            self._finish(self._trainer, "failed")
        meta = {**(self._options.get("meta") or {}), "integration": "lightning.Trainer"}
        self.job = Tracker(self.name, **{**self._options, "meta": meta})
        self.job.start()
        self._trainer = trainer
        self._last_step = trainer.global_step
        self._last_batch = None
        self._live_failed = False
        self._learning = LearningLog()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Enter the ``train`` phase; steps count from here (a resumed fit's restored step).

        Without ``flops_per_step=``, the module's FLOPs are counted as the Trainer
        callback counts them: at each outermost call of the LightningModule or one of its
        direct children (``self(x)`` or ``self.model(x)`` in ``training_step``), once per
        input shape, forward and backward while training, in the phase ``flop-count``
        (:class:`~greenai.integrations.figures.FlopCounter`). The loss and anything outside
        those modules is not counted.
        """
        self._last_step = trainer.global_step
        self._current.enter(self.job, "train")
        if not self._hooks and self._options.get("flops_per_step") is None:
            self._flop_counter = FlopCounter()
            self._depth = 0
            for module in (pl_module, *pl_module.children()):
                self._hooks.append(
                    module.register_forward_pre_hook(self._before_forward, with_kwargs=True)
                )
                self._hooks.append(
                    module.register_forward_hook(self._after_forward, always_call=True)
                )

    def _before_forward(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        outermost = self._depth == 0
        self._depth += 1
        if not outermost:  # a child inside the module's own call: counted with it
            return
        exc = self._flop_counter(self.job, module, args, kwargs, backward=bool(module.training))
        if exc is not None:
            warn_failure("counting the module's FLOPs", exc)

    def _after_forward(self, module: Any, args: Any, output: Any) -> None:
        self._depth = max(0, self._depth - 1)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Enter the ``validation`` phase (the sanity check's too)."""
        self._current.enter(self.job, "validation", in_steps=False)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Back to ``train`` while training, else out of every phase."""
        if self._current.name == "validation":
            if trainer.training or trainer.state.stage == "train":
                self._current.enter(self.job, "train")
            else:
                self._current.exit()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count the batch's samples; after an optimizer step, mark it and maybe log."""
        job = self.job
        if job is None or not job.running:
            return
        here = (trainer.current_epoch, batch_idx, trainer.global_step)
        if here == self._last_batch:  # registered twice: this batch is counted already
            return
        self._last_batch = here
        try:
            from lightning.pytorch.utilities.data import extract_batch_size
        except ImportError:  # pragma: no cover - pytorch_lightning only
            from pytorch_lightning.utilities.data import extract_batch_size
        with contextlib.suppress(Exception):  # a batch it cannot size: steps without samples
            self._samples += int(extract_batch_size(batch))
        if trainer.global_step == self._last_step:
            return  # gradient accumulation: no optimizer step yet
        for _ in range(trainer.global_step - self._last_step - 1):
            job.step()
        job.step(samples=self._samples or None)
        self._samples = 0
        self._last_step = trainer.global_step
        every = max(int(getattr(trainer, "log_every_n_steps", 50) or 1), 1)
        if trainer.global_step % every == 0 and not self._live_failed:
            try:
                pl_module.log_dict(figures(job.snapshot()), on_step=True, on_epoch=False)
            except Exception as exc:  # greenai's logging must never stop training
                self._live_failed = True
                warn_failure("logging the live energy figures", exc)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Note the epoch's logged loss, validation loss and accuracy (for the run's report).

        Read from ``trainer.callback_metrics``, under the names given as
        ``learning_metrics``, else the usual ones (see the class).
        """
        if self.job is None or not self.job.running:
            return
        try:
            metrics = dict(trainer.callback_metrics or {})
            accuracy = sorted((k for k in metrics if "acc" in k), key=lambda k: "val" not in k)
            found = {
                "loss": _first(metrics, ("train_loss", "loss", "train/loss")),
                "eval_loss": _first(metrics, ("val_loss", "val/loss")),
                "accuracy": metrics[accuracy[0]] if accuracy else None,
            }
            for role, metric in self.learning_metrics.items():
                found[role] = metrics.get(metric)
                if metric not in metrics and metric not in self._missing_warned:
                    self._missing_warned.add(metric)
                    logged = ", ".join(sorted(metrics)) or "none"
                    warnings.warn(
                        f"GreenAICallback: {metric!r} (learning_metrics[{role!r}]) was not"
                        f" logged by epoch {trainer.current_epoch}'s end; logged: {logged}",
                        MeasurementWarning,
                        stacklevel=2,
                    )
            self._learning.note(self.job.steps, trainer.current_epoch, **found)
        except Exception as exc:  # greenai's notes must never stop training
            warn_failure("noting the loss and accuracy", exc)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Stop the tracker; the final figures and methods go to every logger."""
        self._finish(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Stop the tracker as ``failed`` (``interrupted`` for Ctrl-C), keeping its figures."""
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self._finish(trainer, status)

    def _finish(self, trainer: Any, status: str = "completed") -> None:
        """Stop the job and log its final figures; greenai's failures here become warnings.

        Called from ``on_fit_end`` and ``on_exception``: an exception raised here would
        fail a completed fit or replace the user's own exception.
        """
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self.job is None or not self.job.running:
            return
        try:
            self._current.exit()
            self._learning.publish(self.job)  # into the stored run's meta
        except Exception as exc:
            warn_failure("closing the open phase", exc)
        self.result = self.job.stop(status=status)
        try:
            final = figures(self.result)
            tags = method_tags(self.result)
        except Exception as exc:
            warn_failure("computing the final figures", exc)
            return
        for logger in getattr(trainer, "loggers", None) or ():
            try:
                logger.log_metrics(final, step=trainer.global_step)
                logger.log_hyperparams(tags)
                logger.save()
            except Exception as exc:
                warn_failure(f"logging the final figures to {type(logger).__name__}", exc)


LEARNING_ROLES = ("loss", "eval_loss", "accuracy")
"""The roles of ``GreenAICallback(learning_metrics=...)``: the learning curve's columns."""


def _check_learning_metrics(given: Mapping[str, str] | None) -> dict[str, str]:
    """``learning_metrics`` checked once, at construction.

    Raises:
        ConfigError: An unknown role, or a name that is not a non-empty string.
    """
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(
            f"learning_metrics must map roles to metric names, e.g. {{'accuracy': 'val/top1'}};"
            f" got {type(given).__name__}"
        )
    for role, metric in given.items():
        if role not in LEARNING_ROLES:
            raise ConfigError(
                f"learning_metrics: unknown role {role!r};"
                f" the roles are {', '.join(LEARNING_ROLES)}"
            )
        if not isinstance(metric, str) or not metric.strip():
            raise ConfigError(
                f"learning_metrics[{role!r}] must be the name a metric is logged under"
                f" (self.log(NAME, ...)); got {metric!r}"
            )
    return dict(given)


def _first(metrics: dict[str, Any], names: tuple[str, ...]) -> Any:
    """The first of ``names`` in ``metrics`` (None if none is)."""
    return next((metrics[n] for n in names if n in metrics), None)
