"""Weights & Biases: a job's figures in a W&B run (online or offline).

Needs the ``wandb`` extra (``pip install 'greenai[wandb]'``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenai.integrations import require
from greenai.integrations.figures import PREFIX, figures, method_tags, write_report_files
from greenai.integrations.names import wandb_artifact_name
from greenai.sink_registry import flag

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement

__all__ = ["WandbSink", "wandb_sink"]


class WandbSink:
    """Write a running job's figures to a W&B run (a :class:`greenai.sinks.Sink`).

    The figures (:func:`greenai.integrations.figures.figures`) are plotted against
    ``greenai/elapsed_s`` (``define_metric``), so they never move the run's own step.
    The end puts the final figures in the run summary, the methods in its config
    (``greenai/method``...), and ``measurement.json`` and ``report.html`` in an artifact
    of type ``greenai-report``.

    Args:
        run: The ``wandb`` run to write to. None: ``wandb.run`` when one is active at
            :meth:`start`, else a new one from ``wandb.init(**init_kwargs)`` that
            :meth:`finish` finishes (``mode="offline"`` works without an account).
        report: Log the report artifact.
        **init_kwargs: Passed to ``wandb.init`` for a new run.

    Raises:
        ConfigError: wandb is not installed (from :meth:`start`).
    """

    def __init__(self, run: Any = None, *, report: bool = True, **init_kwargs: Any) -> None:
        self.run = run
        self.report = report
        self.init_kwargs = init_kwargs
        self._owned = False
        self._job: JobView | None = None

    def start(self, job: JobView) -> None:
        """Find or open the W&B run and declare the figures' x axis."""
        wandb = require("wandb", "wandb")
        self._job = job
        if self.run is None:
            self.run = wandb.run
        if self.run is None:
            self.init_kwargs.setdefault("name", job.name)
            self.run = wandb.init(**self.init_kwargs)
            self._owned = True
        self.run.define_metric(PREFIX + "elapsed_s")
        self.run.define_metric(PREFIX + "*", step_metric=PREFIX + "elapsed_s")

    def update(self, snapshot: Measurement) -> None:
        """Log the live figures."""
        self.run.log(figures(snapshot))

    def finish(self, result: Measurement) -> None:
        """Final figures to the summary, methods to the config, the report as an artifact."""
        try:
            final = figures(result)
            self.run.log(final)
            self.run.summary.update(final)
            self.run.config.update(method_tags(result), allow_val_change=True)
            if self.report:
                self._artifact(result)
        finally:
            if self._owned:
                self.run.finish(exit_code=0 if result.status == "completed" else 1)

    def _artifact(self, result: Measurement) -> None:
        import wandb

        artifact = wandb.Artifact(wandb_artifact_name(result.name), type="greenai-report")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_report_files(folder, self._job, result)
            artifact.add_dir(str(folder))
            self.run.log_artifact(artifact)


def wandb_sink(*, report: str = "true", **init_kwargs: str) -> WandbSink:
    """``--sink wandb[:project=P][,mode=offline][,report=false]...``: a :class:`WandbSink`.

    Keywords other than ``report`` go to ``wandb.init`` (as strings).

    Raises:
        ConfigError: ``report`` is not true or false.
    """
    return WandbSink(report=flag(report, "report"), **init_kwargs)
