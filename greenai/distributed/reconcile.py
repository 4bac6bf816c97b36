"""Compare a run's energy with the cluster's own figure for the same job (``greenai reconcile``).

Sources of the cluster's figure:

* ``slurm``: ``sacct``'s ``ConsumedEnergyRaw`` (J) for the run's SLURM job, or its step
  when the run recorded one. SLURM fills it only where an energy plugin is configured
  (``AcctGatherEnergyType``: RAPL, IPMI, NVML...) and accounting is stored (slurmdbd);
  elsewhere there is no figure, and reconcile says so.
* ``dcgm`` / ``kepler``: NVIDIA's DCGM exporter (``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, mJ)
  or Kepler (``kepler_container_joules_total``, J) expose counters since the GPU's driver or
  the node booted; the job's share is the counters' increase over the job, which the
  Prometheus that scrapes them answers (``--prometheus URL``: its ``/api/v1/query``), for the
  run's Kubernetes pod and namespace.

Neither SLURM nor the exporters state an uncertainty. Both read energy counters every
``interval_s`` (SLURM's ``AcctGatherNodeFreq``, Prometheus' scrape interval), so the job's
edges fall up to one interval from a reading: the ± given for the cluster's figure is an
estimate, two intervals at the job's mean power, and is labelled so. The gap's ± combines
both figures' as independent errors (:func:`greenai.windows.difference_with_uncertainty`).
The figures may also cover different hardware (SLURM's RAPL plugin: CPU packages and DRAM;
DCGM: GPUs only; greenai: the devices it measured): the report names what each covers.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenai.errors import ConfigError, GreenAIError
from greenai.windows import difference_with_uncertainty

__all__ = [
    "DEFAULT_INTERVAL_S",
    "ClusterFigure",
    "MetricsEndpointError",
    "Reconciliation",
    "prometheus_energy",
    "reconcile",
    "sacct_energy",
]

DEFAULT_INTERVAL_S = 30.0
"""SLURM's default ``AcctGatherNodeFreq`` is 0 (sampled at task end only); 30 s is a common
setting and Prometheus' default scrape interval is 60 s: the default is a middle guess, said
as such. Give the real one with ``interval_s`` (``--interval``)."""

QUERIES = {
    "dcgm": (
        'sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{pod="{pod}",namespace="{ns}"}}'
        "[{seconds}s]))",
        1e-3,  # mJ
    ),
    "kepler": (
        'sum(increase(kepler_container_joules_total{{pod_name="{pod}",'
        'container_namespace="{ns}"}}[{seconds}s]))',
        1.0,
    ),
}
"""Per source: the PromQL for a pod's energy over the job, and the factor to joules."""


class MetricsEndpointError(GreenAIError, ValueError):
    """A metrics endpoint answered something that is not a Prometheus query result."""


@dataclass(frozen=True)
class ClusterFigure:
    """The cluster's figure for a job.

    Attributes:
        source: ``slurm``, ``dcgm`` or ``kepler``.
        energy_j: Energy in joules.
        uncertainty_j: About 95% ± in joules, an estimate (see the module docs).
        how: How it was obtained, in words.
    """

    source: str
    energy_j: float
    uncertainty_j: float
    how: str


@dataclass(frozen=True)
class Reconciliation:
    """A run's figure beside the cluster's, and the gap between them.

    Attributes:
        run_id: The stored run.
        energy_j, uncertainty_j: greenai's figure and ± (J); None when it has none.
        method: How greenai's figure was obtained (``counter``, ``power``, ``model``...).
        cluster: The cluster's figure; None when there is none (``notes`` say why).
        gap_j, gap_uncertainty_j: ``cluster − greenai`` and its ± (J); None without both.
        notes: Why a figure is missing, and what each covers.
    """

    run_id: str
    energy_j: float | None
    uncertainty_j: float | None
    method: str
    cluster: ClusterFigure | None
    gap_j: float | None = None
    gap_uncertainty_j: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def within_uncertainty(self) -> bool | None:
        """Whether the gap is within its ± (None without a gap)."""
        if self.gap_j is None or self.gap_uncertainty_j is None:
            return None
        return abs(self.gap_j) <= self.gap_uncertainty_j

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "run_id": self.run_id,
            "energy_j": self.energy_j,
            "uncertainty_j": self.uncertainty_j,
            "method": self.method,
            "cluster": None if self.cluster is None else self.cluster.__dict__,
            "gap_j": self.gap_j,
            "gap_uncertainty_j": self.gap_uncertainty_j,
            "within_uncertainty": self.within_uncertainty,
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The report, as lines of text."""
        out = [f"run {self.run_id}"]
        if self.energy_j is None:
            out.append("  greenai: no energy figure (time only)")
        else:
            out.append(
                f"  greenai: {self.energy_j:.6g} J ± {self.uncertainty_j or 0.0:.4g} J"
                f" ({self.method})"
            )
        if self.cluster is not None:
            c = self.cluster
            out.append(f"  {c.source}: {c.energy_j:.6g} J ± {c.uncertainty_j:.4g} J ({c.how})")
        if self.gap_j is not None and self.gap_uncertainty_j is not None:
            rel = f" ({self.gap_j / self.energy_j:+.1%})" if self.energy_j else ""
            verdict = "within" if self.within_uncertainty else "beyond"
            out.append(
                f"  gap ({self.cluster.source if self.cluster else 'cluster'} − greenai):"
                f" {self.gap_j:+.6g} J ± {self.gap_uncertainty_j:.4g} J{rel}:"
                f" {verdict} the figures' ±"
            )
        out.extend(f"  note: {n}" for n in self.notes)
        return out


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


def _edge_uncertainty_j(energy_j: float, duration_s: float, interval_s: float) -> float:
    """Two counter-reading intervals at the job's mean power (J): the edges' worst case."""
    if duration_s <= 0:
        return abs(energy_j)
    return 2.0 * interval_s * abs(energy_j) / duration_s


def sacct_energy(
    job_id: str,
    step_id: str | None = None,
    *,
    interval_s: float | None = None,
    sacct: str = "sacct",
    run: Runner = _run,
) -> tuple[ClusterFigure | None, list[str]]:
    """SLURM's ``ConsumedEnergyRaw`` for a job (or one step), with notes where there is none.

    Args:
        job_id: The SLURM job id.
        step_id: The step (``0``, ``batch``...); None for the whole job.
        interval_s: SLURM's energy sampling interval (``AcctGatherNodeFreq``); None: read
            from ``scontrol show config``, else :data:`DEFAULT_INTERVAL_S`.
        sacct: The sacct program.
        run: Runs a command and returns its completed process (injectable for tests).

    Returns:
        The figure (None when SLURM has none) and notes saying why, or how it was read.
    """
    if shutil.which(sacct) is None and "/" not in sacct:
        return None, [f"no SLURM figure: {sacct!r} is not on PATH (run reconcile on a node of"
                      " the cluster, where SLURM's client commands are installed)"]  # fmt: skip
    target = f"{job_id}.{step_id}" if step_id is not None else str(job_id)
    try:
        done = run(
            [sacct, "-j", target, "--noheader", "--parsable2",
             "--format=JobID,ConsumedEnergyRaw,ElapsedRaw"]
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return None, [f"no SLURM figure: sacct failed to run ({exc})"]
    if done.returncode != 0:
        why = (done.stderr or done.stdout or "").strip().splitlines()
        return None, [
            f"no SLURM figure: sacct exited {done.returncode}"
            f" ({why[0] if why else 'no message'}); SLURM keeps energy only with an accounting"
            " store (slurmdbd) and an energy plugin (AcctGatherEnergyType)"
        ]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    row = next((r for r in rows if r and r[0] == target), None)
    if row is None or len(row) < 3 or not row[1].strip():
        return None, [
            f"no SLURM figure: sacct has no energy for {target} (is AcctGatherEnergyType"
            " set, and has the job ended?)"
        ]
    try:
        energy_j, elapsed_s = float(row[1]), float(row[2] or 0)
    except ValueError:
        return None, [f"no SLURM figure: sacct gave {row[1]!r} as ConsumedEnergyRaw"]
    if not math.isfinite(energy_j) or energy_j <= 0:
        return None, [
            f"no SLURM figure: sacct records {row[1]} J for {target} (no energy plugin"
            " sampled it: AcctGatherEnergyType)"
        ]
    notes = []
    if interval_s is None:
        interval_s = _slurm_interval_s(run)
        if interval_s is None:
            interval_s = DEFAULT_INTERVAL_S
            notes.append(
                f"SLURM's sampling interval is unknown: its ± assumes {interval_s:g} s"
                " (give --interval)"
            )
    figure = ClusterFigure(
        source="slurm",
        energy_j=energy_j,
        uncertainty_j=_edge_uncertainty_j(energy_j, elapsed_s, interval_s),
        how=f"sacct ConsumedEnergyRaw of {target}; ± estimated from {interval_s:g} s sampling",
    )
    return figure, notes


def _slurm_interval_s(run: Runner) -> float | None:
    """``AcctGatherNodeFreq`` from ``scontrol show config`` (None when it cannot be read)."""
    try:
        done = run(["scontrol", "show", "config"])
    except (OSError, subprocess.SubprocessError):
        return None
    for line in done.stdout.splitlines() if done.returncode == 0 else ():
        key, _, value = line.partition("=")
        if key.strip() == "AcctGatherNodeFreq":
            try:
                seconds = float(value.strip().split()[0])
            except (ValueError, IndexError):
                return None
            return seconds if seconds > 0 else None
    return None


def prometheus_energy(
    url: str,
    source: str,
    *,
    pod: str,
    namespace: str,
    end_unix_s: float,
    duration_s: float,
    interval_s: float = DEFAULT_INTERVAL_S,
    query: str | None = None,
    timeout_s: float = 10.0,
) -> ClusterFigure:
    """A pod's energy over a job from a DCGM exporter's or Kepler's counters, via Prometheus.

    Args:
        url: The Prometheus base URL (``http://prometheus:9090``).
        source: ``dcgm`` or ``kepler`` (which metric and unit).
        pod: The run's Kubernetes pod.
        namespace: The pod's namespace.
        end_unix_s: When the job ended (Unix seconds).
        duration_s: How long the job ran (s).
        interval_s: The scrape interval, for the figure's ±.
        query: PromQL to use instead of the source's (its result is read in the source's unit).
        timeout_s: HTTP timeout.

    Raises:
        ConfigError: An unknown source or a URL that is not http(s).
        MetricsEndpointError: The endpoint cannot be reached or answers something that is not
            a Prometheus query result (HTML, garbage, an error status, no series).
    """
    if source not in QUERIES:
        raise ConfigError(f"the metrics source must be one of {sorted(QUERIES)}, got {source!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--prometheus takes http(s)://HOST:PORT, got {url!r}")
    template, to_j = QUERIES[source]
    seconds = max(math.ceil(duration_s), 1)
    promql = query or template.format(pod=pod, ns=namespace, seconds=seconds)
    request = f"{url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql, "time": f"{end_unix_s:.3f}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(1_000_000)
    except (OSError, urllib.error.URLError) as exc:
        raise MetricsEndpointError(f"cannot query {url}: {exc}") from exc
    value = _query_value(body, url)
    energy_j = value * to_j
    return ClusterFigure(
        source=source,
        energy_j=energy_j,
        uncertainty_j=_edge_uncertainty_j(energy_j, duration_s, interval_s),
        how=f"{promql} at {url}; ± estimated from {interval_s:g} s scrapes",
    )


def _query_value(body: bytes, url: str) -> float:
    """The sum of a Prometheus instant-query answer's values."""
    hint = "is it a Prometheus server's base URL (the one that scrapes the exporter)?"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        start = body[:60].decode("utf-8", "replace").strip()
        raise MetricsEndpointError(
            f"{url} did not answer a Prometheus query (not JSON: {start!r}...); {hint}"
        ) from None
    if not isinstance(data, Mapping) or data.get("status") != "success":
        error = data.get("error") if isinstance(data, Mapping) else None
        raise MetricsEndpointError(
            f"{url} did not answer a Prometheus query ({error or 'no success status'}); {hint}"
        )
    result = (
        (data.get("data") or {}).get("result") if isinstance(data.get("data"), Mapping) else None
    )
    if not isinstance(result, list):
        raise MetricsEndpointError(f"{url}: a query answer without a result list; {hint}")
    if not result:
        raise MetricsEndpointError(
            f"{url} has no series for the run's pod over the job (is the exporter scraped,"
            " and does it label pods?)"
        )
    total = 0.0
    for series in result:
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            raise MetricsEndpointError(
                f"{url}: a series without a numeric value: {series!r}"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise MetricsEndpointError(f"{url}: energy {value!r} is not a finite figure >= 0")
        total += value
    return total


def reconcile(
    run_id: str,
    measurement: Any,
    *,
    cluster: ClusterFigure | None = None,
    notes: Sequence[str] = (),
) -> Reconciliation:
    """Put a run's figure beside the cluster's (already read) and compute the gap.

    Args:
        run_id: The run's id, for the report.
        measurement: The run's :class:`~greenai.Measurement` (``energy_j``,
            ``uncertainty_j``, ``methods``, ``devices`` are read; None: no figure).
        cluster: The cluster's figure; None when there is none.
        notes: Notes so far (why the cluster has no figure...).
    """
    energy = getattr(measurement, "energy_j", None)
    uncertainty = getattr(measurement, "uncertainty_j", None)
    methods = getattr(measurement, "methods", ())
    devices = getattr(measurement, "devices", ())
    method = "+".join(methods) or "none"
    if devices:
        method += "; covers " + ", ".join(d.name for d in devices)
    out_notes = list(notes)
    gap = gap_u = None
    if cluster is not None and energy is not None:
        gap, gap_u = difference_with_uncertainty(
            energy, uncertainty or 0.0, cluster.energy_j, cluster.uncertainty_j
        )
        if "model" in methods:
            out_notes.append("greenai's figure is partly a model estimate, not a measurement")
    return Reconciliation(
        run_id=run_id,
        energy_j=energy,
        uncertainty_j=uncertainty,
        method=method,
        cluster=cluster,
        gap_j=gap,
        gap_uncertainty_j=gap_u,
        notes=tuple(out_notes),
    )


def reconcile_run(
    run: Any,
    *,
    source: str = "auto",
    prometheus: str | None = None,
    query: str | None = None,
    interval_s: float | None = None,
    run_command: Runner = _run,
) -> Reconciliation:
    """Reconcile a stored run (:class:`greenai.store.StoredRun`) with its cluster's figure.

    ``auto`` picks ``slurm`` for a run that recorded a SLURM job, else ``dcgm`` when a
    Prometheus URL is given for a run that recorded a Kubernetes pod.

    Raises:
        ConfigError: A source that does not fit the run (no SLURM job, no pod, no URL), or a
            non-positive interval.
        MetricsEndpointError: The Prometheus endpoint answers garbage or cannot be reached.
    """
    if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
        raise ConfigError(f"--interval must be a number of seconds > 0, got {interval_s!r}")
    cluster_meta = run.meta.get("cluster") if isinstance(run.meta, Mapping) else None
    ident = cluster_meta if isinstance(cluster_meta, Mapping) else {}
    if source == "auto":
        source = "slurm" if ident.get("slurm_job_id") else "dcgm" if prometheus else "slurm"
    m = run.measurement
    if source == "slurm":
        job_id = ident.get("slurm_job_id")
        if not job_id:
            raise ConfigError(
                f"run {run.id} recorded no SLURM job (it did not run under srun/sbatch);"
                " give --source dcgm or kepler with --prometheus for a Kubernetes pod"
            )
        figure, notes = sacct_energy(
            str(job_id), ident.get("slurm_step_id"), interval_s=interval_s, run=run_command
        )
        return reconcile(run.id, m, cluster=figure, notes=notes)
    if source not in QUERIES:
        raise ConfigError(f"--source must be auto, slurm, dcgm or kepler; got {source!r}")
    if prometheus is None:
        raise ConfigError(
            f"--source {source} needs --prometheus URL: the Prometheus that scrapes the"
            " exporter (its counters since boot give a job's energy only as an increase)"
        )
    pod, namespace = ident.get("k8s_pod"), ident.get("k8s_namespace")
    if query is None and not (pod and namespace):
        raise ConfigError(
            f"run {run.id} recorded no Kubernetes pod and namespace (set POD_NAME and"
            " POD_NAMESPACE from the downward API), so give --query"
        )
    if m is None:
        raise ConfigError(f"run {run.id} has no measurement yet (still running?)")
    from datetime import datetime

    end = datetime.fromisoformat(m.started_at).timestamp() + m.duration_s
    figure = prometheus_energy(
        prometheus,
        source,
        pod=str(pod),
        namespace=str(namespace),
        end_unix_s=end,
        duration_s=m.duration_s,
        interval_s=interval_s or DEFAULT_INTERVAL_S,
        query=query,
    )
    notes = []
    if interval_s is None:
        notes.append(
            f"the scrape interval is unknown: the {source} figure's ± assumes"
            f" {DEFAULT_INTERVAL_S:g} s (give --interval)"
        )
    if source == "dcgm":
        notes.append("DCGM's figure covers the pod's GPUs only")
    return reconcile(run.id, m, cluster=figure, notes=notes)
