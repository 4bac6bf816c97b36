"""MLflow: a job's figures as metrics of an MLflow run, and its report as artifacts.

Needs the ``mlflow`` extra (``pip install 'greenai[mlflow]'``): full ``mlflow``, since MLflow 3's
default store (``sqlite:///mlflow.db``) needs SQLAlchemy and alembic, which ``mlflow-skinny``
lacks. A ``file:`` store given to the sink is opened too: MLflow 3 refuses one unless
``MLFLOW_ALLOW_FILE_STORE`` is set, so the sink sets it when it is not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError
from greenai.integrations import require
from greenai.integrations.figures import figures, method_tags, write_report_files
from greenai.integrations.names import mlflow_run_name
from greenai.sink_registry import flag

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement

__all__ = ["MLflowSink", "mlflow_sink"]


class MLflowSink:
    """Write a running job's figures to MLflow (a :class:`greenai.sinks.Sink`).

    Live figures (:func:`greenai.integrations.figures.figures`) are logged at every
    snapshot with the job's step count as MLflow's ``step``; the final figures at the end,
    with tags saying how each was obtained (``greenai/method``), and two artifacts under
    ``greenai/``: ``measurement.json`` (:meth:`Measurement.to_dict`) and ``report.html``.

    Args:
        run_id: The MLflow run to write to. None: the active run (``mlflow.start_run()``)
            when there is one at :meth:`start`, else a new run that :meth:`finish` ends.
        experiment: Experiment name for a new run (created if missing).
        tracking_uri: Where MLflow stores runs; None keeps MLflow's own setting.
        report: Attach the HTML report and JSON record as artifacts.

    Raises:
        ConfigError: mlflow is not installed (from :meth:`start`).

    Example:
        >>> import greenai, mlflow
        >>> from greenai.integrations.mlflow import MLflowSink
        >>> with mlflow.start_run():  # doctest: +SKIP
        ...     with greenai.track("train", sinks=[MLflowSink()]) as job:
        ...         job.step()
    """

    def __init__(
        self,
        run_id: str | None = None,
        *,
        experiment: str | None = None,
        tracking_uri: str | None = None,
        report: bool = True,
    ) -> None:
        self.run_id = run_id
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.report = report
        self._client: Any = None
        self._owned = False
        self._job: JobView | None = None

    def bind(self, job: JobView) -> None:
        """On the job's own thread: take MLflow's active run there (it is per thread)."""
        mlflow = sys.modules.get("mlflow")  # not imported: no run can be active
        if self.run_id is None and mlflow is not None:
            active = mlflow.active_run()
            if active is not None:
                self.run_id = active.info.run_id

    def start(self, job: JobView) -> None:
        """Find or open the MLflow run (on the sink's own thread)."""
        mlflow = require("mlflow", "mlflow")
        tracking = require("mlflow.tracking", "mlflow")
        self._job = job
        if self.tracking_uri is not None:
            mlflow.set_tracking_uri(self.tracking_uri)
        uri = str(self.tracking_uri or mlflow.get_tracking_uri())
        if _is_file_store(uri):  # the user chose a file store: MLflow 3 wants this opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self._client = tracking.MlflowClient(tracking_uri=self.tracking_uri)
            self._open_run(mlflow, job)
        except ImportError as exc:  # mlflow-skinny: no SQLAlchemy for sqlite:///mlflow.db
            raise ConfigError(
                f"MLflow cannot open its store {uri!r} ({exc}): pip install 'greenai[mlflow]'"
                " (full mlflow; mlflow-skinny lacks the SQL store)"
            ) from exc

    def _open_run(self, mlflow: Any, job: JobView) -> None:
        if self.run_id is None:
            active = mlflow.active_run()
            if active is not None:
                self.run_id = active.info.run_id
            else:
                experiment_id = None
                if self.experiment is not None:
                    found = self._client.get_experiment_by_name(self.experiment)
                    experiment_id = (
                        found.experiment_id
                        if found is not None
                        else self._client.create_experiment(self.experiment)
                    )
                run = self._client.create_run(
                    experiment_id or "0",
                    run_name=mlflow_run_name(job.name),
                    tags={"greenai/job": job.name[:5000]},
                )
                self.run_id = run.info.run_id
                self._owned = True

    def _log(self, m: Measurement, flops: float | None = None) -> None:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now_ms, m.steps.count)
            for key, value in figures(m, flops=flops).items()
        ]
        self._client.log_batch(self.run_id, metrics=metrics)

    def update(self, snapshot: Measurement) -> None:
        """Log the live figures."""
        self._log(snapshot)

    def finish(self, result: Measurement) -> None:
        """Log the final figures, the method tags and the report; end a run it opened."""
        try:
            self._log(result)
            for key, value in method_tags(result).items():
                self._client.set_tag(self.run_id, key, value[:5000])
            if self.report:
                self._artifacts(result)
        finally:
            if self._owned:
                status = "FINISHED" if result.status == "completed" else "FAILED"
                self._client.set_terminated(self.run_id, status=status)

    def _artifacts(self, result: Measurement) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_report_files(folder, self._job, result)
            self._client.log_artifacts(self.run_id, str(folder), artifact_path="greenai")


def _is_file_store(uri: str) -> bool:
    """Whether MLflow reads ``uri`` as its file store (``file:...`` or a plain path)."""
    return uri.startswith("file:") or (
        "://" not in uri
        and not uri.startswith(("sqlite:", "databricks", "postgresql", "mysql", "mssql", "http"))
    )


def mlflow_sink(
    experiment: str | None = None,
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    report: str = "true",
) -> MLflowSink:
    """``--sink mlflow[:EXPERIMENT][,tracking_uri=URI][,run_id=ID][,report=false]``.

    Raises:
        ConfigError: ``report`` is not true or false.
    """
    return MLflowSink(
        run_id,
        experiment=experiment,
        tracking_uri=tracking_uri,
        report=flag(report, "report"),
    )
