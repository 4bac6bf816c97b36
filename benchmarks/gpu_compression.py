"""Compression sweep on a real NVIDIA GPU: a bf16 MLP at batch 16 and at batch 8192.

Run on a machine with an NVIDIA GPU, PyTorch with CUDA and nvidia-ml-py (torchao too, for
its rows: ``pip install 'greenai[torchao]'``)::

    PYTHONPATH=. python benchmarks/gpu_compression.py --out gpu-compression.md

By its settings (16 rows of about 12 s) it should take four to five minutes. On CUDA
device 0 it builds a bf16 MLP (4 Linear layers of 4096×4096 with ReLU, then 4096→1024),
and for each batch size runs
:func:`greenai.compress.sweep` with: L1 pruning 50% (masks removed and attached),
structured 50% (Torch-Pruning), dynamic int8 (CPU-only: a skipped row), torchao int8
weight-only, torchao float8 dynamic, 2:4 semi-structured sparsity, and the pipelines
structured 50% + torchao int8 weight-only and structured 50% + 2:4 (with ``--lowbit``,
optimum-quanto int4 weight-only alone and after structured 50%). Energy is the GPU's alone (its NVML
counter; the CPU and memory models are left out), 5 windows of at least 2 s per row.
Accuracy is top-1 agreement with the uncompressed model on 2048 fixed random inputs (the
model is untrained: agreement measures fidelity, not task accuracy).

Writes the markdown tables to stdout and to ``--out`` (default ``$OUT/compression-gpu.md``
when ``OUT`` is set, else ``./gpu-compression.md``), the full tables as CSV and one HTML
report per batch size beside it. Exits with status 2 when there is no usable NVIDIA GPU.

``--selftest`` runs the same script on the CPU with a small MLP and a simulated GPU
(:class:`greenai.testing.FakeGPU`), and checks that every row ran or says why it did not.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

METHODS = (
    "l1:0.5,l1-masked:0.5,structured:0.5,int8-dynamic,torchao-int8wo,torchao-fp8,sparse24,"
    "structured:0.5+torchao-int8wo,structured:0.5+sparse24"
)
LOWBIT = "int4wo,structured:0.5+int4wo"
"""With ``--lowbit``: optimum-quanto int4 rows. On CUDA, quanto compiles its CUDA kernels
(nvcc, several minutes) the first time it unpacks an int4 weight: off by default."""
BATCHES = (16, 8192)


def build_mlp(width: int, depth: int, classes: int, dtype: torch.dtype) -> nn.Module:
    """``depth`` Linear(width, width)+ReLU blocks, then Linear(width, classes)."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers).to(dtype).eval()


class Agreement:
    """``eval_fn``: share of inputs whose top-1 class matches the first model evaluated."""

    def __init__(self, inputs: torch.Tensor) -> None:
        self.inputs = inputs
        self.reference: torch.Tensor | None = None

    def __call__(self, model: nn.Module) -> float:
        """Top-1 agreement in [0, 1] (the first call, the baseline, defines the reference)."""
        x = self.inputs.to(next(iter(model.state_dict().values())).device)
        top1 = torch.cat([model(chunk).argmax(dim=1) for chunk in x.split(512)])
        if self.reference is None:
            self.reference = top1
        return float((top1 == self.reference).float().mean())


def run(
    *,
    device: str,
    width: int,
    depth: int,
    batches: tuple[int, ...],
    devices: list[Any],
    methods: str = METHODS,
    **options: Any,
) -> dict[int, Any]:
    """One sweep per batch size; returns the frames by batch size."""
    from greenai.compress import sweep

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = build_mlp(width, depth, 1024 if device == "cuda" else 16, dtype).to(device)
    frames = {}
    for batch in batches:
        x = torch.randn(batch, width, dtype=dtype, device=device)
        eval_fn = Agreement(torch.randn(2048, width, dtype=dtype, device=device))
        frames[batch] = sweep(
            model, methods, x, eval_fn=eval_fn, device=device, devices=devices, **options
        )
    return frames


def report(frames: dict[int, Any], header: list[str], out: Path) -> str:
    """Markdown of every sweep; CSV and HTML files beside ``out``."""
    from greenai.report.compression import export_compression, render_compression_markdown

    parts = [*header, ""]
    for batch, frame in frames.items():
        parts.append(render_compression_markdown(frame, title=f"Batch {batch}"))
        frame.to_csv(out.with_name(f"{out.stem}-batch{batch}.csv"), index=False)
        export_compression(frame, out.with_name(f"{out.stem}-batch{batch}.html"))
    text = "\n".join(parts)
    out.write_text(text, encoding="utf-8")
    return text


def _header(device_name: str) -> list[str]:
    try:
        import torchao

        ao = f"torchao {torchao.__version__}"
    except ImportError:
        ao = "torchao not installed"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# Compression sweep on {device_name}",
        "",
        f"{now}; torch {torch.__version__}, {ao}, Python {platform.python_version()}.",
    ]


def selftest() -> int:
    """The whole script on the CPU with a simulated GPU; 0 when every row is accounted for."""
    import tempfile

    from greenai.testing import FakeGPU

    torch.set_num_threads(1)
    fake = FakeGPU(power_w=300.0, update_period_s=0.01)
    frames = run(
        device="cpu",
        width=64,
        depth=2,
        batches=(16, 256),
        devices=[fake],
        methods=f"{METHODS},{LOWBIT}",
        repeats=2,
        period_s=0.01,
        min_window_s=0.05,
        warmup_s=0.01,
        latency_s=0.01,
    )
    with tempfile.TemporaryDirectory() as tmp:
        text = report(frames, _header("a simulated GPU (selftest)"), Path(tmp) / "sweep.md")
        written = sorted(p.name for p in Path(tmp).iterdir())
    problems = []
    for batch, frame in frames.items():
        for row in frame.to_dict("records"):
            if row["status"] == "ok" and not row["energy_per_inference_j"] > 0:
                problems.append(f"batch {batch}, {row['label']}: no energy")
            if row["status"] != "ok" and not row["reason"]:
                problems.append(f"batch {batch}, {row['label']}: skipped without a reason")
        if frame.iloc[0]["accuracy"] != 1.0:
            problems.append(f"batch {batch}: the baseline does not agree with itself")
    if len(written) != 5 or "## Batch 256" not in text:
        problems.append(f"report files: {written}")
    for p in problems:
        print(f"selftest problem: {p}")
    print("selftest passed" if not problems else "selftest FAILED")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Run the GPU sweep (or ``--selftest``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(os.environ.get("OUT", ".")) / (
        "compression-gpu.md" if "OUT" in os.environ else "gpu-compression.md"
    )
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-window", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--selftest", action="store_true")
    parser.add_argument("--lowbit", action="store_true", help=f"also {LOWBIT} (see LOWBIT)")
    args = parser.parse_args(argv)
    if args.selftest:
        return selftest()
    from greenai.devices.discovery import discover

    gpus = [d for d in discover(rapl=False, models=False) if d.kind == "gpu"][:1]
    if not torch.cuda.is_available() or not gpus:
        print("gpu_compression: needs CUDA and an NVIDIA GPU readable by NVML", file=sys.stderr)
        return 2
    frames = run(
        device="cuda",
        width=args.width,
        depth=args.depth,
        batches=BATCHES,
        devices=gpus,
        methods=f"{METHODS},{LOWBIT}" if args.lowbit else METHODS,
        repeats=args.repeats,
        min_window_s=args.min_window,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(report(frames, _header(torch.cuda.get_device_name(0)), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
