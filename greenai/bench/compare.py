"""Compare benchmark results from two machines (``greenai compare a.json b.json``).

Only like is compared with like: two documents from different suites are refused, and a
workload whose sizes or dtype differ between the two is shown as not comparable. Each
side's machine is printed, and a comparison of one machine with itself is flagged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from greenai.bench.machine import describe
from greenai.bench.suite import FORMAT
from greenai.errors import ConfigError

__all__ = ["compare", "compare_files", "load_results", "stored_run_notes"]


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``greenai bench --json`` document. Raises ConfigError if it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read benchmark results {str(path)!r}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(
            f"{str(path)!r} is not a greenai bench result (format {FORMAT}); "
            "write one with `greenai bench --json > FILE`"
        )
    return doc


def _ratio(b: float | None, a: float | None) -> float | None:
    return b / a if a and b is not None else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows comparing each workload of ``a`` and ``b``, and notes on what to beware of.

    Each row has ``workload``, ``tflops_a``, ``tflops_b``, ``speed_b_over_a``,
    ``j_per_tflop_a``, ``j_per_tflop_b``, ``energy_b_over_a`` (J/TFLOP ratio: < 1 means B
    spends less), ``j_per_sample_a``, ``j_per_sample_b``, ``methods`` and ``status``
    (``ok``, ``only in A``, ``only in B``, ``sizes differ``).

    Raises:
        ConfigError: The two come from different suites: their workloads are not the same.
    """
    if a.get("suite") != b.get("suite"):
        raise ConfigError(
            f"these results come from different suites ({a.get('suite')!r} and "
            f"{b.get('suite')!r}): their workloads and sizes differ. Run `greenai bench "
            "--suite NAME` with the same suite on both machines"
        )
    notes = [
        f"A: {describe(a.get('machine', {}))}, {a.get('device')}, {a.get('created_at')}",
        f"B: {describe(b.get('machine', {}))}, {b.get('device')}, {b.get('created_at')}",
    ]
    if a.get("machine", {}).get("fingerprint") == b.get("machine", {}).get("fingerprint"):
        notes.append("A and B come from the same machine configuration (same fingerprint)")
    rows_a = {r["workload"]: r for r in a.get("results", [])}
    rows_b = {r["workload"]: r for r in b.get("results", [])}
    rows = []
    for name in [*rows_a, *(n for n in rows_b if n not in rows_a)]:
        ra, rb = rows_a.get(name), rows_b.get(name)
        status = "ok"
        if ra is None or rb is None:
            status = "only in B" if ra is None else "only in A"
        elif (ra["params"], ra["dtype"]) != (rb["params"], rb["dtype"]):
            status = "sizes differ"
        usable = status == "ok"
        ma, mb = (ra or {}).get("methods", []), (rb or {}).get("methods", [])
        if usable and ma != mb:
            notes.append(f"{name}: energy measured by {ma} on A but {mb} on B")
        rows.append(
            {
                "workload": name,
                "tflops_a": (ra or {}).get("tflops_per_s"),
                "tflops_b": (rb or {}).get("tflops_per_s"),
                "speed_b_over_a": _ratio(rb["tflops_per_s"], ra["tflops_per_s"])
                if usable and ra and rb
                else None,
                "j_per_tflop_a": (ra or {}).get("j_per_tflop"),
                "j_per_tflop_b": (rb or {}).get("j_per_tflop"),
                "energy_b_over_a": _ratio(rb["j_per_tflop"], ra["j_per_tflop"])
                if usable and ra and rb
                else None,
                "j_per_sample_a": (ra or {}).get("j_per_sample"),
                "j_per_sample_b": (rb or {}).get("j_per_sample"),
                "methods": "/".join(",".join(m) or "-" for m in (ma, mb)),
                "status": status,
            }
        )
    if any("model" in r["methods"] for r in rows):
        notes.append("'model' energy is estimated from utilisation and a TDP table, not measured")
    return rows, notes


def compare_files(paths: list[str]) -> str:
    """The text of ``greenai compare A.json B.json``. Raises ConfigError on bad input."""
    import pandas as pd

    if len(paths) != 2:
        raise ConfigError(f"compare benchmark results two at a time; got {len(paths)} files")
    rows, notes = compare(load_results(paths[0]), load_results(paths[1]))
    frame = pd.DataFrame(rows)
    return "\n".join([*notes, frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")])


def stored_run_notes(metas: list[dict[str, Any]]) -> list[str]:
    """Warnings for ``greenai compare RUN RUN``: mixed suites, sizes or machines."""
    benches = [m.get("bench") for m in metas]
    notes = []
    suites = {x.get("suite") for x in benches if x}
    if len(suites) > 1 or (suites and None in [x and x.get("suite") for x in benches]):
        notes.append(
            f"warning: these runs mix benchmark suites {sorted(map(str, suites))} "
            "(or bench and non-bench runs): their workloads are not comparable"
        )
    prints = {m.get("machine", {}).get("fingerprint") for m in metas} - {None}
    if len(prints) > 1:
        notes.append(f"note: runs come from {len(prints)} different machines {sorted(prints)}")
    return notes
