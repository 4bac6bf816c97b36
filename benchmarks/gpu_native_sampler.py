"""The native sampling loop on a real NVIDIA GPU: the NVML path, its jitter and its cost.

Needs an NVIDIA GPU and a built ``greenai._native`` (``pip install .`` with a compiler).
For each loop (C, Python twin) and rate (100 Hz, 1 kHz) it samples GPU 0 for a few
seconds while the main thread runs Python-bound work (and, with ``--load``, GPU matmuls),
and prints a markdown table: interval jitter p50/p99, thread CPU per second, ticks skipped,
and a consistency check of the NVML readings (mean instant power against the energy
counter's average power over the window, and the loop's first counter read against a pynvml
read just before it)::

    python benchmarks/gpu_native_sampler.py --seconds 5 --load --out gpu-native.md

``--lib PATH`` points both loops at another NVML library (the tests run the script against
their fake one; pynvml is then not consulted).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from greenai.errors import DeviceUnavailableError
from greenai.sampling import native_py
from greenai.sampling.native import RECORD_DTYPE, SamplingLoop


def _loops() -> dict[str, type[SamplingLoop]]:
    loops: dict[str, type[SamplingLoop]] = {}
    try:
        from greenai import _native

        loops["c"] = _native.Loop
    except ImportError:
        print("greenai._native is not built: only the Python twin is measured", file=sys.stderr)
    loops["python"] = native_py.Loop
    return loops


def _busy(load: bool) -> Callable[[], None]:
    """Python-bound work for the main thread, plus GPU matmuls with ``load``."""
    if load:
        import torch

        a = torch.randn(4096, 4096, device="cuda")

        def gpu_and_python() -> None:
            (a @ a).sum().item()
            sum(i * i for i in range(2000))

        return gpu_and_python
    return lambda: sum(i * i for i in range(20000)) and None


def _pynvml_energy_j(lib: str | None) -> Callable[[], float] | None:
    if lib is not None:
        return None
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0


def measure(
    cls: type[SamplingLoop], rate_hz: int, seconds: float, lib: str | None, work: Callable[[], None]
) -> dict[str, float]:
    """Sample GPU 0 at ``rate_hz`` for ``seconds`` while ``work`` runs; return the figures."""
    period_ns = 1_000_000_000 // rate_hz
    loop = cls(period_ns)
    loop.add_nvml(0, power="instant", energy_period_ns=100_000_000, lib=lib)
    reference = _pynvml_energy_j(lib)
    chunks = []
    e0 = reference() if reference else float("nan")
    loop.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        work()
        chunks.append(loop.drain())
    loop.stop()
    wall_s = time.perf_counter() - t0
    chunks.append(loop.drain())
    stats = loop.stats()
    loop.close()
    rec = np.frombuffer(b"".join(chunks), dtype=RECORD_DTYPE)
    ok = rec[rec["status"] == 0]
    dev = np.abs(np.diff(ok["t_ns"]) - period_ns) / 1e3
    energy = ok[np.isfinite(ok["energy_j"])]
    span_s = (energy["t_ns"][-1] - energy["t_ns"][0]) * 1e-9 if len(energy) > 1 else float("nan")
    counter_w = (energy["energy_j"][-1] - energy["energy_j"][0]) / span_s
    return {
        "jitter_p50_us": float(np.percentile(dev, 50)),
        "jitter_p99_us": float(np.percentile(dev, 99)),
        "cpu_ms_per_s": stats["cpu_ns"] / 1e6 / wall_s,
        "missed": stats["missed"],
        "failed_reads": int((rec["status"] != 0).sum()),
        "instant_w": float(np.mean(ok["power_w"])),
        "counter_w": float(counter_w),
        # The loop's first counter read comes right after pynvml's: same counter, same unit,
        # so this is >= 0 and about power x the few ms between the two reads.
        "first_read_minus_pynvml_j": float(energy["energy_j"][0] - e0),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every loop at 100 Hz and 1 kHz and print (or write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--load", action="store_true", help="also run matmuls on the GPU")
    parser.add_argument("--lib", default=None, help="NVML library to load instead of the driver's")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    work = _busy(args.load)
    lines = [
        "| loop | rate | jitter p50 (µs) | jitter p99 (µs) | CPU (ms/s) | skipped ticks "
        "| failed reads | instant power (W) | counter power (W) | first read − pynvml (J) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cls in _loops().items():
        for rate in (100, 1000):
            try:
                r = measure(cls, rate, args.seconds, args.lib, work)
            except DeviceUnavailableError as exc:
                print(f"gpu_native_sampler: no usable NVIDIA GPU here: {exc}", file=sys.stderr)
                return 2
            lines.append(
                f"| {name} | {rate} Hz | {r['jitter_p50_us']:.1f} | {r['jitter_p99_us']:.1f} "
                f"| {r['cpu_ms_per_s']:.2f} | {r['missed']:.0f} | {r['failed_reads']} "
                f"| {r['instant_w']:.1f} | {r['counter_w']:.1f} "
                f"| {r['first_read_minus_pynvml_j']:.3f} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
