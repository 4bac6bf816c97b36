"""TensorBoard: a job's figures as scalars, through ``torch.utils.tensorboard``.

Needs the ``tensorboard`` extra (``pip install 'greenai[tensorboard]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenai.integrations import require
from greenai.integrations.figures import figures, method_tags

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement

__all__ = ["TensorBoardSink", "tensorboard_sink"]


class TensorBoardSink:
    """Write a running job's figures as TensorBoard scalars (a :class:`greenai.sinks.Sink`).

    Each snapshot adds one point per figure (:func:`greenai.integrations.figures.figures`)
    at the job's step count; the end adds the final figures and a text entry
    ``greenai/method`` saying how each energy figure was obtained.

    Args:
        log_dir: Folder for the event files (TensorBoard's default ``runs/...`` when None).
            Ignored when ``writer`` is given.
        writer: A ``torch.utils.tensorboard.SummaryWriter`` to share with the training code;
            the sink then flushes it but does not close it.

    Raises:
        ConfigError: tensorboard is not installed (from :meth:`start`).
    """

    def __init__(self, log_dir: str | None = None, *, writer: Any = None) -> None:
        self.log_dir = log_dir
        self.writer = writer
        self._owned = writer is None

    def start(self, job: JobView) -> None:
        """Open the writer."""
        if self.writer is None:
            require("tensorboard", "tensorboard")
            summary = require("torch.utils.tensorboard", "tensorboard")
            self.writer = summary.SummaryWriter(log_dir=self.log_dir)

    def _log(self, m: Measurement) -> None:
        for key, value in figures(m).items():
            self.writer.add_scalar(key, value, global_step=m.steps.count)

    def update(self, snapshot: Measurement) -> None:
        """Add the live figures."""
        self._log(snapshot)
        self.writer.flush()

    def finish(self, result: Measurement) -> None:
        """Add the final figures and how they were obtained; close a writer it opened."""
        try:
            self._log(result)
            lines = [f"{k}: {v}" for k, v in method_tags(result).items()]
            self.writer.add_text("greenai/method", "  \n".join(lines), result.steps.count)
            self.writer.flush()
        finally:
            if self._owned:
                self.writer.close()


def tensorboard_sink(log_dir: str | None = None) -> TensorBoardSink:
    """``--sink tensorboard[:LOG_DIR]``: a :class:`TensorBoardSink` writing to ``LOG_DIR``."""
    return TensorBoardSink(log_dir)
