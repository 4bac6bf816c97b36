"""Shared GPUs on a real NVIDIA GPU: what NVML gives per process, MIG, and a PID namespace.

For docs/cluster.md#containers-and-shared-gpus. On GPU 0 it reports:

- whether the driver keeps per-process SM utilisation samples and lists compute processes
  (the data process scope charges time-sliced and MPS GPUs by);
- MIG mode, and for each MIG instance its SM share of the GPU (what a ``MigInstance`` is
  charged);
- one worker busy on the GPU for a few seconds, tracked in process scope twice: from the
  host, and from inside ``unshare --pid --fork --mount-proc`` (the estimate by device-file
  holders), beside the GPU's machine-scope energy.

    python benchmarks/gpu_shared.py --seconds 8 --out shared.md

Exits 0 with a message on a machine without an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

TRACKED = r"""
import json, sys, time
import greenai, torch
from greenai.devices.namespaces import in_pid_namespace
from greenai.devices.nvidia import discover_gpus
seconds = float(sys.argv[1])
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
torch.cuda.synchronize()
gpu = discover_gpus()[:1]
with greenai.track("shared", devices=gpu, scope="process") as job:
    end = time.time() + seconds
    while time.time() < end:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()
d = job.result.devices[0]
print(json.dumps({"ns": in_pid_namespace(), "energy_j": d.energy_j,
                  "uncertainty_j": d.uncertainty_j, "method": d.method}))
"""


def nvml_facts() -> dict[str, object]:
    """What NVML offers on GPU 0 for per-process attribution and MIG."""
    import pynvml

    from greenai.devices.mig import sm_share

    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        facts: dict[str, object] = {"gpu": pynvml.nvmlDeviceGetName(h)}
        try:
            pynvml.nvmlDeviceGetProcessUtilization(h, 0)
            facts["per_process_utilisation"] = "yes"
        except pynvml.NVMLError as err:
            facts["per_process_utilisation"] = str(err)
        facts["compute_processes"] = len(pynvml.nvmlDeviceGetComputeRunningProcesses(h))
        try:
            current, _ = pynvml.nvmlDeviceGetMigMode(h)
            facts["mig_mode"] = bool(current)
        except pynvml.NVMLError as err:
            facts["mig_mode"] = str(err)
        shares = []
        if facts["mig_mode"] is True:
            for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(h)):
                try:
                    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, slot)
                except pynvml.NVMLError:
                    continue
                shares.append((pynvml.nvmlDeviceGetUUID(mig), round(sm_share(pynvml, h, mig), 3)))
        facts["mig_instances"] = shares
        return facts
    finally:
        pynvml.nvmlShutdown()


def tracked(seconds: float, namespace: bool) -> dict[str, object]:
    """Run the tracked worker, on the host or in its own PID namespace."""
    cmd = [sys.executable, "-c", TRACKED, str(seconds)]
    if namespace:
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    """Run the checks; print and optionally write a markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", help="write the markdown report here")
    args = parser.parse_args()
    from greenai.devices.nvidia import discover_gpus

    if not discover_gpus():
        print("no NVIDIA GPU: nothing to check")
        return 0
    lines = ["| check | result |", "|---|---|"]
    for key, value in nvml_facts().items():
        lines.append(f"| {key} | {value} |")
    lines.append(f"| process scope, host | {tracked(args.seconds, False)} |")
    if shutil.which("unshare"):
        lines.append(f"| process scope, own PID namespace | {tracked(args.seconds, True)} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
