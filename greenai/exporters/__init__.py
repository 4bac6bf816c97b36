"""Live exports of a running job (Prometheus). Each exporter needs an optional extra."""

from greenai.exporters.prometheus import PrometheusExporter

__all__ = ["PrometheusExporter"]
