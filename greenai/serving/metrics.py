"""Prometheus metrics of served requests: J/request and J/token histograms, by model.

Needs ``prometheus-client`` (the ``prometheus`` or ``serve`` extra). Its own registry, so a
proxy's metrics never mix with a process's default ones.
"""

from __future__ import annotations

import importlib
from typing import Any

from greenai.errors import ConfigError
from greenai.serving.attribution import RequestEnergy

__all__ = ["RequestMetrics"]

_J_PER_REQUEST = (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000)
_J_PER_TOKEN = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10)
_MAX_CHILDREN = 4096
"""Labelled series cached per metric pair (models x statuses x methods seen)."""


class RequestMetrics:
    """Histograms and counters fed with each settled request.

    Metrics: ``greenai_request_energy_joules`` (histogram, labels ``model``, ``status``),
    ``greenai_token_energy_joules`` (histogram of J per token, labels ``model``, ``phase`` =
    ``prefill`` | ``decode``), ``greenai_requests_total`` and ``greenai_tokens_total``
    (counters), ``greenai_serving_energy_joules_total`` (counter, ``part`` = ``requests`` |
    ``baseline`` | ``idle``) with the method in a label. A phase whose token count is an
    estimate or unknown (a response without ``usage``) stays out of the token histogram and
    counter; ``greenai_requests_tokens_not_counted_total`` (labels ``model``, ``tokens``:
    what the counts were) counts those requests.

    Raises:
        ConfigError: prometheus-client is not installed.
    """

    def __init__(self) -> None:
        try:
            prom = importlib.import_module("prometheus_client")
        except ImportError as exc:
            raise ConfigError(
                "Prometheus metrics need prometheus-client: pip install 'greenai[serve]'"
            ) from exc
        self._prom: Any = prom
        self.registry = prom.CollectorRegistry()
        self.request_j = prom.Histogram(
            "greenai_request_energy_joules",
            "Energy charged to one request (J), above baseline",
            ["model", "status", "method"],
            buckets=_J_PER_REQUEST,
            registry=self.registry,
        )
        self.token_j = prom.Histogram(
            "greenai_token_energy_joules",
            "Energy per token of one request (J/token), prefill and decode apart",
            ["model", "phase", "method"],
            buckets=_J_PER_TOKEN,
            registry=self.registry,
        )
        self.requests = prom.Counter(
            "greenai_requests", "Requests settled", ["model", "status"], registry=self.registry
        )
        self.tokens = prom.Counter(
            "greenai_tokens",
            "Tokens of settled requests",
            ["model", "phase"],
            registry=self.registry,
        )
        self.not_counted = prom.Counter(
            "greenai_requests_tokens_not_counted",
            "Settled requests whose token counts were estimated or unknown (left out of the"
            " per-token figures where so)",
            ["model", "tokens"],
            registry=self.registry,
        )
        self.energy = prom.Counter(
            "greenai_serving_energy_joules",
            "Energy settled (J): charged to requests, baseline under them, idle",
            ["part", "method"],
            registry=self.registry,
        )
        self._children: dict[str, dict[tuple[str, str, str], tuple[Any, Any]]] = {}

    def observe(self, r: RequestEnergy) -> None:
        """Count one settled request."""
        model = r.model or "unknown"
        request_j, requests = self._child((model, r.status, r.method), self._request_children)
        request_j.observe(max(r.energy_j, 0.0))
        requests.inc()
        if r.tokens != "counted":
            self.not_counted.labels(model, r.tokens).inc()
        for phase, n, j, counted in (
            ("prefill", r.prompt_tokens, r.prefill_energy_j, r.prompt_counted),
            ("decode", r.completion_tokens, r.decode_energy_j, r.completion_counted),
        ):
            if n and counted:
                tokens, token_j = self._child((model, phase, r.method), self._token_children)
                tokens.inc(n)
                token_j.observe(max(j, 0.0) / n)

    def _request_children(self, model: str, status: str, method: str) -> tuple[Any, Any]:
        return self.request_j.labels(model, status, method), self.requests.labels(model, status)

    def _token_children(self, model: str, phase: str, method: str) -> tuple[Any, Any]:
        return self.tokens.labels(model, phase), self.token_j.labels(model, phase, method)

    def _child(self, key: tuple[str, str, str], make: Any) -> tuple[Any, Any]:
        """The labelled series for ``key``, looked up once (``labels()`` costs microseconds).

        The cache is bounded: cleared past ``_MAX_CHILDREN`` (then looked up again).
        """
        cache = self._children.setdefault(make.__name__, {})
        got = cache.get(key)
        if got is None:
            if len(cache) >= _MAX_CHILDREN:
                cache.clear()
            got = cache[key] = make(*key)
        return got

    def add_energy(self, part: str, energy_j: float, method: str) -> None:
        """Add settled energy of one part (``requests``, ``baseline``, ``idle``)."""
        if energy_j > 0:
            self.energy.labels(part, method).inc(energy_j)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
