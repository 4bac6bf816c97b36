"""``greenai bench serve``: energy per request and per token across a load sweep.

For each level (a concurrency, or a request rate) the load runs through a measuring proxy
(:mod:`greenai.serving.proxy`) for a warm-up (excluded) and a steady window. Only requests
that start after the warm-up and end inside the window count. Per level: J/request (and Wh
per 1,000 queries), J/token for prefill and decode, tokens/s, latency p50/p99, each with a
± (energy: the requests' own ± from the curve and the rule, plus twice the standard error
of the mean; latency: a bootstrap 95% interval). J/token takes only the requests whose
token counts of that part are counts: one whose server sent no ``usage`` (estimated
counts) stays out of it, and the level's ``tokens_not_counted`` says how many. The JSON
document is a ``greenai bench`` document (suite ``serve``), so ``greenai compare a.json
b.json`` compares two of them level by level (J/request as J/sample).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from greenai.serving.attribution import RequestEnergy
from greenai.serving.loadgen import Sample

__all__ = ["FORMAT", "level_row", "pareto", "render_html", "render_table", "serve_document"]

FORMAT = "greenai-bench/1"


def _bootstrap_half_width(values: np.ndarray, q: float, seed: int = 0) -> float:
    if len(values) < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    picks = rng.choice(values, size=(200, len(values)), replace=True)
    est = np.quantile(picks, q, axis=1)
    lo, hi = np.quantile(est, [0.025, 0.975])
    return float(hi - lo) / 2


def level_row(
    name: str,
    params: dict[str, Any],
    samples: Sequence[Sample],
    settled: dict[str, RequestEnergy],
    window_s: float,
) -> dict[str, Any]:
    """The figures of one level from its steady samples and their settled energies."""
    steady = [s for s in samples if s.steady]
    ok = [s for s in steady if s.status == 200 and s.request_id in settled]
    rows = [settled[s.request_id] for s in ok if s.request_id is not None]
    n = len(rows)
    lat = np.array([s.end_s - s.start_s for s in ok], dtype=float)
    out: dict[str, Any] = {
        "workload": name,
        "params": params,
        "dtype": "",
        "tflops_per_s": None,
        "j_per_tflop": None,
        "status": "ok" if n else "failed",
        "requests": n,
        "errors": sum(1 for s in steady if s.status != 200),
        "steps": n,
        "duration_s": window_s,
        "methods": sorted({r.method for r in rows}),
        "rules": sorted({r.rule for r in rows}),
    }
    if not n:
        out["reason"] = "no request finished inside the steady window"
        return out
    e = np.array([r.energy_j for r in rows])
    u = np.array([r.uncertainty_j for r in rows])
    sem = float(np.std(e, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    j_req = float(e.mean())
    j_req_u = math.hypot(float(u.mean()), 2 * sem)
    prompt = sum(r.prompt_tokens for r in rows)
    gen = sum(r.completion_tokens for r in rows)

    def per_token(part: str, count: str, counted: str) -> tuple[float | None, float | None]:
        """J/token of one part over the requests whose count of it is a count."""
        these = [r for r in rows if getattr(r, counted)]
        tokens = sum(getattr(r, count) for r in these)
        if not tokens:
            return None, None
        energy = sum(getattr(r, part) for r in these)
        unc = sum(r.uncertainty_j * abs(getattr(r, part)) / r.energy_j for r in these if r.energy_j)
        return energy / tokens, unc / tokens

    pre, pre_u = per_token("prefill_energy_j", "prompt_tokens", "prompt_counted")
    dec, dec_u = per_token("decode_energy_j", "completion_tokens", "completion_counted")
    not_counted = sum(1 for r in rows if r.tokens != "counted")
    if not_counted:
        out["tokens_not_counted"] = not_counted  # estimates: out of J/token, in the sums
    out.update(
        energy_j=float(e.sum()),
        uncertainty_j=float(u.sum()),
        j_per_sample=j_req,
        j_per_request=j_req,
        j_per_request_uncertainty=j_req_u,
        wh_per_1000_queries=j_req * 1000 / 3600,
        wh_per_1000_queries_uncertainty=j_req_u * 1000 / 3600,
        prefill_j_per_token=pre,
        prefill_j_per_token_uncertainty=pre_u,
        decode_j_per_token=dec,
        decode_j_per_token_uncertainty=dec_u,
        prompt_tokens=prompt,
        completion_tokens=gen,
        tokens_per_s=gen / window_s if window_s > 0 else None,
        requests_per_s=n / window_s if window_s > 0 else None,
        latency_p50_s=float(np.quantile(lat, 0.5)),
        latency_p50_uncertainty_s=_bootstrap_half_width(lat, 0.5),
        latency_p99_s=float(np.quantile(lat, 0.99)),
        latency_p99_uncertainty_s=_bootstrap_half_width(lat, 0.99),
    )
    return out


def serve_document(
    rows: list[dict[str, Any]],
    *,
    machine: dict[str, Any],
    server: str,
    model: str,
    notes: list[str],
    devices: list[dict[str, str]] | None = None,
    shared_rel: float | None = None,
) -> dict[str, Any]:
    """The JSON document (a ``greenai bench`` document with suite ``serve``).

    Args:
        rows: The levels' rows (:func:`level_row`); those with an energy gain the shared
            part of their ± where ``devices`` and ``shared_rel`` are given.
        machine: :func:`greenai.bench.machine.machine_info`.
        server: The upstream's URL.
        model: The model served.
        notes: What the figures could not do, and how they were measured.
        devices: Each device the sweep's job measured (``name``, ``kind``, ``method``), as
            ``greenai bench`` documents record them; None: not known (not written).
        shared_rel: The share of the job's energy that its devices' shared scale error
            makes up (:func:`greenai.bench.suite.shared_rel`): each level's
            ``energy_shared_uncertainty_j`` is that share of its energy (the requests'
            energies scale with the devices' readings), so that ``greenai compare`` cancels
            it between two documents of one machine and the same devices.
    """
    if devices is not None:
        for row in rows:
            row["devices"] = devices
            if shared_rel is not None and row.get("energy_j") is not None:
                row["energy_shared_uncertainty_j"] = shared_rel * abs(row["energy_j"])
    doc: dict[str, Any] = {
        "format": FORMAT,
        "suite": "serve",
        "device": server,
        "model": model,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "results": rows,
        "notes": notes,
    }
    if devices is not None:
        doc["devices"] = devices
    return doc


def pareto(rows: Sequence[dict[str, Any]], x: str, y: str) -> list[bool]:
    """Rows no other row beats on both ``x`` and ``y`` (lower is better on both)."""
    pts = [(r.get(x), r.get(y)) for r in rows]
    out = []
    for i, (a, b) in enumerate(pts):
        if a is None or b is None:
            out.append(False)
            continue
        beaten = any(
            c is not None and d is not None and c <= a and d <= b and (c < a or d < b)
            for j, (c, d) in enumerate(pts)
            if j != i
        )
        out.append(not beaten)
    return out


_COLUMNS = (
    ("level", "workload", "{}"),
    ("req", "requests", "{}"),
    ("J/request", "j_per_request", "{:.4g}"),
    ("Wh/1k q", "wh_per_1000_queries", "{:.3g}"),
    ("prefill J/tok", "prefill_j_per_token", "{:.3g}"),
    ("decode J/tok", "decode_j_per_token", "{:.3g}"),
    ("tok/s", "tokens_per_s", "{:.1f}"),
    ("p50 s", "latency_p50_s", "{:.3f}"),
    ("p99 s", "latency_p99_s", "{:.3f}"),
)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    text = fmt.format(value)
    u = row.get(f"{key}_uncertainty") or row.get(key.replace("_s", "_uncertainty_s"))
    if isinstance(u, float) and math.isfinite(u) and key != "workload":
        text += " ± " + fmt.format(u).lstrip()
    return text


def render_table(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """The levels as a text (or Markdown) table, with the notes under it."""
    head = [c[0] for c in _COLUMNS]
    body = [[_cell(r, key, fmt) for _, key, fmt in _COLUMNS] for r in doc["results"]]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    return "\n".join(lines)


def render_html(doc: dict[str, Any]) -> str:
    """A self-contained page: the table and the energy-vs-latency Pareto plot."""
    rows = doc["results"]
    front = pareto(rows, "latency_p50_s", "j_per_request")
    img = ""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r, best in zip(rows, front, strict=True):
            if r.get("j_per_request") is None:
                continue
            ax.errorbar(
                r["latency_p50_s"],
                r["j_per_request"],
                xerr=r.get("latency_p50_uncertainty_s") or 0,
                yerr=r.get("j_per_request_uncertainty") or 0,
                fmt="o",
                color="tab:green" if best else "tab:gray",
            )
            ax.annotate(r["workload"].split("/", 1)[-1], (r["latency_p50_s"], r["j_per_request"]))
        pts = sorted(
            (r["latency_p50_s"], r["j_per_request"]) for r, b in zip(rows, front, strict=True) if b
        )
        if pts:
            ax.plot(*zip(*pts, strict=True), "--", color="tab:green", label="Pareto front")
            ax.legend()
        ax.set_xlabel("latency p50 (s)")
        ax.set_ylabel("energy per request (J)")
        ax.set_title(f"{doc.get('model')}: energy vs latency")
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        img = f'<img alt="energy vs latency" src="data:image/png;base64,{data}">'
    except ImportError:  # matplotlib is a dependency; a broken install loses the plot only
        img = "<p>(matplotlib unavailable: no plot)</p>"
    head = "".join(f"<th>{html.escape(c[0])}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(r, key, fmt))}</td>" for _, key, fmt in _COLUMNS)
        + "</tr>"
        for r in rows
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in doc.get("notes", []))
    machine = doc.get("machine") or {}
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>greenai bench serve</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        f"<h1>Serving benchmark: {html.escape(str(doc.get('model')))}</h1>"
        f"<p>{html.escape(str(doc.get('created_at')))} on "
        f"{html.escape(str(machine.get('cpu_model') or ''))}"
        f" {html.escape(str(machine.get('gpu_model') or ''))}</p>"
        f"<table><tr>{head}</tr>{body}</table>{img}<ul>{notes}</ul></body></html>"
    )
