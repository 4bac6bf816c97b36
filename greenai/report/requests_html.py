"""The HTML report's section on a serving job's requests: J/request and J/token.

Reads the run's request rows (:meth:`greenai.store.RunStore.requests`: one per settled
request, the newest kept) and shows a histogram of the energy per request and a summary:
J/request (median, mean ± its ±), J/token of prefill (prompt) and decode (generated), each
with its ±, and the attribution rule that split the power curve among the requests.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from greenai.report.frames import format_number
from greenai.serving.attribution import COMPLETION_COUNTED, PROMPT_COUNTED

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["NOTE_KIND_CHARS", "RULES", "note_kind", "request_summary_rows", "requests_figure"]

RULES = {
    "spans": "by tokens in flight: each stretch of the power curve is split among the requests"
    " open in it by the tokens each processed there (the request-level estimate of a proxy)",
    "iterations": "by the engine's batches: each iteration's energy is split among the"
    " requests in it, prefill and decode tokens weighted by their fitted cost",
}
"""What each attribution rule (the ``rule`` column) means, as the report states it."""


def _pm(value: float, plus_minus: float, unit: str) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{format_number(value)} ± {format_number(plus_minus)} {unit}"


def request_summary_rows(requests: pd.DataFrame) -> list[tuple[str, str]]:
    """(figure, value) rows of the requests' summary; energies in J, ± about 95%.

    A request's ± is shared between its prefill and decode parts in proportion to their
    energies; the ± of a sum adds the requests' ± (they share the curve's error, so they are
    not independent): an upper bound, said so. J/token takes only the requests whose count
    of that part is a count (``tokens``: a proxy's estimates stay out, and a row says how
    many requests had them; rows stored without ``tokens`` count as counted).
    """
    r = requests[requests["energy_j"].notna()]
    n = len(r)
    energy = r["energy_j"].astype(float)
    unc = r["uncertainty_j"].astype(float).fillna(0.0)
    total, total_u = float(energy.sum()), float(unc.sum())
    with_energy = energy.abs() > 0
    share = (r["prefill_energy_j"].astype(float) / energy.where(with_energy)).fillna(0.0)
    tokens = r["tokens"].fillna("counted") if "tokens" in r else None
    p_in = tokens.isin(PROMPT_COUNTED) if tokens is not None else energy.notna()
    d_in = tokens.isin(COMPLETION_COUNTED) if tokens is not None else p_in
    prefill_u = float((unc * share)[p_in].sum())
    decode_u = float((unc * (1 - share))[d_in].sum())
    prompt = int(r["prompt_tokens"][p_in].sum())
    generated = int(r["completion_tokens"][d_in].sum())
    prefill_j = float(r["prefill_energy_j"][p_in].sum())
    decode_j = float(r["decode_energy_j"][d_in].sum())
    not_counted = int((~(p_in & d_in)).sum())
    rules = sorted(str(x) for x in r["rule"].dropna().unique())
    methods = sorted(str(x) for x in r["method"].dropna().unique())
    statuses = r["status"].value_counts()
    rows = [
        ("requests", f"{n} charged (of {len(requests)} stored)"),
        ("status", ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "—"),
        ("energy, all requests", _pm(total, total_u, "J") + " (± added: an upper bound)"),
        ("J/request, median", _pm(float(energy.median()), float(unc.median()), "J")
         if n else "—"),
        ("J/request, mean", _pm(total / n, total_u / n, "J") if n else "—"),
        ("J/token, prefill (prompt)",
         _pm(prefill_j / prompt, prefill_u / prompt, "J") + f" over {prompt} tokens"
         if prompt else "no prompt tokens counted"),
        ("J/token, decode (generated)",
         _pm(decode_j / generated, decode_u / generated, "J")
         + f" over {generated} tokens"
         if generated else "no generated tokens counted"),
        ("how measured", ", ".join(methods) or "—"),
    ]  # fmt: skip
    if not_counted:
        rows.insert(
            -1,
            (
                "token counts",
                f"{not_counted} request(s) estimated or unknown (no"
                " usage from the server): left out of J/token where so",
            ),
        )
    noted = _notes_row(requests)
    if noted is not None:
        rows.insert(-1, noted)
    for rule in rules:
        rows.append((f"attribution rule: {rule}", RULES.get(rule, "as the serving meter named it")))
    return rows


NOTE_KIND_CHARS = 40
"""Longest kind a note's prefix may name; a longer prefix is no kind (``other``)."""


def note_kind(note: str) -> str:
    """A request note's kind: its text before the first ``": "`` (``"cut at timeout"``).

    A colon inside a word (a URL's ``http://``, a port) does not end the kind. A note with
    no such prefix, or whose prefix runs past a ``"; "`` or over :data:`NOTE_KIND_CHARS`
    characters (free text, not a kind), is ``"other"``.
    """
    head, sep, _ = note.partition(": ")
    head = head.strip()
    if not sep or not head or "; " in head or len(head) > NOTE_KIND_CHARS:
        return "other"
    return head


def _notes_row(requests: pd.DataFrame) -> tuple[str, str] | None:
    """How many requests have notes, by kind (:func:`note_kind`).

    None where no stored row has a note and every row's notes are known. Rows stored before
    the store kept notes (``notes`` empty) are counted as not known, never as "no notes".
    """
    if "notes" not in requests:
        return None
    stored = requests["notes"]
    unknown = int(stored.isna().sum())
    kinds: dict[str, int] = {}
    noted = 0
    for text in stored.dropna():
        lines = [line for line in str(text).split("\n") if line]
        noted += bool(lines)
        for kind in dict.fromkeys(map(note_kind, lines)):
            kinds[kind] = kinds.get(kind, 0) + 1
    if not noted and not unknown:
        return None
    parts = [f"{noted} request(s) with notes"]
    parts += [f"{kind}: {n}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
    if unknown:
        parts.append(f"{unknown} stored before notes were kept (not known)")
    where = " (each request's own: `greenai export RUN`, its requests table)"
    return ("request notes", "; ".join(parts) + where)


def requests_figure(requests: pd.DataFrame) -> Figure:
    """A histogram of the energy per request (J), split by status where several."""
    from greenai.report.plots import _figure

    fig, ax = _figure(10.0, 3.6)
    r = requests[requests["energy_j"].notna()]
    energy = r["energy_j"].astype(float)
    if not len(energy):
        ax.text(0.5, 0.5, "no request was charged", ha="center", va="center")
        ax.set_axis_off()
        return fig
    bins = min(40, max(5, int(math.sqrt(len(energy)))))
    lo, hi = float(energy.min()), float(energy.max())
    edges = [lo + (hi - lo) * k / bins for k in range(bins + 1)] if hi > lo else bins
    groups = [(str(s), energy[r["status"] == s]) for s in r["status"].dropna().unique()]
    if len(groups) > 1:
        ax.hist([g for _, g in groups], bins=edges, stacked=True, label=[s for s, _ in groups])
        ax.legend(title="status")
    else:
        ax.hist(energy, bins=edges, color="#2e7d32")
    ax.axvline(float(energy.median()), color="#1d2329", linestyle="--", linewidth=1)
    ax.set_xlabel("energy per request (J); dashed: median")
    ax.set_ylabel("requests")
    ax.set_title(f"J/request over {len(energy)} requests")
    return fig
