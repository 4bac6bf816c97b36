"""Compare benchmark results from two machines (``greenai compare a.json b.json``).

Only like is compared with like: two documents from different suites are refused, and a
workload whose sizes or dtype differ between the two is shown as not comparable. Each
side's machine is printed, and a comparison of one machine with itself is flagged.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from greenai.bench.machine import describe
from greenai.bench.suite import FORMAT
from greenai.errors import ConfigError
from greenai.report.compare import Comparison, Side, Value, change, method_notes
from greenai.windows import t_quantile_975

__all__ = [
    "bench_comparisons",
    "compare",
    "compare_files",
    "load_results",
    "round_noise",
    "run_side",
    "stored_run_notes",
]


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
    (``ok``, ``only in A``, ``only in B``, ``failed in A`` (or B, or A+B), ``sizes differ``).

    Raises:
        ConfigError: The two come from different suites (their workloads are not the same),
            or a document is malformed (a result row without ``workload``, ``params``,
            ``dtype``, ``tflops_per_s`` or ``j_per_tflop``, or with a non-numeric figure).
    """
    if a.get("suite") != b.get("suite"):
        raise ConfigError(
            f"these results come from different suites ({a.get('suite')!r} and "
            f"{b.get('suite')!r}): their workloads and sizes differ. Run `greenai bench "
            "--suite NAME` with the same suite on both machines"
        )
    machine_a, machine_b = _machine(a, "A"), _machine(b, "B")
    notes = [
        f"A: {describe(machine_a)}, {a.get('device')}, {a.get('created_at')}",
        f"B: {describe(machine_b)}, {b.get('device')}, {b.get('created_at')}",
    ]
    print_a, print_b = machine_a.get("fingerprint"), machine_b.get("fingerprint")
    if not print_a or not print_b:
        unknown = " and ".join(x for x, f in (("A", print_a), ("B", print_b)) if not f)
        notes.append(
            f"machine unknown for {unknown} (no machine fingerprint in the file): "
            "cannot tell whether A and B come from the same machine"
        )
    elif print_a == print_b:
        notes.append("A and B come from the same machine configuration (same fingerprint)")
    rows_a, rows_b = _rows(a, "A"), _rows(b, "B")
    rows: list[dict[str, Any]] = []
    for name in [*rows_a, *(n for n in rows_b if n not in rows_a)]:
        ra, rb = rows_a.get(name), rows_b.get(name)
        status = "ok"
        if ra is None or rb is None:
            status = "only in B" if ra is None else "only in A"
        elif "failed" in (ra.get("status"), rb.get("status")):
            status = "failed in " + "+".join(
                x for x, r in (("A", ra), ("B", rb)) if r.get("status") == "failed"
            )
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


_ROW_KEYS = ("workload", "params", "dtype", "tflops_per_s", "j_per_tflop")


def _machine(doc: dict[str, Any], side: str) -> dict[str, Any]:
    machine = doc.get("machine") or {}
    if not isinstance(machine, dict):
        raise ConfigError(f"{side}'s 'machine' is a {type(machine).__name__}, not an object")
    gpus = machine.get("gpus") or []
    if not isinstance(gpus, list) or not all(isinstance(g, dict) for g in gpus):
        raise ConfigError(f"{side}'s machine 'gpus' must be a list of objects, got {gpus!r}")
    return machine


def _rows(doc: dict[str, Any], side: str) -> dict[str, dict[str, Any]]:
    """``results`` of ``doc`` by workload name. Raises ConfigError on a malformed document."""
    results = doc.get("results", [])
    hint = "write results with `greenai bench --json > FILE` and do not edit them"
    if not isinstance(results, list):
        raise ConfigError(f"{side}'s 'results' is a {type(results).__name__}, not a list; {hint}")
    rows: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(results):
        if not isinstance(row, dict):
            raise ConfigError(
                f"{side}'s result {i} is a {type(row).__name__}, not an object; {hint}"
            )
        missing = [k for k in _ROW_KEYS if k not in row]
        if missing:
            raise ConfigError(f"{side}'s result {i} lacks {missing}; {hint}")
        if not isinstance(row["workload"], str):
            raise ConfigError(f"{side}'s result {i} has workload {row['workload']!r}; {hint}")
        for key in ("tflops_per_s", "j_per_tflop"):
            value = row[key]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ConfigError(f"{side}'s result {i} has {key} {value!r}, not a number; {hint}")
        methods = row.get("methods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ConfigError(f"{side}'s result {i} has methods {methods!r}, not names; {hint}")
        if row["workload"] in rows:
            raise ConfigError(f"{side} has workload {row['workload']!r} twice; {hint}")
        rows[row["workload"]] = row
    return rows


def compare_files(paths: list[str], fmt: str = "text") -> str:
    """The output of ``greenai compare A.json B.json`` (``fmt``: text, json, csv or html).

    Raises:
        ConfigError: Not two files, a file that is not a bench result, or bad input.
    """
    from greenai.report.compare import comparisons_csv, comparisons_json, render_comparisons

    if len(paths) != 2:
        raise ConfigError(f"compare benchmark results two at a time; got {len(paths)} files")
    comparisons, notes = bench_comparisons(paths, load_results(paths[0]), load_results(paths[1]))
    if fmt == "json":
        return comparisons_json(comparisons, notes)
    if fmt == "csv":
        return comparisons_csv(comparisons)
    if fmt == "html":
        from greenai.report.compare_html import render_comparisons_html

        return render_comparisons_html(comparisons, notes, title="greenai compare (bench)")
    return render_comparisons(comparisons, notes)


def run_side(label: str, run: Any) -> Side:
    """The :class:`Side` of a stored run (:class:`greenai.store.StoredRun`)."""
    machine = run.meta.get("machine") or {}
    where = ""
    if isinstance(machine, dict) and machine:
        where = describe(machine)
    m = run.measurement
    return Side(
        label=label,
        id=run.id,
        name=run.name,
        status=run.status,
        methods=() if m is None else tuple(m.methods),
        host=run.host or "",
        machine=where,
        command=run.command or str(run.meta.get("command") or ""),
        meta=dict(run.meta),
    )


def stored_run_notes(
    metas: list[dict[str, Any]],
    ids: list[str] | None = None,
    *,
    allow_mixed: bool = False,
) -> list[str]:
    """Checks for ``greenai compare RUN RUN``: mixed suites are refused, mixed machines noted.

    Args:
        metas: Each run's ``meta`` (``meta["bench"]["suite"]`` for runs of ``greenai bench``).
        ids: The runs' ids, named in the messages (1, 2, ... when None).
        allow_mixed: Compare runs of different suites (or bench and other runs) anyway,
            with a warning instead of an error.

    Returns:
        Lines to print before the table.

    Raises:
        ConfigError: The runs mix benchmark suites, or bench and non-bench runs, and
            ``allow_mixed`` is false.
    """
    names = ids if ids is not None else [str(i + 1) for i in range(len(metas))]
    suites = [(m.get("bench") or {}).get("suite") for m in metas]
    benches = [bool(m.get("bench")) for m in metas]
    notes = []
    if any(benches) and (not all(benches) or len(set(suites)) > 1):
        which = ", ".join(
            f"{n} ({f'suite {s}' if b else 'not a bench run'})"
            for n, s, b in zip(names, suites, benches, strict=True)
        )
        if not allow_mixed:
            raise ConfigError(
                f"these runs mix benchmark suites: {which}; their workloads are not "
                "comparable. Compare runs of one suite, or pass --allow-mixed to see them anyway"
            )
        notes.append(f"warning: these runs mix benchmark suites: {which}")
    prints = {(m.get("machine") or {}).get("fingerprint") for m in metas} - {None}
    if len(prints) > 1:
        machines = sorted(map(str, prints))
        notes.append(f"note: runs come from {len(prints)} different machines {machines}")
    return notes


def _bench_values(row: dict[str, Any] | None) -> dict[str, Value]:
    """A bench row's J/sample, J/TFLOP (with the row's relative uncertainty), time per step.

    The energy figures' ± is the larger of the sensor's and the rounds' spread, plus the
    part of the sensor's that is a shared scale error (:func:`_shared_share`: a model's, a
    power sensor's), kept apart so that it can cancel against a run on the same devices.
    """
    if row is None:
        absent: Value = (None, None, "workload not run")
        return dict.fromkeys(("j_per_sample", "j_per_tflop", "time_per_step"), absent)
    energy, u = _number(row, "energy_j"), _number(row, "uncertainty_j")
    rel = u / energy if energy and u is not None else None
    energy_noise = round_noise(row.get("round_j_per_step"))
    if rel is not None:
        shared = _shared_share(row) or 0.0
        # the larger of the sensor's independent error and the rounds' spread, + the shared
        rel = shared + max(rel - shared, energy_noise or 0.0)
    why = row.get("reason") or "no energy source measured"

    def with_u(key: str) -> Value:
        value = _number(row, key)
        if value is None:
            return (None, None, why)
        return (value, None if rel is None else value * rel, "")

    duration, steps = _number(row, "duration_s"), _number(row, "steps")
    per_step = duration / steps if duration is not None and steps else None
    time_noise = round_noise(row.get("round_s_per_step"))
    # a file without rounds (written before they existed): a ratio, but no claim on noise
    time_u = None if per_step is None or time_noise is None else per_step * time_noise
    return {
        "j_per_sample": with_u("j_per_sample"),
        "j_per_tflop": with_u("j_per_tflop"),
        "time_per_step": (per_step, time_u, row.get("reason") or "no steps"),
    }


def _shared_share(row: dict[str, Any] | None) -> float | None:
    """The share of a row's energy that is its devices' shared scale error (0..its ±).

    None where the row does not say (``energy_shared_uncertainty_j``: documents written
    before greenai recorded it). J/sample and J/TFLOP scale with the energy: the same share.
    """
    if row is None:
        return None
    energy, u = _number(row, "energy_j"), _number(row, "uncertainty_j")
    shared = _number(row, "energy_shared_uncertainty_j")
    if shared is None or not energy or u is None:
        return None
    return min(max(shared, 0.0), u) / energy


def round_noise(values: Any) -> float | None:
    """The relative 95% half-width of the mean of a row's per-round figures (None: unknown).

    Student's t over the rounds (:mod:`greenai.paired`'s rule); None with fewer than 2.
    """
    if not isinstance(values, list) or len(values) < 2:
        return None
    xs = [float(x) for x in values if isinstance(x, int | float) and x > 0]
    if len(xs) < 2:
        return None
    mean = statistics.fmean(xs)
    return t_quantile_975(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)) / mean


def _number(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(
            f"result {row.get('workload')!r} has {key} {value!r}, not a number; write results "
            "with `greenai bench --json > FILE` and do not edit them"
        )
    return float(value)


def _bench_side(label: str, path: str, doc: dict[str, Any]) -> Side:
    machine = doc.get("machine") or {}
    methods = sorted({m for r in doc.get("results", []) for m in r.get("methods") or []})
    return Side(
        label=label,
        id=path,
        name=f"greenai bench --suite {doc.get('suite')}",
        status="",
        methods=tuple(methods),
        host=str(machine.get("hostname") or ""),
        machine=describe(machine) if machine else "",
        command="",
        meta={"device": doc.get("device"), "created_at": doc.get("created_at")},
    )


def bench_comparisons(
    paths: list[str], a: dict[str, Any], b: dict[str, Any]
) -> tuple[list[Comparison], list[str]]:
    """B relative to A per workload (J/sample, J/TFLOP, time per step), and the notes.

    Workloads that are not comparable (only on one side, failed, sizes differ) keep their
    row with each figure marked not comparable and the reason.

    Raises:
        ConfigError: As :func:`compare`.
    """
    rows, notes = compare(a, b)
    side_a, side_b = _bench_side("A", paths[0], a), _bench_side("B", paths[1], b)
    by_a, by_b = _rows(a, "A"), _rows(b, "B")
    fingerprints = [(d.get("machine") or {}).get("fingerprint") for d in (a, b)]
    same = bool(fingerprints[0]) and fingerprints[0] == fingerprints[1]
    devices_a, devices_b = _devices(a, "A"), _devices(b, "B")
    out, cancelled = [], []
    for row in rows:
        name = row["workload"]
        ra, rb = by_a.get(name), by_b.get(name)
        va, vb = _bench_values(ra), _bench_values(rb)
        why = "" if row["status"] == "ok" else row["status"]
        shared = 0.0
        if same and not why:
            shared = _shared_rel(ra, rb, devices_a, devices_b)
            cancelled += [shared] if shared > 0 else []
        changes = tuple(
            change(k, va[k], vb[k], not_comparable=why,
                   shared_rel=0.0 if k == "time_per_step" else shared)
            for k in va
        )  # fmt: skip
        out.append(Comparison(side_a, side_b, changes, (), subject=name))
    for label, doc in (("A", a), ("B", b)):
        ok = [r for r in doc.get("results", []) if r.get("status", "ok") == "ok"]
        if ok and not any(isinstance(r.get("round_s_per_step"), list) for r in ok):
            notes.append(
                f"{label} has no per-round figures (written before greenai measured rounds): "
                "its time per step carries no noise estimate, so no time change is claimed"
            )
    notes = [n for n in notes if not n.startswith(("A: ", "B: ", "'model'"))]
    return out, notes + method_notes(
        side_a.methods,
        side_b.methods,
        same_machine=same,
        shared_rel=min(cancelled, default=0.0),
        devices_known=devices_a is not None and devices_b is not None,
    )


Devices = frozenset[tuple[str, str, str]]


def _devices(doc: dict[str, Any], side: str) -> Devices | None:
    """The (name, kind, method) of each device a document (or a row) measured; None: unsaid.

    Raises:
        ConfigError: ``devices`` is not a list of objects with those three names.
    """
    devices = doc.get("devices")
    if devices is None:
        return None
    keys = ("name", "kind", "method")
    if not isinstance(devices, list) or not all(
        isinstance(d, dict) and all(isinstance(d.get(k), str) for k in keys) for d in devices
    ):
        raise ConfigError(
            f"{side}'s 'devices' must be a list of objects with name, kind and method, got "
            f"{devices!r}; write results with `greenai bench --json > FILE` and do not edit them"
        )
    return frozenset(tuple(d[k] for k in keys) for d in devices)


def _shared_rel(
    ra: dict[str, Any] | None,
    rb: dict[str, Any] | None,
    devices_a: Devices | None,
    devices_b: Devices | None,
) -> float:
    """The relative scale error two rows of one machine share (0 when not certainly shared).

    :func:`greenai.report.compare.shared_scale_rel`'s rule: the same devices measured the
    same way (each row's own list where both have one, else the documents'), and the smaller
    of the two sides' shares.
    """
    if ra is not None and rb is not None and "devices" in ra and "devices" in rb:
        devices_a, devices_b = _devices(ra, "A"), _devices(rb, "B")
    share_a, share_b = _shared_share(ra), _shared_share(rb)
    if not devices_a or devices_a != devices_b or share_a is None or share_b is None:
        return 0.0
    return max(0.0, min(share_a, share_b))
