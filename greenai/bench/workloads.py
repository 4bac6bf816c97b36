"""The standard workloads: GEMMs, a conv-net and a transformer training step, inference.

Each :class:`Workload` builds, on a torch device, a :class:`Prepared` step (one call of the
timed loop) with its FLOPs and samples. GEMM FLOPs are exactly ``2·M·N·K``; the conv-net and
transformer FLOPs come from :func:`greenai.flops.count_flops` (forward + backward for the
training steps; the optimizer's elementwise update counts 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from greenai.errors import ConfigError

__all__ = [
    "DTYPES",
    "Prepared",
    "Workload",
    "convnet_train",
    "gemm",
    "inference",
    "transformer",
    "transformer_model",
]

DTYPES = ("fp32", "fp16", "bf16")
"""Compute dtypes a workload may ask for."""


@dataclass(frozen=True)
class Prepared:
    """A workload ready to run on one device.

    Attributes:
        step: One iteration of the timed loop (asynchronous on CUDA: sync after the loop).
        flops_per_step: Nominal FLOPs of one step (1 multiply-add = 2 FLOPs).
        samples_per_step: Samples one step processes (rows of A for a GEMM: one input vector
            through a K×N layer; a batch for the models).
    """

    step: Callable[[], None]
    flops_per_step: float
    samples_per_step: int


@dataclass(frozen=True)
class Workload:
    """One standard workload: its name, what it is, and how to build it.

    Attributes:
        name: Unique within a suite, e.g. ``"gemm-bf16-4096"`` (stored as ``bench/<name>``).
        kind: ``gemm``, ``convnet-train``, ``transformer-train`` or ``inference``.
        dtype: ``fp32``, ``fp16`` or ``bf16`` (the models use autocast for 16-bit dtypes).
        build: Makes the :class:`Prepared` step on a torch device (``"cpu"``, ``"cuda:0"``).
        params: The sizes that define it (shown and compared; JSON values).
    """

    name: str
    kind: str
    dtype: str
    build: Callable[[Any], Prepared] = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)


def torch_dtype(name: str) -> Any:
    """The torch dtype for ``fp32``/``fp16``/``bf16``. Raises ConfigError for others."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name not in table:
        raise ConfigError(f"dtype must be one of {list(DTYPES)}; got {name!r}")
    return table[name]


def gemm(n: int, dtype: str = "fp32", *, m: int | None = None, k: int | None = None) -> Workload:
    """``C = A @ B`` with A ``[M, K]`` and B ``[K, N]`` (square ``n`` unless ``m``/``k``)."""
    rows, inner = m or n, k or n
    torch_dtype(dtype)

    def build(device: Any) -> Prepared:
        import torch

        dt = torch_dtype(dtype)
        gen = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(rows, inner, generator=gen).to(device=device, dtype=dt)
        b = torch.randn(inner, n, generator=gen).to(device=device, dtype=dt)
        out = torch.empty(rows, n, device=device, dtype=dt)

        def step() -> None:
            torch.matmul(a, b, out=out)

        return Prepared(step, 2.0 * rows * n * inner, rows)

    size = str(n) if rows == inner == n else f"{rows}x{n}x{inner}"
    params = {"m": rows, "n": n, "k": inner}
    return Workload(f"gemm-{dtype}-{size}", "gemm", dtype, build, params)


def convnet_train(batch: int, image: int = 32, width: int = 32, dtype: str = "fp32") -> Workload:
    """One SGD step of a 4-conv network on ``batch`` random ``3×image×image`` images."""
    torch_dtype(dtype)

    def build(device: Any) -> Prepared:
        import torch
        from torch import nn

        torch.manual_seed(0)
        w = width
        model = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w, 10),
        ).to(device)
        x = torch.randn(batch, 3, image, image, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        return _train_step(model, x, y, dtype, device)

    params = {"batch": batch, "image": image, "width": width}
    return Workload(f"convnet-train-{dtype}-b{batch}", "convnet-train", dtype, build, params)


def transformer_model(vocab: int, d_model: int, layers: int, heads: int) -> Any:
    """The small encoder language model the transformer and inference workloads run.

    An embedding, ``layers`` post-norm encoder layers of ``heads`` heads (feed-forward
    4 × ``d_model``, no dropout) and a linear head back to ``vocab``; unseeded (the
    workloads seed torch before making it).
    """
    from torch import nn

    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            layer = nn.TransformerEncoderLayer(
                d_model, heads, 4 * d_model, dropout=0.0, batch_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, vocab)

        def forward(self, tokens: Any) -> Any:
            return self.head(self.blocks(self.embed(tokens)))

    return TinyLM()


def transformer(
    batch: int,
    seq: int = 64,
    d_model: int = 128,
    layers: int = 2,
    heads: int = 4,
    vocab: int = 1000,
    dtype: str = "fp32",
) -> Workload:
    """One AdamW step of a small encoder language model on ``batch`` random sequences."""
    torch_dtype(dtype)

    def build(device: Any) -> Prepared:
        import torch

        model, x = _lm_and_tokens(device, vocab, d_model, layers, heads, batch, seq)
        y = torch.randint(0, vocab, (batch * seq,), device=device)
        return _train_step(model, x, y, dtype, device, flatten=True)

    params = {"batch": batch, "seq": seq, "d_model": d_model, "layers": layers, "heads": heads}
    return Workload(
        f"transformer-train-{dtype}-b{batch}", "transformer-train", dtype, build, params
    )


def inference(
    batch: int,
    seq: int = 64,
    d_model: int = 128,
    layers: int = 2,
    heads: int = 4,
    vocab: int = 1000,
    dtype: str = "fp32",
) -> Workload:
    """A forward pass of the transformer of :func:`transformer` in inference mode."""
    torch_dtype(dtype)

    def build(device: Any) -> Prepared:
        import torch

        from greenai.flops import count_flops

        model, x = _lm_and_tokens(device, vocab, d_model, layers, heads, batch, seq)
        model.eval()
        flops = count_flops(model, x, fake=True).nominal
        autocast = _autocast(dtype, device)

        def step() -> None:
            with torch.inference_mode(), autocast():
                model(x)

        return Prepared(step, float(flops), batch)

    params = {"batch": batch, "seq": seq, "d_model": d_model, "layers": layers, "heads": heads}
    return Workload(f"inference-{dtype}-b{batch}", "inference", dtype, build, params)


def _lm_and_tokens(
    device: Any, vocab: int, d_model: int, layers: int, heads: int, batch: int, seq: int
) -> tuple[Any, Any]:
    """The seeded language model of :func:`transformer` on ``device`` and a batch of tokens."""
    import torch

    torch.manual_seed(0)
    model = transformer_model(vocab, d_model, layers, heads).to(device)
    return model, torch.randint(0, vocab, (batch, seq), device=device)


def _train_step(
    model: Any, x: Any, y: Any, dtype: str, device: Any, *, flatten: bool = False
) -> Prepared:
    import torch

    from greenai.flops import count_flops

    flops = count_flops(model, x, backward=True, fake=True).nominal
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    autocast = _autocast(dtype, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
            if flatten:
                out = out.reshape(-1, out.shape[-1])
            loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()

    return Prepared(step, float(flops), int(x.shape[0]))


def _autocast(dtype: str, device: Any) -> Callable[[], Any]:
    """An autocast context for 16-bit dtypes, a no-op context for fp32."""
    import contextlib

    import torch

    if dtype == "fp32":
        return contextlib.nullcontext
    kind = torch.device(device).type
    dt = torch_dtype(dtype)
    return lambda: torch.autocast(kind, dtype=dt)
