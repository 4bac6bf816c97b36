"""Requests on a running job: mark them live (or after the fact), get each one's energy.

:class:`ServingMeter` keeps the requests of a job started with :func:`greenai.track` and,
at each :meth:`ServingMeter.settle`, charges the stretch of the job that is final (the
devices' settled readings, and no request still open in it) with
:func:`greenai.serving.attribution.attribute`. Finished requests leave the meter with their
figures (``on_request`` receives each one); the totals add up over every pass:
``requests_j + baseline_j + idle_j = total_j``. What it keeps is bounded by the requests in
flight and the last ``keep`` finished ones, whatever the job's length.

It reads the job only through its public API: ``timeline(after_s=..., as_frame=False)``,
``elapsed_s`` and ``snapshot()``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenai.errors import ConfigError
from greenai.serving.attribution import (
    Attribution,
    Iteration,
    RequestEnergy,
    RequestSpan,
    attribute,
    estimate_first_token,
)

__all__ = ["OpenRequest", "ServingMeter", "ServingTotals"]


@dataclass(frozen=True)
class ServingTotals:
    """What a meter has charged so far (J): ``requests_j + baseline_j + idle_j = total_j``.

    ``prompt_tokens`` and ``completion_tokens`` add every request's figures, estimates
    included; ``prefill_j_per_token`` and ``decode_j_per_token`` (J/token, None without
    counted tokens) only the requests whose counts of that part are counts, and
    ``tokens_not_counted`` says how many requests had estimates or unknowns instead
    (:data:`~greenai.serving.attribution.TOKEN_COUNTS`).
    """

    start_s: float
    settled_s: float
    total_j: float
    uncertainty_j: float
    requests_j: float
    baseline_j: float
    idle_j: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    prefill_j: float
    decode_j: float
    method: str
    rules: tuple[str, ...]
    notes: tuple[str, ...]
    prefill_j_per_token: float | None = None
    decode_j_per_token: float | None = None
    tokens_not_counted: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


class OpenRequest:
    """A request in flight, as :meth:`ServingMeter.request` yields it."""

    def __init__(self, meter: ServingMeter, request_id: str) -> None:
        self._meter = meter
        self.request_id = request_id
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.status = "ok"

    def first_token(self) -> None:
        """Mark now as the time the first generated token left the engine."""
        self._meter.first_token(self.request_id)

    def tokens(self, prompt: int | None = None, completion: int | None = None) -> None:
        """Set the request's token counts (prompt = prefill, completion = decode).

        Raises:
            ConfigError: A count that is not a whole number >= 0.
        """
        if prompt is not None:
            self.prompt_tokens = _token_count(prompt, self.request_id)
        if completion is not None:
            self.completion_tokens = _token_count(completion, self.request_id)


def _token_count(value: object, request_id: str) -> int:
    """``value`` as a token count: a whole number >= 0 (``3.0`` will do, ``1.5`` not).

    Raises:
        ConfigError: Anything else (a fraction, a negative or non-finite number, text).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"request {request_id!r}: token counts are whole numbers, got {value!r}")
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise ConfigError(
            f"request {request_id!r}: token counts must be whole numbers >= 0, got {value!r}"
        )
    return int(value)


class ServingMeter:
    """Energy per request for a job: request spans and engine iterations on its timeline.

    Args:
        job: A started :class:`greenai.Tracker` (or anything with its ``timeline``,
            ``elapsed_s`` and ``snapshot`` API).
        on_request: Called with each finished request's :class:`RequestEnergy` when it
            settles (from the thread that calls :meth:`settle`).
        on_settled: Called once per settling pass that finished requests, with them in
            settling order, after ``on_request`` (e.g. to write them to a run store:
            :class:`greenai.serving.rows.RequestRows`).
        keep: Finished requests kept in :attr:`recent` (older ones only count in totals).
        baseline_power_w: The machine's idle draw (W), kept out of the requests' shares.
            By default the job's own (``track(baseline_s=...)``), else none.
        token_costs: ``(prefill, decode)`` weights per token (see
            :func:`~greenai.serving.attribution.attribute`).

    Raises:
        ConfigError: ``keep`` below 0 or a negative baseline.
    """

    def __init__(
        self,
        job: Any,
        *,
        on_request: Callable[[RequestEnergy], None] | None = None,
        on_settled: Callable[[list[RequestEnergy]], None] | None = None,
        keep: int = 10_000,
        baseline_power_w: float | None = None,
        token_costs: tuple[float, float] | None = None,
    ) -> None:
        if not isinstance(keep, int) or keep < 0:
            raise ConfigError(f"keep must be an int >= 0, got {keep!r}")
        if baseline_power_w is not None and not baseline_power_w >= 0:
            raise ConfigError(f"baseline_power_w must be >= 0 W, got {baseline_power_w!r}")
        self._job = job
        self._on_request = on_request
        self._on_settled = on_settled
        self._baseline_w = baseline_power_w
        self._costs = token_costs
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._open: dict[str, dict[str, Any]] = {}
        self._done: dict[str, RequestSpan] = {}
        self._iterations: list[Iteration] = []
        self._partial: dict[str, list[float]] = {}  # id -> [energy, prefill, curve±, rule±]
        self.recent: collections.deque[RequestEnergy] = collections.deque(maxlen=keep)
        self._settled_count = 0
        self._h: float | None = None
        self._last: dict[str, tuple[float, float]] = {}  # device -> (t, cumulative J)
        self._sum: dict[str, float] = collections.defaultdict(float)
        self._unc = 0.0
        self._methods: set[str] = set()
        self._rules: set[str] = set()
        self._notes: dict[str, None] = {}
        self._settle_lock = threading.Lock()

    # --- marks ---------------------------------------------------------------------------
    def now_s(self) -> float:
        """Seconds since the job started (the clock every mark uses)."""
        return float(self._job.elapsed_s)

    def begin(
        self,
        request_id: str | None = None,
        *,
        model: str | None = None,
        start_s: float | None = None,
    ) -> str:
        """A request arrives (now, or at ``start_s``); returns its id.

        Raises:
            ConfigError: The id is in flight already, or ``start_s`` is not finite.
        """
        rid = request_id if request_id is not None else f"r{next(self._ids)}"
        t = self.now_s() if start_s is None else float(start_s)
        if not math.isfinite(t):  # refused now: at settle() it would stop every request's rows
            raise ConfigError(f"request {rid!r}: start_s must be finite, got {start_s!r}")
        with self._lock:
            if rid in self._open:
                raise ConfigError(f"request {rid!r} is in flight already; ids must be unique")
            self._open[rid] = {"start_s": t, "model": model, "first_token_s": None}
        return rid

    def first_token(self, request_id: str, t_s: float | None = None) -> None:
        """The first generated token of ``request_id`` left the engine (now, or at ``t_s``).

        Raises:
            ConfigError: ``t_s`` is not finite.
        """
        t = self.now_s() if t_s is None else float(t_s)
        if not math.isfinite(t):
            raise ConfigError(f"request {request_id!r}: t_s must be finite, got {t_s!r}")
        with self._lock:
            req = self._open.get(request_id)
            if req is not None and req["first_token_s"] is None:
                req["first_token_s"] = t

    def end(
        self,
        request_id: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        status: str = "ok",
        end_s: float | None = None,
        first_tokens: int = 1,
        paced: bool = True,
        tokens: str = "counted",
        notes: tuple[str, ...] = (),
    ) -> None:
        """``request_id`` is finished (now, or at ``end_s``) with the tokens it processed.

        ``first_tokens``: generated tokens that had come by the :meth:`first_token` mark
        (a stream whose first read held several). Above 1, the mark is only the latest the
        first token can have left: it is kept as the span's ``first_token_bound_s``, the
        first token is placed by :func:`~greenai.serving.attribution.estimate_first_token`,
        and the request carries a note saying so. ``paced`` False (the tokens after that
        mark came merged too, :meth:`~greenai.serving.usage.SseCounter.paced_after_first`):
        the same, even for a first token that came alone (the server was sending late).

        ``tokens``: what the counts are, where they are not counts (a key of
        :data:`~greenai.serving.attribution.TOKEN_COUNTS`, e.g. ``"estimated"``).
        ``notes``: what else its figures or its response could not do (a proxy's "cut at
        timeout: ..."), kept on the request, each on one line (whitespace and newlines
        collapsed, so that a stored row's notes read back as given).

        Raises:
            ConfigError: The id is not in flight, or bad counts (the request stays in
                flight: end it again with good ones).
        """
        t = self.now_s() if end_s is None else float(end_s)
        with self._lock:
            req = self._open.get(request_id)
            if req is None:
                raise ConfigError(f"request {request_id!r} is not in flight; begin() it first")
            start, first = req["start_s"], req["first_token_s"]
            end = max(t, start)
            generated = _token_count(completion_tokens, request_id)
            seen = _token_count(first_tokens, request_id)
            first = None if first is None else min(max(first, start), end)
            bound: float | None = None
            if first is not None and (seen > 1 or not paced) and generated > 1:
                bound = first
                first = estimate_first_token(start, bound, end, seen, generated, paced=paced)
                notes = (_merged_note(start, (first, bound), seen, generated, paced), *notes)
            span = RequestSpan(  # checked before the request leaves _open: bad counts keep it
                request_id=request_id,
                start_s=start,
                end_s=end,
                prompt_tokens=_token_count(prompt_tokens, request_id),
                completion_tokens=generated,
                first_token_s=first,
                model=req["model"],
                status=status,
                first_token_bound_s=bound,
                notes=notes,
                tokens=tokens,
            )
            del self._open[request_id]
            self._done[request_id] = span

    def add(self, span: RequestSpan) -> None:
        """A finished request, given after the fact (times since the job started).

        Raises:
            ConfigError: Its id is known already, or it lies before what has settled.
        """
        with self._lock:
            if span.request_id in self._done or span.request_id in self._open:
                raise ConfigError(f"request {span.request_id!r} is known already")
            if self._h is not None and span.start_s < self._h:
                raise ConfigError(
                    f"request {span.request_id!r} starts at {span.start_s:.3f} s, before the"
                    f" {self._h:.3f} s already settled; add requests before settle()"
                )
            self._done[span.request_id] = span

    def iteration(
        self,
        start_s: float,
        end_s: float,
        *,
        prefill: Mapping[str, int] | None = None,
        decode: Mapping[str, int] | None = None,
    ) -> None:
        """One engine step: which requests it held and their prefill/decode tokens in it."""
        it = Iteration(start_s, end_s, dict(prefill or {}), dict(decode or {}))
        with self._lock:
            self._iterations.append(it)

    @contextmanager
    def request(
        self, request_id: str | None = None, *, model: str | None = None
    ) -> Iterator[OpenRequest]:
        """A span around handling one request; set its tokens on what it yields.

        An exception inside marks the request ``error`` (and is raised on).
        """
        rid = self.begin(request_id, model=model)
        handle = OpenRequest(self, rid)
        try:
            yield handle
        except BaseException:
            handle.status = "error"
            raise
        finally:
            self.end(
                rid,
                prompt_tokens=handle.prompt_tokens,
                completion_tokens=handle.completion_tokens,
                status=handle.status,
            )

    def settled_since(self, seen: int) -> tuple[list[RequestEnergy], int]:
        """Requests settled after the first ``seen``, and how many have settled in all.

        For consumers that poll (pass back the count each time); at most the last ``keep``
        are still there.
        """
        with self._lock:
            total = self._settled_count
            new = min(max(total - seen, 0), len(self.recent))
            return list(itertools.islice(reversed(self.recent), new))[::-1], total

    def is_open(self, request_id: str) -> bool:
        """Whether ``request_id`` has begun and not ended."""
        return request_id in self._open

    def is_known(self, request_id: str) -> bool:
        """Whether ``request_id`` is in flight or ended but not yet settled."""
        return request_id in self._open or request_id in self._done

    @property
    def in_flight(self) -> int:
        """Requests begun and not ended."""
        return len(self._open)

    # --- settling ------------------------------------------------------------------------
    def settle(self, *, final: bool = False) -> list[RequestEnergy]:
        """Charge what is final since the last pass; return the requests finished in it.

        ``final=True`` (after the job has stopped) charges up to the job's end; requests
        still open then are charged as ``unfinished`` with the tokens they were given.

        Raises:
            TrackerStateError: The job has not started.
        """
        with self._settle_lock:
            return self._settle(final)

    def _settle(self, final: bool) -> list[RequestEnergy]:
        snap = self._job.snapshot()  # settles the job's curves; its ± scales ours
        cols = self._job.timeline(
            after_s=(self._h if self._h is not None else -math.inf),
            settled=not final,
            buckets=self._h is None,
            as_frame=False,
        )
        t_all = np.asarray(cols["t_s"], dtype=float)
        if not len(t_all) and self._h is None:
            return []
        devices = np.asarray(cols["device"], dtype=object)
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in set(devices.tolist()) | set(self._last):
            sel = devices == name
            t, e = t_all[sel], np.asarray(cols["energy_j"], dtype=float)[sel]
            ok = np.isfinite(t) & np.isfinite(e)
            t, e = t[ok], e[ok]
            if name in self._last:
                t0, e0 = self._last[name]
                keep = t > t0
                t, e = np.concatenate([[t0], t[keep]]), np.concatenate([[e0], e[keep]])
            if len(t):
                curves[name] = (t, e)
        self._methods.update(str(m) for m in np.asarray(cols["method"], dtype=object).tolist())
        if not curves:
            return []
        with self._lock:
            open_starts = [r["start_s"] for r in self._open.values()]
            if final:
                for rid, req in list(self._open.items()):
                    self._open.pop(rid)
                    self._done[rid] = RequestSpan(
                        rid,
                        req["start_s"],
                        max(req["start_s"], self.now_s()),
                        model=req["model"],
                        status="unfinished",
                    )
                open_starts = []
            done = list(self._done.values())
            iterations = list(self._iterations)
        lo = self._h if self._h is not None else min(float(c[0][0]) for c in curves.values())
        hi = min(float(c[0][-1]) for c in curves.values())
        if open_starts:
            hi = min(hi, min(open_starts))
        if hi <= lo:
            return []
        grid = np.unique(
            np.concatenate(
                [c[0][(c[0] >= lo) & (c[0] <= hi)] for c in curves.values()] + [np.array([lo, hi])]
            )
        )
        total = np.zeros_like(grid)
        for name, (t, e) in curves.items():
            if len(t) == 1:
                total += e[0]
            else:
                total += np.interp(grid, t, e)
            self._last[name] = (hi, float(np.interp(hi, t, e)) if len(t) > 1 else float(e[0]))
        unc = _share_of_uncertainty(snap, float(total[-1] - total[0]))
        if len(grid) < 2:
            return []
        att = attribute(
            grid,
            total,
            done,
            iterations=iterations,
            start_s=lo,
            end_s=hi,
            baseline_power_w=self._baseline(snap),
            uncertainty_j=unc,
            method=",".join(sorted(self._methods)) or "none",
            token_costs=self._costs,
        )
        return self._fold(att, hi)

    def _fold(self, att: Attribution, hi: float) -> list[RequestEnergy]:
        finished: list[RequestEnergy] = []
        with self._lock:
            self._h = hi
            for key, value in (
                ("total_j", att.total_j),
                ("idle_j", att.idle_j),
                ("baseline_j", att.baseline_j),
            ):
                self._sum[key] += value
            self._unc += att.total_uncertainty_j
            self._notes.update(dict.fromkeys(att.notes))
            for r in att.requests:
                acc = self._partial.get(r.request_id)
                if acc is None and r.end_s <= hi:
                    out = r  # wholly in this pass (the usual case): its figures as they are
                else:
                    if acc is None:
                        acc = self._partial[r.request_id] = [0.0, 0.0, 0.0, 0.0]
                    acc[0] += r.energy_j
                    acc[1] += r.prefill_energy_j
                    acc[2] += r.curve_uncertainty_j
                    acc[3] += r.rule_uncertainty_j
                    if r.end_s > hi:
                        continue
                    energy, prefill, c_unc, r_unc = self._partial.pop(r.request_id)
                    out = dataclasses.replace(
                        r,
                        energy_j=energy,
                        prefill_energy_j=prefill,
                        decode_energy_j=energy - prefill,
                        curve_uncertainty_j=c_unc,
                        rule_uncertainty_j=r_unc,
                    )
                self._done.pop(r.request_id, None)
                energy, prefill = out.energy_j, out.prefill_energy_j
                self._rules.add(r.rule)
                self._sum["requests_j"] += energy
                self._sum["prefill_j"] += prefill
                self._sum["requests"] += 1
                self._sum["prompt_tokens"] += r.prompt_tokens
                self._sum["completion_tokens"] += r.completion_tokens
                self._count_tokens(out)
                self.recent.append(out)
                self._settled_count += 1
                finished.append(out)
            # requests that ended before the window and overlap nothing more
            for rid in [
                k for k, s in self._done.items() if s.end_s < hi and k not in self._partial
            ]:
                self._done.pop(rid)
            self._iterations = [it for it in self._iterations if it.end_s > hi]
        if self._on_request is not None:
            for out in finished:
                try:
                    self._on_request(out)
                except Exception as exc:  # a consumer's failure never loses the figures
                    self._notes[f"on_request failed: {exc!r}"] = None
        if self._on_settled is not None and finished:
            try:
                self._on_settled(list(finished))
            except Exception as exc:
                self._notes[f"on_settled failed: {exc!r}"] = None
        return finished

    def _count_tokens(self, r: RequestEnergy) -> None:
        """Add a settled request to the per-token sums where its counts are counts."""
        s = self._sum
        if r.prompt_counted:
            s["counted_prompt"] += r.prompt_tokens
            s["counted_prefill_j"] += r.prefill_energy_j
        if r.completion_counted:
            s["counted_completion"] += r.completion_tokens
            s["counted_decode_j"] += r.decode_energy_j
        if r.tokens != "counted":
            s["tokens_not_counted"] += 1

    def _baseline(self, snap: Any) -> float:
        if self._baseline_w is None:
            idle = getattr(snap, "idle_power_w", None)
            self._baseline_w = float(idle) if idle is not None else 0.0
        return self._baseline_w

    def totals(self) -> ServingTotals:
        """What has settled so far (J): requests, baseline and idle add up to the total."""
        with self._lock:
            s = self._sum
            return ServingTotals(
                start_s=0.0,
                settled_s=self._h if self._h is not None else 0.0,
                total_j=float(s["total_j"]),
                uncertainty_j=self._unc,
                requests_j=float(s["requests_j"]),
                baseline_j=float(s["baseline_j"]),
                idle_j=float(s["idle_j"]),
                requests=int(s["requests"]),
                prompt_tokens=int(s["prompt_tokens"]),
                completion_tokens=int(s["completion_tokens"]),
                prefill_j=float(s["prefill_j"]),
                decode_j=float(s["requests_j"] - s["prefill_j"]),
                method=",".join(sorted(self._methods)) or "none",
                rules=tuple(sorted(self._rules)),
                notes=tuple(self._notes),
                prefill_j_per_token=_ratio(s["counted_prefill_j"], s["counted_prompt"]),
                decode_j_per_token=_ratio(s["counted_decode_j"], s["counted_completion"]),
                tokens_not_counted=int(s["tokens_not_counted"]),
            )


def _merged_note(start: float, at: tuple[float, float], seen: int, tokens: int, paced: bool) -> str:
    first, bound = at
    placed = (
        f"placed at {first - start:.3f} s (estimate), the rule ± covers it at {bound - start:.3f} s"
    )
    if seen <= 1:  # alone, but the tokens after it came as a late backlog
        return (
            f"first token seen late: the first text came {bound - start:.3f} s after arrival,"
            f" alone, and the other {tokens - 1} generated tokens after it merged (sent"
            f" late); {placed}"
        )
    later = "" if paced else ", and the tokens after it came merged too (sent late)"
    return (
        f"first token not seen alone: the first text came {bound - start:.3f} s after arrival"
        f" with {seen} of the {tokens} generated tokens (merged){later}; {placed}"
    )


def _ratio(energy_j: float, tokens: float) -> float | None:
    return float(energy_j / tokens) if tokens else None


def _share_of_uncertainty(snap: Any, window_j: float) -> float:
    """The job's relative ± so far, applied to a window's energy (J)."""
    e, u = getattr(snap, "energy_j", None), getattr(snap, "uncertainty_j", None)
    if e is None or u is None or not e > 0:
        return 0.0
    return abs(window_j) * float(u) / float(e)
