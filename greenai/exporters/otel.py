"""Send a tracked job's power and energy per device to an OpenTelemetry collector (OTLP/HTTP).

Needs the ``otel`` extra (``pip install 'greenai[otel]'``: opentelemetry-sdk and
opentelemetry-exporter-otlp-proto-http). :class:`OTelSink` is a :class:`~greenai.sinks.Sink`:
``greenai.track(..., sinks=[OTelSink("http://collector:4318")])``, or
``greenai run --otlp http://collector:4318 -- cmd``.

What it sends, in OpenTelemetry's hardware semantic conventions (``hw.*``, status
"development": https://opentelemetry.io/docs/specs/semconv/hardware/common/):

* ``hw.energy`` (counter, ``J``): each device's energy since the job started;
* ``hw.power`` (gauge, ``W``): each device's latest power reading;
* ``greenai.energy.uncertainty`` (gauge, ``J``): the ± (about 95%) of ``hw.energy``, which
  the conventions have no attribute for.

Each point has ``hw.id`` (the device's name, unique on its host), ``hw.type`` (``gpu``,
``cpu``, ``memory``; ``other`` for the rest), ``hw.name``, ``greenai.method`` (``counter``,
``power`` or ``model``: a model's figure is an estimate), ``greenai.scope``, the job's
``greenai.job.name`` and ``greenai.run.id``, and its tags as ``greenai.tag.<name>``. The
resource says where: ``service.name`` ``greenai``, ``host.name``, and the cluster's identity
where there is one (SLURM job/step, Kubernetes pod/namespace:
:mod:`greenai.distributed.cluster`).

Where a tracer is active when the job starts (a recording span is current), the job's
energy, its ±, method and power are set on that span as ``greenai.*`` attributes at the end.

Exports run on the OpenTelemetry SDK's own reader thread every ``export_interval_s``, so a
slow or unreachable collector never holds up the training loop; each export gives up after
``timeout_s``, and the job's end waits for the last export at most about twice that. Failed
exports are counted and end up as one note on the job's result.
"""

from __future__ import annotations

import importlib
import math
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from greenai.errors import ConfigError, GreenAIError
from greenai.sink_registry import number

if TYPE_CHECKING:
    from collections.abc import Iterable

    from greenai.jobview import JobView
    from greenai.measurement import Measurement

__all__ = ["INSTALL_HINT", "OTelExportError", "OTelSink", "hw_type", "metrics_url", "otlp_sink"]

INSTALL_HINT = (
    "pip install 'greenai[otel]' (or: pip install opentelemetry-sdk"
    " opentelemetry-exporter-otlp-proto-http)"
)

METRICS_PATH = "/v1/metrics"
"""The OTLP/HTTP path for metrics, added to an endpoint given without a path."""

_HW_TYPES = {"gpu": "gpu", "cpu": "cpu", "dram": "memory"}


class OTelExportError(GreenAIError, ConnectionError):
    """Some exports to the collector failed; the job and its figures are unaffected."""


def hw_type(kind: str) -> str:
    """The semantic conventions' ``hw.type`` for a greenai device kind (``dram`` → ``memory``)."""
    return _HW_TYPES.get(kind, "other")


def metrics_url(endpoint: str) -> str:
    """The full OTLP/HTTP metrics URL for ``endpoint``.

    ``http://collector:4318`` (no path) becomes ``http://collector:4318/v1/metrics``; a URL
    with a path is kept as given (a collector behind a proxy may serve another path).

    Raises:
        ConfigError: Not an ``http``/``https`` URL with a host, or a bad port.
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigError(
            f"the OTLP endpoint must be a URL such as http://localhost:4318; got {endpoint!r}"
        )
    text = endpoint.strip()
    try:  # urlsplit itself refuses some garbage ("http://[::1": an unclosed IPv6 host)
        parts = urlsplit(text)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:
        scheme, host, port = "", None, -1
    if scheme not in ("http", "https") or not host or port == -1:
        raise ConfigError(
            f"cannot use {endpoint!r} as an OTLP/HTTP endpoint: give http(s)://HOST[:PORT]"
            " (an OpenTelemetry collector's OTLP/HTTP receiver listens on port 4318)"
        )
    if parts.path in ("", "/"):
        return text.rstrip("/") + METRICS_PATH
    return text


def _otel() -> tuple[Any, Any, Any, Any]:
    """The SDK modules this sink uses: metrics, metrics.export, resources, the OTLP exporter."""
    try:
        metrics = importlib.import_module("opentelemetry.sdk.metrics")
        export = importlib.import_module("opentelemetry.sdk.metrics.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.metric_exporter")
    except ImportError as exc:
        raise ConfigError(
            f"the OpenTelemetry sink needs the OTLP exporter: {INSTALL_HINT}"
        ) from exc
    return metrics, export, resources, otlp


class OTelSink:
    """Export a running job's ``hw.energy`` and ``hw.power`` per device over OTLP/HTTP.

    Example:
        >>> import greenai
        >>> from greenai.exporters.otel import OTelSink
        >>> with greenai.track("train", sinks=[OTelSink("http://localhost:4318")]):
        ...     train()  # doctest: +SKIP

    Args:
        endpoint: The collector's OTLP/HTTP address (``http://host:4318``; ``/v1/metrics``
            is added when no path is given).
        timeout_s: Longest an export may take, in seconds, retries included.
        export_interval_s: Seconds between exports while the job runs (one more at its end).
        headers: HTTP headers for every export (an authentication token...).
        resource: Extra resource attributes (``deployment.environment``...).

    Raises:
        ConfigError: A malformed endpoint, a non-positive time, or the OpenTelemetry
            packages missing.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 5.0,
        export_interval_s: float = 10.0,
        headers: dict[str, str] | None = None,
        resource: dict[str, str] | None = None,
    ) -> None:
        self.url = metrics_url(endpoint)
        _otel()  # a missing extra fails here, with the install hint, before the job starts
        for name, value in (("timeout_s", timeout_s), ("export_interval_s", export_interval_s)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
        self.timeout_s = float(timeout_s)
        self.export_interval_s = float(export_interval_s)
        self.headers = dict(headers or {})
        self.resource = dict(resource or {})
        self._lock = threading.Lock()
        self._latest: Measurement | None = None
        self._provider: Any = None
        self._span: Any = None
        self._job_attrs: dict[str, str] = {}
        self.exports = 0
        self.failures = 0
        self.last_error: str | None = None

    # --- the Sink protocol ---------------------------------------------------------------
    def bind(self, job: JobView) -> None:
        """On the job's own thread: take the span current there (the context is per thread)."""
        self._span = _recording_span()

    def start(self, job: JobView) -> None:
        """Set up the meter provider, its exporter and reader thread (on the sink's thread)."""
        metrics, export, resources, otlp = _otel()
        self._job_attrs = {"greenai.job.name": job.name}
        if job.run_id is not None:
            self._job_attrs["greenai.run.id"] = job.run_id
        tags = getattr(job, "tags", None) or {}  # team, project, model, site... (fleet roll-ups)
        self._job_attrs.update({f"greenai.tag.{k}": str(v) for k, v in dict(tags).items()})
        attrs: dict[str, str] = {"service.name": "greenai", "host.name": socket.gethostname()}
        attrs.update(_cluster_resource(job.meta))
        attrs.update(self.resource)
        sink = self

        class _Exporter(otlp.OTLPMetricExporter):  # type: ignore[misc,name-defined]
            """The real OTLP/HTTP exporter, counting what failed for the job's note."""

            def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kw: Any) -> Any:
                try:
                    result = super().export(metrics_data, timeout_millis=timeout_millis, **kw)
                except Exception as exc:  # the exporter logs most failures; count them all
                    sink._count(False, repr(exc))
                    raise
                ok = result == export.MetricExportResult.SUCCESS
                sink._count(ok, None if ok else "the collector refused or did not answer")
                return result

        exporter = _Exporter(endpoint=self.url, timeout=self.timeout_s, headers=self.headers)
        reader = export.PeriodicExportingMetricReader(
            exporter,
            export_interval_millis=self.export_interval_s * 1000,
            export_timeout_millis=self.timeout_s * 1000,
        )
        provider = metrics.MeterProvider(
            metric_readers=[reader], resource=resources.Resource.create(attrs)
        )
        meter = provider.get_meter("greenai")
        meter.create_observable_counter(
            "hw.energy", [self._energy], unit="J", description="Energy consumed by the component"
        )
        meter.create_observable_gauge(
            "hw.power",
            [self._power],
            unit="W",
            description="Instantaneous power consumed by the component",
        )
        meter.create_observable_gauge(
            "greenai.energy.uncertainty",
            [self._uncertainty],
            unit="J",
            description="About 95% uncertainty of hw.energy",
        )
        self._provider = provider

    def update(self, snapshot: Measurement) -> None:
        """Keep the snapshot: the reader thread reads it at its next export."""
        with self._lock:
            self._latest = snapshot

    def finish(self, result: Measurement) -> None:
        """Export the final figures, set them on the active span, and shut down.

        Raises:
            OTelExportError: Some exports failed (the tracker keeps it as a note).
        """
        with self._lock:
            self._latest = result
        self._on_span(result)
        provider, self._provider = self._provider, None
        if provider is not None:
            # The reader's last collection and export, bounded by the exporter's timeout.
            provider.shutdown(timeout_millis=2 * self.timeout_s * 1000)
        if self.failures:
            raise OTelExportError(
                f"{self.failures} of {self.exports} exports to {self.url} failed"
                f" ({self.last_error}); the job's figures are unaffected and stored as usual"
            )

    # --- what the reader thread calls ----------------------------------------------------
    def _count(self, ok: bool, error: str | None) -> None:
        with self._lock:
            self.exports += 1
            if not ok:
                self.failures += 1
                self.last_error = error

    def _points(self, value_of: str) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            m = self._latest
        if m is None:
            return []
        out = []
        for d in m.devices:
            value = getattr(d, value_of)
            if value is None or not math.isfinite(value):
                continue  # no reading yet: no point rather than a false 0
            attrs = {
                "hw.id": d.name,
                "hw.type": hw_type(d.kind),
                "hw.name": d.name,
                "greenai.method": d.method,
                "greenai.scope": d.scope,
                **self._job_attrs,
            }
            out.append(Observation(max(float(value), 0.0), attrs))
        return out

    def _energy(self, options: Any) -> Iterable[Any]:
        return self._points("energy_j")

    def _power(self, options: Any) -> Iterable[Any]:
        return self._points("last_power_w")

    def _uncertainty(self, options: Any) -> Iterable[Any]:
        return self._points("uncertainty_j")

    def _on_span(self, result: Measurement) -> None:
        span, self._span = self._span, None
        if span is None or not span.is_recording():
            return
        attrs: dict[str, Any] = {
            "greenai.job.name": result.name,
            "greenai.duration_s": result.duration_s,
            "greenai.energy.method": "+".join(result.methods) or "none",
        }
        if result.energy_j is not None:
            attrs["greenai.energy_j"] = result.energy_j
            attrs["greenai.energy.uncertainty_j"] = result.uncertainty_j or 0.0
        if result.avg_power_w is not None:
            attrs["greenai.avg_power_w"] = result.avg_power_w
        span.set_attributes(attrs)


def _recording_span() -> Any:
    """The current span when a tracer records it, else None (no OpenTelemetry API: None)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    span = trace.get_current_span()
    return span if span.is_recording() else None


def _cluster_resource(meta: dict[str, Any]) -> dict[str, str]:
    """Resource attributes from the run's cluster identity (``meta["cluster"]``)."""
    cluster = meta.get("cluster")
    if not isinstance(cluster, dict):
        return {}
    names = {
        "k8s_namespace": "k8s.namespace.name",
        "k8s_pod": "k8s.pod.name",
        "k8s_pod_uid": "k8s.pod.uid",
        "k8s_node": "k8s.node.name",
        "container_id": "container.id",
        "slurm_job_id": "slurm.job.id",
        "slurm_step_id": "slurm.step.id",
        "slurm_cluster": "slurm.cluster.name",
    }
    return {names[k]: str(v) for k, v in cluster.items() if k in names and v is not None}


def otlp_sink(endpoint: str, *, timeout_s: str = "5", export_interval_s: str = "10") -> OTelSink:
    """``--sink otlp:ENDPOINT[,timeout_s=S][,export_interval_s=S]``: an :class:`OTelSink`.

    Raises:
        ConfigError: A malformed endpoint, a time that is not a number of seconds > 0, or
            the OpenTelemetry packages missing.
    """
    return OTelSink(
        endpoint,
        timeout_s=number(timeout_s, "timeout_s"),
        export_interval_s=number(export_interval_s, "export_interval_s"),
    )
