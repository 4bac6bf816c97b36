"""Split a power curve among overlapping requests: the numeric rule, with no I/O.

A request is a span of time on the job's clock carrying the tokens it processed: its prompt
(prefill) and its generated tokens (decode). Where an engine reports its batches, each
:class:`Iteration` says which requests it held and how many prefill and decode tokens each
had in it. The job's energy is a cumulative curve ``E(t)`` (joules since the start, summed
over devices). :func:`attribute` cuts time at every edge (request start, first token, end,
iteration edges) into stretches and charges each stretch's energy as follows:

- no request in flight: the whole stretch is **idle** energy;
- requests in flight: ``baseline_power_w`` × the stretch's length is **baseline** energy
  (what the machine draws doing nothing; 0 when no baseline was measured), and the rest is
  split among the requests in flight in proportion to their weight in that stretch.

A request's weight in a stretch is ``prefill_weight`` × its prefill tokens there +
``decode_weight`` × its decode tokens there. Tokens are placed in time like this:

- ``rule="iterations"`` (an engine reported batches): each request's tokens of an iteration
  spread evenly over that iteration;
- ``rule="spans"`` (only request spans): the prompt tokens spread evenly from the start to
  the first token (when it is not known: over the first ``1/(1 + completion tokens)`` of the
  span, one engine step among as many as it generated), the generated tokens evenly from
  the first token to the end.

Where requests are in flight but carry no token weight there, the stretch is split by time
in flight. So each stretch is charged exactly once: requests + baseline + idle = the
measured total, to float rounding, whatever the rule.

Each request's ± has two parts. The **curve** part is the measured total's ± charged in
proportion to the request's energy (the curve's error is shared by all stretches, so it is
added linearly). The **rule** part is the distance to an alternative rule: with iteration
data and measured cost weights, the same split with plain token counts; otherwise the split
by time in flight. They combine in quadrature. A request whose first token time is an
estimate below a seen bound (``first_token_bound_s``, :func:`estimate_first_token`) has its
rule part widened to cover the split with the first token at the bound: how far its energy
or its decode part moves there, whichever is more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from greenai.errors import ConfigError

__all__ = [
    "COMPLETION_COUNTED",
    "PROMPT_COUNTED",
    "TOKEN_COUNTS",
    "Attribution",
    "Iteration",
    "RequestEnergy",
    "RequestSpan",
    "Rule",
    "attribute",
    "estimate_first_token",
    "fit_token_costs",
    "one_line",
    "one_line_notes",
]

FloatArray = npt.NDArray[np.float64]
Rule = Literal["spans", "iterations"]

TOKEN_COUNTS = {
    "counted": "",
    "prompt_estimated": "prompt tokens estimated from its characters (4 a token), not"
    " counted: left out of J/token of prefill",
    "estimated": "no usage in the response: prompt and generated tokens estimated from"
    " their characters (4 a token), not counted: left out of J/token",
    "unknown": "generated tokens unknown (no usage, and no choices' text to estimate from):"
    " 0 stands in; prompt tokens estimated from characters; left out of J/token",
    "completion_estimated": "no usage in the response: generated tokens estimated from"
    " their characters (4 a token), not counted: left out of J/token of decode (prompt"
    " tokens counted: given as token ids)",
    "completion_unknown": "generated tokens unknown (no usage, and no choices' text to"
    " estimate from): 0 stands in; left out of J/token of decode (prompt tokens counted:"
    " given as token ids)",
    "error": "an error answer without usage: nothing generated; its prompt (tokens counted"
    " where given as token ids, else estimated from characters) may never have been"
    " processed: left out of J/token of prefill",
}
"""What a request's token counts are (``tokens``), and the note each kind puts on it:
``counted`` (the server's ``usage``, the caller's counts, an engine's steps), or the
estimates of a proxy that saw no ``usage`` (``error``: an error answer, its prompt
perhaps never processed). The split uses whatever counts there are (its
rule ± is the distance to the split by time); per-token figures use counts only."""

PROMPT_COUNTED = ("counted", "completion_estimated", "completion_unknown")
"""The kinds whose prompt tokens are a count (and were processed: per-token figures)."""

COMPLETION_COUNTED = ("counted", "prompt_estimated", "error")
"""The kinds whose generated tokens are a count (an error answer's: none)."""


def one_line(note: str) -> str:
    """``note`` with its whitespace (newlines included) collapsed to single spaces.

    Notes are stored a line each (a store row's ``notes``): one holding a newline (an
    exception's text) would read back as two.
    """
    return " ".join(str(note).split())


def one_line_notes(notes: Iterable[str]) -> tuple[str, ...]:
    """Each of ``notes`` on one line (:func:`one_line`), blank ones dropped."""
    return tuple(filter(None, map(one_line, notes)))


@dataclass(frozen=True)
class RequestSpan:
    """One request on the job's clock (seconds since the job started).

    Args:
        request_id: Unique within one attribution.
        start_s: When the request arrived.
        end_s: When its last byte was sent (or the client went away).
        prompt_tokens: Tokens of the prompt (prefill).
        completion_tokens: Tokens generated (decode).
        first_token_s: When the first generated token left the engine (streaming), if known.
        first_token_bound_s: Set when ``first_token_s`` is an estimate (see
            :func:`estimate_first_token`): the time the first token was seen, which is only
            the latest it can have left the engine. The request's rule ± then covers the
            split with the first token there.
        model: The model that served it, for per-model figures.
        status: ``"ok"``, or what went wrong (``"disconnected"``, ``"error"``...).
        notes: What its figures could not do (say how its first token was placed); passed
            on to its :class:`RequestEnergy`. Each is kept on one line (:func:`one_line`:
            a store row holds them a line each); blank ones are dropped.
        tokens: What the token counts are: a key of :data:`TOKEN_COUNTS`.

    Raises:
        ConfigError: Times out of order, negative token counts, an unknown ``tokens``.
    """

    request_id: str
    start_s: float
    end_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_s: float | None = None
    model: str | None = None
    status: str = "ok"
    first_token_bound_s: float | None = None
    notes: tuple[str, ...] = ()
    tokens: str = "counted"

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", one_line_notes(self.notes))
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise ConfigError(f"request {self.request_id!r}: start_s and end_s must be finite")
        if self.end_s < self.start_s:
            raise ConfigError(
                f"request {self.request_id!r} ends ({self.end_s}) before it starts"
                f" ({self.start_s}); give times on one clock"
            )
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ConfigError(f"request {self.request_id!r}: token counts must be >= 0")
        if self.tokens not in TOKEN_COUNTS:
            raise ConfigError(
                f"request {self.request_id!r}: tokens must be one of {sorted(TOKEN_COUNTS)},"
                f" got {self.tokens!r}"
            )
        f = self.first_token_s
        if f is not None and not (self.start_s <= f <= self.end_s):
            raise ConfigError(
                f"request {self.request_id!r}: first_token_s must lie between start and end"
            )
        b = self.first_token_bound_s
        if b is not None and (f is None or not (f <= b <= self.end_s)):
            raise ConfigError(
                f"request {self.request_id!r}: first_token_bound_s needs a first_token_s at or"
                " before it, and must not lie after end_s"
            )


@dataclass(frozen=True)
class Iteration:
    """One engine step (a batch): which requests it held, and their tokens in it.

    Args:
        start_s: When the step began (seconds since the job started).
        end_s: When it ended.
        prefill: Request id → prompt tokens processed in this step.
        decode: Request id → tokens generated in this step.

    Raises:
        ConfigError: ``end_s`` before ``start_s`` or negative counts.
    """

    start_s: float
    end_s: float
    prefill: Mapping[str, int] = field(default_factory=dict)
    decode: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and self.end_s >= self.start_s):
            raise ConfigError(f"iteration ends ({self.end_s}) before it starts ({self.start_s})")
        if any(n < 0 for n in (*self.prefill.values(), *self.decode.values())):
            raise ConfigError("iteration token counts must be >= 0")


@dataclass(frozen=True)
class RequestEnergy:
    """The energy charged to one request (J), with its ± and how it was obtained.

    ``energy_j = prefill_energy_j + decode_energy_j`` (above baseline); ``uncertainty_j`` is
    about 95%, ``curve_uncertainty_j`` and ``rule_uncertainty_j`` combined in quadrature.
    ``method`` is the curve's (``counter``, ``power``, ``model``); ``rule`` the split's;
    ``notes`` what its figures could not do (its :class:`RequestSpan`'s); ``tokens`` what
    the token counts are (:data:`TOKEN_COUNTS`: estimates are no counts, and per-token
    figures leave them out; :meth:`to_dict` adds its note to ``notes``).
    """

    request_id: str
    model: str | None
    status: str
    start_s: float
    end_s: float
    prompt_tokens: int
    completion_tokens: int
    energy_j: float
    prefill_energy_j: float
    decode_energy_j: float
    curve_uncertainty_j: float
    rule_uncertainty_j: float
    method: str
    rule: str
    notes: tuple[str, ...] = ()
    tokens: str = "counted"

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", one_line_notes(self.notes))

    @property
    def uncertainty_j(self) -> float:
        """About 95% uncertainty of ``energy_j`` (J)."""
        return math.hypot(self.curve_uncertainty_j, self.rule_uncertainty_j)

    @property
    def duration_s(self) -> float:
        """Seconds from arrival to the last byte."""
        return self.end_s - self.start_s

    @property
    def prompt_counted(self) -> bool:
        """Whether ``prompt_tokens`` is a count (not an estimate)."""
        return self.tokens in PROMPT_COUNTED

    @property
    def completion_counted(self) -> bool:
        """Whether ``completion_tokens`` is a count (not an estimate, not unknown)."""
        return self.tokens in COMPLETION_COUNTED

    @property
    def j_per_token(self) -> float | None:
        """Energy per processed token (prompt + completion); None without tokens or counts."""
        n = self.prompt_tokens + self.completion_tokens
        return self.energy_j / n if n and self.tokens == "counted" else None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON values."""
        return {
            "request_id": self.request_id,
            "model": self.model,
            "status": self.status,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "energy_j": self.energy_j,
            "prefill_energy_j": self.prefill_energy_j,
            "decode_energy_j": self.decode_energy_j,
            "uncertainty_j": self.uncertainty_j,
            "curve_uncertainty_j": self.curve_uncertainty_j,
            "rule_uncertainty_j": self.rule_uncertainty_j,
            "method": self.method,
            "rule": self.rule,
            "tokens": self.tokens,
            "notes": [*self.notes, *filter(None, [TOKEN_COUNTS[self.tokens]])],
        }


@dataclass(frozen=True)
class Attribution:
    """The split of one stretch of a job: ``sum(requests) + baseline_j + idle_j = total_j``.

    Attributes:
        requests: Each request's share (those whose span overlaps the window).
        total_j: The measured energy over ``[start_s, end_s]`` (J).
        total_uncertainty_j: Its ± (J), from the measurement.
        idle_j: Energy of stretches with no request in flight (J).
        baseline_j: Baseline power × time while requests were in flight (J); not charged
            to them (0 without a measured baseline).
        method: The curve's method(s), comma-separated.
        rule: The split's rule (``"spans"`` or ``"iterations"``).
        prefill_weight: The weight of one prefill token against ``decode_weight``.
        decode_weight: The weight of one decode token.
        notes: What the figures could not do.
    """

    requests: tuple[RequestEnergy, ...]
    start_s: float
    end_s: float
    total_j: float
    total_uncertainty_j: float
    idle_j: float
    baseline_j: float
    method: str
    rule: str
    prefill_weight: float
    decode_weight: float
    notes: tuple[str, ...] = ()

    @property
    def requests_j(self) -> float:
        """Energy charged to requests (J)."""
        return math.fsum(r.energy_j for r in self.requests)


def _unseen_first_token(start_s: FloatArray, end_s: FloatArray, tokens: FloatArray) -> FloatArray:
    """Where the spans rule puts a first token it was not told: one step of ``1 + tokens``."""
    return start_s + (end_s - start_s) / (1.0 + tokens)


def estimate_first_token(
    start_s: float,
    seen_s: float,
    end_s: float,
    tokens_seen: int,
    completion_tokens: int,
    *,
    paced: bool = True,
) -> float:
    """When a request's first token likely left the engine, from a late, merged first read.

    A stream whose first text came with ``tokens_seen`` of its ``completion_tokens``
    generated tokens at once (at ``seen_s``) shows only the latest its first token can have
    left: the other ``tokens_seen - 1`` were decoded before ``seen_s`` too. With the tokens
    after that read timing the decode (at least as many as are placed before it:
    ``completion_tokens - tokens_seen >= tokens_seen - 1``), the first token is put
    ``tokens_seen - 1`` of their mean gaps before ``seen_s``; else (most tokens came in that
    read: nothing left to time them) where the spans rule puts a first token it was not
    told, one step of ``1 + completion_tokens`` after the start. The same where the tokens
    after the read came merged too (``paced`` False, :meth:`SseCounter.paced_after_first
    <greenai.serving.usage.SseCounter.paced_after_first>`): a server sending a backlog
    late, whose gaps time nothing, and whose first read, even of one token, was late too.
    Always within ``[start_s, seen_s]``.

    Args:
        start_s: When the request arrived (s).
        seen_s: When its first text was seen (s).
        end_s: When it ended (s).
        tokens_seen: Generated tokens that had come by ``seen_s`` (1: the token came alone,
            and ``seen_s`` is returned).
        completion_tokens: Tokens it generated in all.
        paced: Whether the tokens after the read came as they were decoded.

    Returns:
        The estimated first token time (s, on the same clock).
    """
    if completion_tokens <= 1 or (tokens_seen <= 1 and paced):
        return seen_s
    after = completion_tokens - tokens_seen
    if paced and after >= tokens_seen - 1 and end_s > seen_s:
        f = seen_s - (tokens_seen - 1) * (end_s - seen_s) / after
    else:
        f = start_s + (end_s - start_s) / (1.0 + completion_tokens)
    return min(max(f, start_s), seen_s)


def fit_token_costs(
    energy_j: Sequence[float], prefill: Sequence[float], decode: Sequence[float]
) -> tuple[float, float] | None:
    """Least-squares cost of a prefill and a decode token from per-iteration energies.

    Fits ``energy = c0 + cp × prefill + cd × decode`` over the iterations and returns
    ``(cp, cd)`` (J per token), or None when the data cannot tell them apart (fewer than 8
    iterations, no variation in one kind, or a cost that comes out ≤ 0).
    """
    e = np.asarray(energy_j, dtype=float)
    p = np.asarray(prefill, dtype=float)
    d = np.asarray(decode, dtype=float)
    ok = np.isfinite(e)
    e, p, d = e[ok], p[ok], d[ok]
    if len(e) < 8 or np.ptp(p) == 0 or np.ptp(d) == 0:
        return None
    a = np.column_stack([np.ones_like(p), p, d])
    coef, _res, rank, _sv = np.linalg.lstsq(a, e, rcond=None)
    if rank < 3 or not (coef[1] > 0 and coef[2] > 0):
        return None
    return float(coef[1]), float(coef[2])


@dataclass
class _Pieces:
    """Token pieces: request index, interval, prefill and decode tokens spread evenly."""

    req: npt.NDArray[np.intp]
    a: FloatArray
    b: FloatArray
    p: FloatArray
    d: FloatArray


def _span_pieces(
    spans: Sequence[RequestSpan], idx: npt.NDArray[np.intp], *, at_bound: bool = False
) -> _Pieces:
    """Prompt tokens from start to first token, generated ones from there to the end.

    ``at_bound``: a first token given with a bound is put at the bound.
    """
    n = len(spans)
    s = np.array([r.start_s for r in spans], dtype=float)
    e = np.array([r.end_s for r in spans], dtype=float)
    p = np.array([r.prompt_tokens for r in spans], dtype=float)
    d = np.array([r.completion_tokens for r in spans], dtype=float)
    f = np.array(
        [
            r.first_token_bound_s
            if at_bound and r.first_token_bound_s is not None
            else (math.nan if r.first_token_s is None else r.first_token_s)
            for r in spans
        ],
        dtype=float,
    )
    f = np.where(np.isnan(f), _unseen_first_token(s, e, d), f)
    return _Pieces(
        req=np.concatenate([idx, idx]),
        a=np.concatenate([s, f]),
        b=np.concatenate([f, e]),
        p=np.concatenate([p, np.zeros(n)]),
        d=np.concatenate([np.zeros(n), d]),
    )


def _iteration_pieces(iterations: Sequence[Iteration], index: Mapping[str, int]) -> _Pieces:
    req: list[int] = []
    a: list[float] = []
    b: list[float] = []
    p: list[float] = []
    d: list[float] = []
    for it in iterations:
        for rid in {*it.prefill, *it.decode}:
            k = index.get(rid)
            if k is None:
                continue
            req.append(k)
            a.append(it.start_s)
            b.append(it.end_s)
            p.append(float(it.prefill.get(rid, 0)))
            d.append(float(it.decode.get(rid, 0)))
    return _Pieces(
        np.array(req, dtype=np.intp),
        np.array(a, dtype=float),
        np.array(b, dtype=float),
        np.array(p, dtype=float),
        np.array(d, dtype=float),
    )


def _expand(
    a: FloatArray, b: FloatArray, edges: FloatArray
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """For intervals [a, b]: (interval index, stretch index, overlap length) for each pair."""
    k0 = np.searchsorted(edges, a, side="right") - 1
    k1 = np.searchsorted(edges, b, side="left")
    k0 = np.clip(k0, 0, len(edges) - 1)
    k1 = np.clip(k1, k0, len(edges) - 1)
    counts = k1 - k0
    item = np.repeat(np.arange(len(a), dtype=np.intp), counts)
    offsets = np.cumsum(counts) - counts
    k = k0[item] + (np.arange(int(counts.sum()), dtype=np.intp) - offsets[item])
    lo = np.maximum(edges[k], a[item])
    hi = np.minimum(edges[k + 1], b[item])
    return item, k.astype(np.intp), np.maximum(hi - lo, 0.0)


def _split(
    n_req: int,
    pieces: _Pieces,
    wp: float,
    wd: float,
    spans_s: FloatArray,
    spans_e: FloatArray,
    edges: FloatArray,
    dyn: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Split ``dyn`` (per stretch) among requests; returns (total, prefill part, time split)."""
    n_k = len(dyn)
    item, k, ov = _expand(pieces.a, pieces.b, edges)
    length = np.maximum(pieces.b - pieces.a, 0.0)[item]
    frac = np.divide(ov, length, out=np.zeros_like(ov), where=length > 0)
    wp_rk = wp * pieces.p[item] * frac
    wd_rk = wd * pieces.d[item] * frac
    w_rk = wp_rk + wd_rk
    w_k = np.bincount(k, weights=w_rk, minlength=n_k)
    # time in flight: the fallback where no token weight lies, and the alternative rule
    t_item, t_k, t_ov = _expand(spans_s, spans_e, edges)
    t_k_sum = np.bincount(t_k, weights=t_ov, minlength=n_k)
    by_time = np.divide(dyn, t_k_sum, out=np.zeros(n_k), where=t_k_sum > 0)
    time_share = np.bincount(t_item, weights=t_ov * by_time[t_k], minlength=n_req)
    per_w = np.divide(dyn, w_k, out=np.zeros(n_k), where=w_k > 0)
    total = np.bincount(pieces.req[item], weights=w_rk * per_w[k], minlength=n_req)
    prefill = np.bincount(pieces.req[item], weights=wp_rk * per_w[k], minlength=n_req)
    no_weight = (w_k <= 0) & (t_k_sum > 0)
    if no_weight.any():
        sel = no_weight[t_k]
        total += np.bincount(t_item[sel], weights=t_ov[sel] * by_time[t_k[sel]], minlength=n_req)
    f64 = np.float64
    return total.astype(f64), prefill.astype(f64), time_share.astype(f64)


def attribute(
    t_s: Sequence[float] | FloatArray,
    energy_j: Sequence[float] | FloatArray,
    requests: Iterable[RequestSpan],
    *,
    iterations: Sequence[Iteration] = (),
    start_s: float | None = None,
    end_s: float | None = None,
    baseline_power_w: float | None = None,
    uncertainty_j: float = 0.0,
    method: str = "power",
    token_costs: tuple[float, float] | None = None,
) -> Attribution:
    """Charge the energy of ``[start_s, end_s]`` to the requests in flight, idle and baseline.

    Args:
        t_s: Times of the cumulative energy curve (seconds on the requests' clock), rising.
        energy_j: Cumulative energy at those times (J), summed over devices; linear between.
        requests: The request spans (those outside the window get nothing).
        iterations: The engine's batches, when known: the split follows them
            (``rule="iterations"``) for the requests they name.
        start_s: Start of the window to split; the curve's first time by default.
        end_s: End of the window; the curve's last time by default.
        baseline_power_w: Power the machine draws idle (W); that much is kept out of the
            requests' shares while they run. None or 0 charges them all the energy of their
            stretches (a note says so).
        uncertainty_j: The measured total's ± over the window (J), shared out as the curve
            part of each request's ±.
        method: How the curve was obtained (``counter``, ``power``, ``model``).
        token_costs: ``(prefill, decode)`` weights per token; by default fitted from the
            iterations' energies (:func:`fit_token_costs`), else 1 and 1 (token counts).

    Returns:
        The :class:`Attribution`.

    Raises:
        ConfigError: A curve with fewer than two points, not rising in time, of another
            length than its times; a window outside it; repeated request ids.
    """
    t = np.asarray(t_s, dtype=float)
    e = np.asarray(energy_j, dtype=float)
    if t.ndim != 1 or t.shape != e.shape or len(t) < 2:
        raise ConfigError("the energy curve needs matching t_s and energy_j, 2 points or more")
    if np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)) or not np.all(np.isfinite(e)):
        raise ConfigError("the energy curve's times must rise strictly, and its values be finite")
    lo = float(t[0]) if start_s is None else float(start_s)
    hi = float(t[-1]) if end_s is None else float(end_s)
    if not (t[0] - 1e-9 <= lo <= hi <= t[-1] + 1e-9):
        raise ConfigError(
            f"the window [{lo}, {hi}] s must lie within the curve's [{t[0]}, {t[-1]}] s"
        )
    spans = [r for r in requests if r.end_s >= lo and r.start_s <= hi]
    index = {r.request_id: i for i, r in enumerate(spans)}
    if len(index) != len(spans):
        raise ConfigError("request ids must be unique within one attribution")
    notes: list[str] = []
    by_iter = [it for it in iterations if it.end_s >= lo and it.start_s <= hi]
    covered = {rid for it in by_iter for rid in (*it.prefill, *it.decode)}
    rule: Rule = "iterations" if by_iter else "spans"
    alone = [i for i, r in enumerate(spans) if r.request_id not in covered]
    span_p = _span_pieces([spans[i] for i in alone], np.array(alone, dtype=np.intp))
    it_p = _iteration_pieces(by_iter, index)
    pieces = _Pieces(
        np.concatenate([span_p.req, it_p.req]).astype(np.intp),
        np.concatenate([span_p.a, it_p.a]),
        np.concatenate([span_p.b, it_p.b]),
        np.concatenate([span_p.p, it_p.p]),
        np.concatenate([span_p.d, it_p.d]),
    )
    if by_iter and len(covered & index.keys()) < len(spans):
        notes.append(
            f"{len(spans) - len(covered & index.keys())} request(s) not in any reported"
            " iteration were placed by their spans"
        )
    spans_s = np.maximum(np.array([r.start_s for r in spans], dtype=float), lo)
    spans_e = np.minimum(np.array([r.end_s for r in spans], dtype=float), hi)
    bounds = np.array(
        [r.first_token_bound_s for r in spans if r.first_token_bound_s is not None], dtype=float
    )
    inner = np.concatenate([pieces.a, pieces.b, spans_s, spans_e, bounds])
    edges = np.unique(np.concatenate([[lo, hi], inner[(inner > lo) & (inner < hi)]]))
    if len(edges) < 2:
        edges = np.array([lo, hi])
    cum = np.interp(edges, t, e)
    d_e = np.diff(cum)
    total_j = float(cum[-1] - cum[0])
    # which stretches have a request in flight
    _, t_k, t_ov = _expand(spans_s, spans_e, edges)
    busy = np.bincount(t_k, weights=(t_ov > 0).astype(float), minlength=len(d_e)) > 0
    base_w = float(baseline_power_w or 0.0)
    if base_w <= 0:
        notes.append(
            "no idle baseline: requests carry the machine's whole draw while they run"
            " (track with baseline_s to keep idle power apart)"
        )
    base = np.where(busy, np.minimum(base_w * np.diff(edges), np.maximum(d_e, 0.0)), 0.0)
    dyn = np.where(busy, d_e - base, 0.0)
    idle_j = float(np.sum(np.where(busy, 0.0, d_e)))
    baseline_j = float(np.sum(base))
    wp, wd = 1.0, 1.0
    if token_costs is not None:
        wp, wd = token_costs
    elif by_iter:
        fit = _fit_iterations(by_iter, t, e)
        if fit is not None:
            wp, wd = fit
        else:
            notes.append(
                "too few or too uniform iterations to measure a prefill token's cost against"
                " a decode token's: weighted by token counts"
            )
    n = len(spans)
    total, prefill, time_share = _split(n, pieces, wp, wd, spans_s, spans_e, edges, dyn)
    if by_iter and (wp, wd) != (1.0, 1.0):
        alt, _, _ = _split(n, pieces, 1.0, 1.0, spans_s, spans_e, edges, dyn)
    else:
        alt = time_share
    rule_unc = np.abs(total - alt)
    if len(bounds):  # first tokens placed by estimate: the ± covers them at their bound
        at_b = _span_pieces([spans[i] for i in alone], np.array(alone, np.intp), at_bound=True)
        b_pieces = _Pieces(
            pieces.req,
            np.concatenate([at_b.a, it_p.a]),
            np.concatenate([at_b.b, it_p.b]),
            pieces.p,
            pieces.d,
        )
        tot_b, pre_b, _ = _split(n, b_pieces, wp, wd, spans_s, spans_e, edges, dyn)
        moved = np.maximum(np.abs(total - tot_b), np.abs((total - prefill) - (tot_b - pre_b)))
        rule_unc = np.maximum(rule_unc, moved)
    unc = float(uncertainty_j)
    # Python floats (tolist) per request, not numpy scalars: a proxy settles ~200 a second
    out = tuple(
        RequestEnergy(
            request_id=r.request_id,
            model=r.model,
            status=r.status,
            start_s=r.start_s,
            end_s=r.end_s,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            energy_j=tot,
            prefill_energy_j=pre,
            decode_energy_j=tot - pre,
            curve_uncertainty_j=_share(unc, tot, total_j),
            rule_uncertainty_j=other,
            method=method,
            rule="iterations" if r.request_id in covered else "spans",
            notes=r.notes,
            tokens=r.tokens,
        )
        for r, tot, pre, other in zip(
            spans, total.tolist(), prefill.tolist(), rule_unc.tolist(), strict=True
        )
    )
    return Attribution(
        requests=out,
        start_s=lo,
        end_s=hi,
        total_j=total_j,
        total_uncertainty_j=float(uncertainty_j),
        idle_j=idle_j,
        baseline_j=baseline_j,
        method=method,
        rule=rule,
        prefill_weight=wp,
        decode_weight=wd,
        notes=tuple(notes),
    )


def _fit_iterations(
    iterations: Sequence[Iteration], t: FloatArray, e: FloatArray
) -> tuple[float, float] | None:
    a = np.array([it.start_s for it in iterations], dtype=float)
    b = np.array([it.end_s for it in iterations], dtype=float)
    energy = np.interp(b, t, e) - np.interp(a, t, e)
    prefill = [float(sum(it.prefill.values())) for it in iterations]
    decode = [float(sum(it.decode.values())) for it in iterations]
    return fit_token_costs(energy, prefill, decode)


def _share(uncertainty_j: float, part_j: float, total_j: float) -> float:
    """``uncertainty_j`` × ``part_j / total_j`` (0 where the total is 0)."""
    if not total_j > 0:
        return 0.0
    return uncertainty_j * min(abs(part_j) / total_j, 1.0)
