"""Process-scope attribution on a real NVIDIA GPU (docs/devices.md#machine-or-process-scope).

Two worker processes share GPU 0: a heavy one (matmuls back to back) and a light one (the
same matmul, then sleeps, about a third of the time busy). The parent tracks the GPU in
machine scope and, nested on the same device objects, each worker's process scope. It
checks that:

- the driver keeps per-process utilisation samples (else the split is by compute context);
- the nested trackers share one NvidiaGPU without closing it under each other;
- heavy + light <= machine, and the heavy worker is charged more than the light one.

    python benchmarks/gpu_attribution.py --seconds 10 --out attribution.md

Exits 0 with a message on a machine without an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

WORKER = """
import sys, time, torch
duty, seconds = float(sys.argv[1]), float(sys.argv[2])
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
torch.cuda.synchronize()
print("ready", flush=True)
end = time.time() + seconds
while time.time() < end:
    t0 = time.time()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    busy = time.time() - t0
    if duty < 1:
        time.sleep(busy * (1 - duty) / duty)
"""


def main() -> int:
    """Run the check; print and optionally write a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args()

    import greenai
    from greenai.devices.attribution import Attributed, apply_scope
    from greenai.devices.nvidia import discover_gpus

    gpus = discover_gpus()[:1]
    if not gpus:
        print("no NVIDIA GPU: nothing to check")
        return 0
    workers = {
        name: subprocess.Popen(
            [sys.executable, "-c", WORKER, str(duty), str(args.seconds + 5)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, duty in (("heavy", 1.0), ("light", 0.33))
    }
    for proc in workers.values():
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": CUDA context and tensors in place
    heavy_devices = apply_scope(gpus, "process", pid=workers["heavy"].pid)
    light_devices = apply_scope(gpus, "process", pid=workers["light"].pid)
    with (
        greenai.track("machine", devices=gpus) as machine,
        greenai.track("heavy", devices=heavy_devices) as heavy,
        greenai.track("light", devices=light_devices) as light,
    ):
        time.sleep(args.seconds)
    for proc in workers.values():
        proc.wait()
    energy = {
        "machine": machine.result.energy_j or 0.0,
        "heavy": heavy.result.energy_j or 0.0,
        "light": light.result.energy_j or 0.0,
    }
    attributed = heavy_devices[0]
    assert isinstance(attributed, Attributed)
    checks = {
        "per-process samples": getattr(attributed.share, "mode", "?") == "utilisation",
        "heavy + light <= machine": energy["heavy"] + energy["light"] <= energy["machine"] * 1.01,
        "heavy > light": energy["heavy"] > energy["light"],
        "gpu closed once": gpus[0].open_count == 0,
    }
    lines = [
        f"GPU: {gpus[0].model}, {args.seconds:g} s, {time.strftime('%Y-%m-%d')}",
        "",
        "| scope | energy (J) | avg power (W) |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {e:.1f} | {e / machine.result.duration_s:.1f} |"
            for name, e in energy.items()
        ),
        "",
        *(f"- {name}: {'ok' if ok else 'FAILED'}" for name, ok in checks.items()),
    ]
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"energy_j": energy, "checks": checks}))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
