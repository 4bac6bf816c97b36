"""``greenai bench``: run a suite without pytest, store each workload as a run, print a table."""

from __future__ import annotations

import argparse
import json

from greenai.bench.suite import SUITES

__all__ = ["add_arguments", "bench"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``greenai bench``."""
    parser.add_argument(
        "--suite",
        choices=sorted(SUITES),
        help="smoke (seconds), quick (the CPU default), full (the GPU default)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--only", action="append", default=[], help="run the workloads whose name contains this"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--store", help="run store: an SQLite file or a postgresql:// URL (default: $GREENAI_STORE)"
    )
    parser.add_argument("--no-store", action="store_true", help="do not store the runs")
    parser.add_argument(
        "--check-gpu",
        action="store_true",
        help="check the bf16 GEMM against a bare matmul loop and the GPU's energy counter",
    )


def bench(args: argparse.Namespace) -> int:
    """Run ``greenai bench``; exit 1 when a workload or ``--check-gpu`` fails, 2 on bad arguments.

    A workload that raises is a ``failed`` row with the error (the others still run).
    """
    from greenai.bench.report import results_table
    from greenai.bench.suite import get_suite, resolve_device, run_suite
    from greenai.errors import ConfigError

    device = resolve_device(args.device)
    store = None if args.no_store else (args.store or True)
    if args.check_gpu:
        if not device.startswith("cuda"):
            raise ConfigError("--check-gpu needs an NVIDIA GPU (--device cuda); none is here")
        return _check_gpu(device, store, args.json)
    suite = get_suite(args.suite, device)
    from greenai.progress import steps

    names = {x.name for x in suite.workloads}
    total = sum(1 for n in names if not args.only or any(o in n for o in args.only))
    with steps(total, f"bench suite {suite.name} on {device}") as bar:

        def progress(text: str) -> None:  # a workload's name as it starts, or a failure
            if text in names:
                bar.begin(text)
            else:
                bar.note(text)

        doc = run_suite(suite, device=device, store=store, only=args.only, progress=progress)
    print(json.dumps(doc, indent=2) if args.json else results_table(doc))
    return 1 if any(r.get("status") == "failed" for r in doc["results"]) else 0


def _check_gpu(device: str, store: object, as_json: bool) -> int:
    from greenai.bench.gpu_check import check_gemm
    from greenai.bench.machine import describe, machine_info

    rows, ok = check_gemm(device, store=store)
    if as_json:
        print(json.dumps({"machine": machine_info(), "rows": rows, "passed": ok}, indent=2))
    else:
        print(describe(machine_info()))
        for r in rows:
            print(
                f"bf16 {r['size']}³: {r['tflops_per_s']:.1f} TFLOP/s = "
                f"{r['throughput_ratio']:.1%} of bare matmul ({r['bare_tflops_per_s']:.1f}); "
                f"{r['j_per_tflop']} J/TFLOP vs counter {r['counter_j_per_tflop']} "
                f"({r['energy_error']:+.2%}) [{r['method']}] " + ("PASS" if r["passed"] else "FAIL")
            )
    return 0 if ok else 1
