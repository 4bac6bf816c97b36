"""Hugging Face ``Trainer``: energy of training in the Trainer's own logs.

Needs the ``transformers`` extra (``pip install 'greenai[transformers]'``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

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

__all__ = ["FLOP_SOURCES", "GreenAICallback"]

_transformers = require("transformers", "transformers")

FlopSource = Literal["count", "trainer", "none"]
FLOP_SOURCES: dict[str, str] = {
    "count": "counted by greenai.flops on the model, once per input shape (forward+backward)",
    "trainer": "the Trainer's own estimate (state.total_flos: 6 x parameters x tokens)",
    "none": "not counted",
}
"""What each ``flops=`` choice means; the callback's :attr:`GreenAICallback.flops_source`."""


class GreenAICallback(_transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Track a ``Trainer`` run: energy per step, per phase, and in every log.

    From ``on_train_begin`` to ``on_train_end`` a :class:`greenai.Tracker` measures the
    run: one ``step()`` per optimizer step with the samples and tokens its batches held
    (the batch size and ``input_ids`` positions of the inputs the model is called with,
    padding included; the Trainer's own count when ``include_num_input_tokens_seen`` is
    on), phases ``train`` and ``evaluation``,
    and FLOPs (``flops=``). At each logging step the energy figures
    (:func:`greenai.integrations.figures.figures`: ``greenai/energy_kwh``,
    ``greenai/avg_power_w``, ``greenai/energy_j_per_step``, ``greenai/kwh_per_tflop``,
    ``greenai/co2e_kg``...) are added to the Trainer's logs and to ``state.log_history``.

    Callbacks the ``Trainer`` runs before this one (the ``report_to`` integrations, when
    the callback is passed as ``callbacks=[...]``) see a log before the figures are added:
    :meth:`add_to` puts the callback first so they receive the figures too.

    In a distributed run (accelerate, torchrun) every rank measures its own devices and
    rank 0 records the job (:doc:`distributed`); figures in the logs are each rank's own
    so far, the final :attr:`result` on rank 0 is the whole job's.

    Args:
        name: The job's name.
        flops: ``"count"`` (default): count the model's FLOPs once per input shape;
            ``"trainer"``: use the Trainer's ``total_flos`` estimate; ``"none"``. Which
            was used is :attr:`flops_source`, and stored in the run's meta.
        store: Record the run in a run store (as :class:`greenai.Tracker`).
        training_type: ``"pre-training"`` or ``"fine-tuning"``, kept in the run's meta
            for ``greenai report --format model-card``.
        **options: Further :class:`greenai.Tracker` options (``devices``, ``country``,
            ``sinks``...).

    Attributes:
        job: The tracker, while and after training runs.
        result: The final :class:`~greenai.Measurement` after ``on_train_end``.

    Raises:
        ConfigError: An unknown ``flops`` choice or tracker option.
    """

    def __init__(
        self,
        name: str = "train",
        *,
        flops: FlopSource = "count",
        store: Any = None,
        training_type: str | None = None,
        **options: Any,
    ) -> None:
        if flops not in FLOP_SOURCES:
            raise ConfigError(f"flops must be one of {', '.join(FLOP_SOURCES)}; got {flops!r}")
        from greenai.tracker import Tracker

        self.name = name
        self.flops_source: str = flops
        self._training_type = training_type
        self._options = {"store": store, **options}
        Tracker(name, **self._options)  # bad options fail here, not when training starts
        self.job: Tracker | None = None
        self.result: Measurement | None = None
        self._current = CurrentPhase()
        self._hook: Any = None
        self._flop_counter = FlopCounter()
        self._counting = False
        self._samples = 0
        self._tokens = 0
        self._counted_tokens = False
        self._tokens_seen = 0
        self._state: Any = None  # the TrainerState of the train() being measured
        self._last_global_step: int | None = None
        self._last_logs: Any = None
        self._learning = LearningLog()
        self._last_loss: Any = None

    @classmethod
    def add_to(cls, trainer: Any, **kwargs: Any) -> GreenAICallback:
        """Make a callback and put it first in ``trainer``'s callbacks; return it.

        First, so the ``report_to`` integrations log the energy figures with the rest.
        """
        callback = cls(**kwargs)
        trainer.callback_handler.callbacks.insert(0, callback)
        return callback

    # --- lifecycle ---------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the tracker, the ``train`` phase, and watch the model's inputs.

        A tracker still running from a ``train()`` that raised is stopped first, as
        ``failed`` (the Trainer calls no callback when training raises).
        """
        from greenai.tracker import Tracker

        if self.job is not None and self.job.running and self._state is state:
            warn_registered_twice(self)  # the same object twice in the Trainer's callbacks
            return
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.job is not None and self.job.running:
            self._current.exit()
            self.result = self.job.stop(status="failed")
        self._samples = self._tokens = 0
        self._flop_counter = FlopCounter()
        self._learning, self._last_loss = LearningLog(), None

        meta = dict(self._options.get("meta") or {})
        meta["flops_source"] = FLOP_SOURCES[self.flops_source]
        meta["integration"] = "transformers.Trainer"
        if self._training_type is not None:
            meta["training_type"] = self._training_type
        self.job = Tracker(self.name, **{**self._options, "meta": meta})
        self.job.start()
        self._state = state
        self._last_global_step = None
        self._tokens_seen = getattr(state, "num_input_tokens_seen", 0)
        self._current.enter(self.job, "train")
        model = kwargs.get("model")
        if model is not None:
            self._hook = model.register_forward_pre_hook(self._before_forward, with_kwargs=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """One optimizer step: mark it with the samples and tokens since the last."""
        if self.job is None or not self.job.running:
            return
        if state.global_step == self._last_global_step:  # registered twice: counted already
            return
        self._last_global_step = state.global_step
        tokens = self._tokens if self._counted_tokens else None
        seen = getattr(state, "num_input_tokens_seen", 0)
        if getattr(args, "include_num_input_tokens_seen", "no") not in ("no", False, None):
            tokens, self._tokens_seen = seen - self._tokens_seen, seen  # the Trainer's count
        self.job.step(samples=self._samples or None, tokens=tokens)
        self._samples = self._tokens = 0

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Evaluation ended: note its loss and accuracy; back to the ``train`` phase."""
        metrics = kwargs.get("metrics") or {}
        self._note(state, eval_loss=metrics.get("eval_loss"), accuracy=metrics.get("eval_accuracy"))
        if self.job is not None and self.job.running and self._current.name == "evaluation":
            self._current.enter(self.job, "train")

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Note the epoch's last logged training loss (for the run's report)."""
        self._note(state)

    def _note(self, state: Any, **figures: Any) -> None:
        """A learning row at this step: the last training loss and ``figures``."""
        if self.job is None or not self.job.running:
            return
        try:
            self._learning.note(self.job.steps, state.epoch, loss=self._last_loss, **figures)
        except Exception as exc:  # greenai's notes must never stop training
            warn_failure("noting the loss and accuracy", exc)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Add the energy figures so far to ``logs`` and to the last ``log_history`` entry."""
        if self.job is None or not self.job.running or logs is None or logs is self._last_logs:
            return
        self._last_logs = logs
        if "loss" in logs:  # the training loss, noted with the epoch's learning row
            self._last_loss = logs["loss"]
        try:
            extra = figures(self.job.snapshot(), flops=self._trainer_flops(state))
        except Exception as exc:  # greenai's figures must never stop training
            warn_failure("computing the live energy figures", exc)
            return
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop the tracker; the Measurement is :attr:`result`."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.job is None or not self.job.running:
            return
        try:
            self._current.exit()
            if self.flops_source == "trainer" and state.total_flos:
                self.job.add_flops(float(state.total_flos))
            self._learning.publish(self.job)  # into the stored run's meta
        except Exception as exc:
            warn_failure("closing the job's phases and FLOPs", exc)
        self.result = self.job.stop()
        try:
            if state.log_history is not None:
                final = {**figures(self.result), **method_tags(self.result)}
                state.log_history.append({**final, "step": state.global_step})
        except Exception as exc:  # a completed train() must not fail on greenai's figures
            warn_failure("adding the final figures to the log history", exc)

    # --- helpers -----------------------------------------------------------------------
    def _trainer_flops(self, state: Any) -> float | None:
        if self.flops_source != "trainer":
            return None
        return float(state.total_flos) if state.total_flos else None

    def _before_forward(self, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Count the batch's samples and tokens; the first eval forward opens ``evaluation``."""
        if self._counting or self.job is None or not self.job.running:
            return
        if not model.training and self._current.name == "train":
            self._current.enter(self.job, "evaluation", in_steps=False)
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = getattr(ids, "shape", None)
        if model.training and shape:
            self._samples += int(shape[0])
            if (
                ids is not None and len(shape) >= 2
            ):  # positions, padding included: reading a mask would sync
                self._tokens += int(ids.numel())
                self._counted_tokens = True
        if self.flops_source == "count":
            self._count(model, args, kwargs, backward=model.training)

    def _count(
        self, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, backward: bool
    ) -> None:
        assert self.job is not None
        self._counting = True
        try:
            exc = self._flop_counter(self.job, model, args, kwargs, backward=backward)
        finally:
            self._counting = False
        if exc is not None:  # a FLOP counter failure must not stop training
            warnings.warn(
                f"greenai: counting the model's FLOPs failed ({exc!r}); using the Trainer's"
                " estimate instead",
                MeasurementWarning,
                stacklevel=2,
            )
            self.flops_source = "trainer"
