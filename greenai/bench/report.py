"""Tables of benchmark results: plain text for the terminal, markdown for docs."""

from __future__ import annotations

from typing import Any

from greenai.bench.machine import describe

__all__ = ["results_table"]

_COLUMNS = (
    ("workload", "workload", "{}"),
    ("steps", "steps", "{}"),
    ("duration_s", "s", "{:.2f}"),
    ("tflops_per_s", "TFLOP/s", "{:.4g}"),
    ("avg_power_w", "W", "{:.1f}"),
    ("j_per_tflop", "J/TFLOP", "{:.4g}"),
    ("j_per_sample", "J/sample", "{:.3g}"),
    ("uncertainty_j", "± J", "{:.2g}"),
    ("methods", "method", "{}"),
)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value) or "-"
    return fmt.format(value)


def results_table(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """The results of ``greenai bench`` as a table, headed by the suite and machine."""
    columns = list(_COLUMNS)
    if any(r.get("gpu_j_per_tflop") is not None for r in doc["results"]):
        columns.insert(6, ("gpu_j_per_tflop", "GPU J/TFLOP", "{:.4g}"))
    head = [c[1] for c in columns]
    body = [[_cell(r, key, fmt) for key, _, fmt in columns] for r in doc["results"]]
    title = (
        f"suite {doc['suite']} on {doc['device']}: {describe(doc['machine'])}, {doc['created_at']}"
    )
    failed = [
        f"failed: {r['workload']}: {r.get('reason') or '?'}"
        for r in doc["results"]
        if r.get("status") == "failed"
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join([title, "", *lines, *(["", *failed] if failed else [])])
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    fmt_row = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt_row.format(*head), *(fmt_row.format(*r) for r in body)]
    if any("model" in r.get("methods", []) for r in doc["results"]):
        lines.append("method 'model': estimated from utilisation and a TDP table, not measured")
    return "\n".join([title, *lines, *failed])
