"""Serve a tracked job's power and energy per device to Prometheus while it runs.

Needs the ``prometheus`` extra (``pip install 'greenai[prometheus]'``: prometheus-client
and the waitress HTTP server). The exporter has its own registry and server, bound to
127.0.0.1 unless told otherwise: a training node's metrics are not published to the network
by accident. It lives in the training process, so it is bounded: waitress holds
connections in one event loop (no thread each), accepts at most :data:`CONNECTION_LIMIT`
at once (more wait in the kernel's backlog, taking none of the process's descriptors),
closes a connection idle for :data:`CHANNEL_TIMEOUT_S` (a half-open one), answers scrapes
on :data:`THREADS` threads, and releases every socket and thread at :meth:`stop`.

Values are computed on each scrape from a :meth:`~greenai.Tracker.snapshot`, so exporting
costs the training loop nothing, and a scrape costs what is new since the last settling
pass, however long the job has run (about 10 ms for 8 GPUs a day into a job;
docs/sampling.md).

Metrics (labels ``job``, ``host``, ``rank``; per device also ``device``, ``kind``, ``method``):
``greenai_device_power_watts``, ``greenai_device_energy_joules_total`` (since the job
started), ``greenai_job_energy_joules_total``, ``greenai_job_duration_seconds``,
``greenai_job_steps_total`` and ``greenai_job_running``.
"""

from __future__ import annotations

import errno
import importlib
import threading
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from greenai.distributed.identity import host_id
from greenai.errors import ConfigError

if TYPE_CHECKING:
    from greenai.jobview import JobView
    from greenai.measurement import Measurement
    from greenai.tracker import Tracker

__all__ = ["INSTALL_HINT", "PrometheusExporter", "live_readings", "prometheus_sink"]

INSTALL_HINT = "pip install 'greenai[prometheus]' (or: pip install prometheus-client waitress)"

CONNECTION_LIMIT = 32
"""Connections held at once; beyond it new ones wait in the listen backlog."""

CHANNEL_TIMEOUT_S = 10
"""A connection with no request in flight and no traffic for this long is closed."""

THREADS = 2
"""Threads that answer scrapes (each builds one snapshot)."""

BACKLOG = 64
"""Connections the kernel queues while :data:`CONNECTION_LIMIT` are held."""


def _client() -> ModuleType:
    try:
        return importlib.import_module("prometheus_client")
    except ImportError as exc:
        raise ConfigError(
            f"the Prometheus exporter needs prometheus-client: {INSTALL_HINT}"
        ) from exc


def live_readings(tracker: Tracker | JobView) -> list[tuple[str, str, str, float, float]]:
    """Per device: name, kind, method, latest power (W), energy since the job started (J).

    From :meth:`Tracker.snapshot` (its result once stopped): the cost of a scrape is what is
    new since the last settling pass, and energy never decreases between scrapes. Empty
    before the tracker has started.
    """
    if not tracker.started:
        return []
    m = tracker.snapshot()
    return [
        (d.name, d.kind, d.method, float(d.last_power_w or 0.0), max(d.energy_j, 0.0))
        for d in m.devices
    ]


class PrometheusExporter:
    """An HTTP endpoint (``/metrics``) with the live figures of one tracker.

    It is a :class:`~greenai.sinks.Sink`: ``greenai.track(..., sinks=[PrometheusExporter(
    port=9400)])`` serves while the job runs and stops serving at its end. Used on its own,
    it serves until :meth:`stop` (or the ``with`` block ends).

    Example:
        >>> with greenai.track("train") as job, PrometheusExporter(job, port=9400):
        ...     train()  # doctest: +SKIP

    Args:
        tracker: The tracker to export; it may be started before or after the exporter.
            None when it is given as a sink (the tracker passes itself at start).
        port: TCP port; 0 picks a free one (then read :attr:`port`).
        addr: Address to bind; ``127.0.0.1`` by default. ``0.0.0.0`` publishes the metrics
            to every network the machine is on.

    Raises:
        ConfigError: prometheus-client is not installed (from :meth:`start`), the port is
            invalid or already in use.
    """

    def __init__(
        self, tracker: Tracker | JobView | None = None, *, port: int = 9400, addr: str = "127.0.0.1"
    ) -> None:
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise ConfigError(
                f"the Prometheus port must be 0..65535 (0: any free one); got {port!r}"
            )
        self.tracker = tracker
        self.port = port
        self._requested_port = port  # 0 stays "any free one" for a later start()
        self.addr = addr
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Lock()

    @property
    def url(self) -> str:
        """Where to scrape, e.g. ``http://127.0.0.1:9400/metrics`` (``http://[::1]:9400/...``)."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr  # IPv6 in brackets
        return f"http://{host}:{self.port}/metrics"

    @property
    def serving(self) -> bool:
        """Whether this exporter serves now (between :meth:`start` and the job's end)."""
        with self._stopping:
            return self._server is not None

    def start(self, job: Tracker | JobView | None = None) -> PrometheusExporter:
        """Bind the port and serve on a daemon thread (``job``: the tracker, as a sink).

        Already serving (``greenai run`` binds the port before the job starts, so that a
        busy port stops it before the command runs), it goes on serving on the same port,
        now from ``job``.
        """
        if job is not None:
            self.tracker = job
        if self.tracker is None:
            raise ConfigError("PrometheusExporter needs a tracker: pass it, or use it as a sink")
        if self.serving:
            return self
        client = _client()
        registry = client.CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, client))
        try:
            server, thread = _serve(client.make_wsgi_app(registry), self.addr, self._requested_port)
        except (OSError, ValueError) as exc:  # ValueError: waitress cannot resolve the address
            address = isinstance(exc, ValueError) or exc.errno == errno.EADDRNOTAVAIL
            hint = (
                "give an address of this machine, e.g. 127.0.0.1, or 0.0.0.0 for all"
                if address
                else "pick another port; 0 picks a free one"
            )
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(
                f"cannot serve Prometheus metrics on {self.addr!r}:{self.port}: {reason} ({hint})"
            ) from exc
        with self._stopping:
            self._server, self._thread = server, thread
        self.port = int(server.effective_port)
        return self

    def update(self, snapshot: Measurement) -> None:
        """Nothing to do: Prometheus pulls, and each scrape takes a fresh snapshot."""

    def finish(self, result: Measurement) -> None:
        """The job ended: stop serving, on a thread of its own (``stop()`` need not wait)."""
        taken = self._take()  # this job's server: a later start() gets a server of its own
        if taken is not None:
            threading.Thread(
                target=_shut_down, args=taken, name="greenai-prometheus-stop", daemon=True
            ).start()

    def stop(self) -> None:
        """Stop serving and join the server thread (safe to call twice, from any thread)."""
        taken = self._take()
        if taken is not None:
            _shut_down(*taken)

    def _take(self) -> tuple[Any, threading.Thread | None] | None:
        """The running server and its thread, now no longer this exporter's."""
        with self._stopping:
            if self._server is None:
                return None
            taken = (self._server, self._thread)
            self._server = self._thread = None
            return taken

    def __enter__(self) -> PrometheusExporter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _serve(app: Any, addr: str, port: int) -> tuple[Any, threading.Thread]:
    """A bounded waitress server for ``app`` on ``addr:port``, serving on a daemon thread.

    Raises:
        ConfigError: waitress is not installed.
        OSError: The address cannot be bound.
    """
    try:
        from waitress.server import create_server
        from waitress.task import ThreadedTaskDispatcher
    except ImportError as exc:
        raise ConfigError(f"the Prometheus exporter needs waitress: {INSTALL_HINT}") from exc

    class Workers(ThreadedTaskDispatcher):  # type: ignore[misc]
        def start_new_thread(self, target: Any, thread_no: int) -> None:
            name = f"greenai-prometheus-{thread_no}"
            threading.Thread(target=target, name=name, args=(thread_no,), daemon=True).start()

    workers = Workers()
    workers.set_thread_count(THREADS)
    host = f"[{addr}]" if ":" in addr else addr
    try:
        server = create_server(
            app,
            _dispatcher=workers,
            listen=f"{host}:{port}",
            threads=THREADS,
            connection_limit=CONNECTION_LIMIT,
            channel_timeout=CHANNEL_TIMEOUT_S,
            cleanup_interval=1,
            backlog=BACKLOG,
            asyncore_use_poll=True,  # select() fails once a descriptor is past 1023
            ident="greenai",
            expose_tracebacks=False,
        )
    except BaseException:
        workers.shutdown(timeout=1)
        raise
    thread = threading.Thread(target=server.run, name="greenai-prometheus", daemon=True)
    thread.start()
    return server, thread


def _shut_down(server: Any, thread: threading.Thread | None) -> None:
    """Stop the workers, then close the connections and the listening socket, and join.

    The workers go first: a worker still answering a scrape pulls the loop's trigger when it
    is done, and once the trigger's pipe is closed its descriptor number may already belong
    to another file (the next server's trigger, or the user's), which that late pull would
    write into (and, as the next server's trigger, wake its loop to close it early).
    """
    from waitress import wasyncore

    server.task_dispatcher.shutdown(timeout=5)
    try:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    except OSError:  # the loop is gone (its trigger closed): nothing runs there any more
        wasyncore.close_all(server._map, ignore_all=True)
    if thread is not None:
        thread.join(5.0)


class _Collector:
    """Builds the metric families at each scrape."""

    def __init__(self, exporter: PrometheusExporter, client: ModuleType) -> None:
        self._exporter = exporter  # its tracker, or the job's view once started as a sink
        self._client = client
        self._host = host_id()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        t = self._exporter.tracker
        if t is None:
            return
        base = {"job": t.name, "host": self._host, "rank": str(t.rank)}
        keys = [*base, "device", "kind", "method"]
        power = GaugeMetricFamily(
            "greenai_device_power_watts", "Latest power reading of the device (W).", labels=keys
        )
        energy = CounterMetricFamily(
            "greenai_device_energy_joules",
            "Energy of the device since the job started (J).",
            labels=keys,
        )
        readings = live_readings(t)
        for name, kind, method, watts, joules in readings:
            values = [*base.values(), name, kind, method]
            power.add_metric(values, watts)
            energy.add_metric(values, joules)
        labels, values = list(base), list(base.values())
        total = CounterMetricFamily(
            "greenai_job_energy_joules", "Energy of all devices since the job started (J).",
            labels=labels,
        )  # fmt: skip
        total.add_metric(values, sum(r[4] for r in readings))
        duration = GaugeMetricFamily(
            "greenai_job_duration_seconds",
            "Seconds since the job started (its length once stopped).",
            labels=labels,
        )
        duration.add_metric(values, t.elapsed_s)
        steps = CounterMetricFamily("greenai_job_steps", "Steps marked with step().", labels=labels)
        steps.add_metric(values, t.steps)
        running = GaugeMetricFamily(
            "greenai_job_running", "1 while the job is tracked.", labels=labels
        )
        running.add_metric(values, 1.0 if t.running else 0.0)
        yield from (power, energy, total, duration, steps, running)


def prometheus_sink(port: str = "9400", *, addr: str = "127.0.0.1") -> PrometheusExporter:
    """``--sink prometheus[:PORT][,addr=ADDR]``: a :class:`PrometheusExporter` as a sink.

    Raises:
        ConfigError: The port is not a number 0..65535.
    """
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(
            f"the Prometheus port must be 0..65535 (0: any free one); got {port!r}"
        ) from None
    return PrometheusExporter(port=number, addr=addr)
