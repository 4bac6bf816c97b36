"""``greenai demo --compress``: a residual MLP on scikit-learn's digits, compressed ≥ 10×.

The model is the kind the structured pruner used to refuse: four residual blocks
``x + b(relu(a(x)))`` between a stem and a head (about 300 k parameters, 1.2 MB). It is
trained for a few seconds on 80% of the digits, then swept with pruning, int8 and int4
quantization and pipelines of them; ``structured:0.5+int4wo`` is the ≥ 10× row. Each
compressed copy gets a short recovery fine-tuning (``finetune_fn``) whose energy counts
towards the break-even.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEMO_METHODS",
    "ResidualMLP",
    "compress_demo",
    "digits_accuracy",
    "finetune_digits",
    "trained_residual_mlp",
]

DEMO_METHODS = (
    "l1:0.5,structured:0.5,int8-dynamic,int4wo,"
    "structured:0.5+int8-dynamic,structured:0.5+int4wo,l1:0.7+int4wo"
)
"""The demo's sweep: one method of each kind and three pipelines."""


class _Block(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.a = nn.Linear(width, hidden)
        self.b = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.b(torch.relu(self.a(x)))
        return out


class ResidualMLP(nn.Module):
    """``stem → blocks × (x + b(relu(a(x)))) → head``, for 8×8 digits (64 in, 10 out).

    Args:
        width: Width of the residual stream.
        hidden: Hidden width inside each block.
        blocks: Number of residual blocks.
    """

    def __init__(self, width: int = 128, hidden: int = 256, blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Linear(64, width)
        self.blocks = nn.Sequential(*(_Block(width, hidden) for _ in range(blocks)))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, 10]`` of images ``[batch, 64]``."""
        out: torch.Tensor = self.head(self.blocks(torch.relu(self.stem(x))))
        return out


@functools.lru_cache(maxsize=1)
def _digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """80/20 split of scikit-learn's bundled digits (no download)."""
    from greenai.demo import load_digits_tensors

    x, y = load_digits_tensors()
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


def _train(model: nn.Module, epochs: int, lr: float) -> None:
    params = [p for p in model.parameters() if p.requires_grad and type(p) is nn.Parameter]
    if not params:
        return
    x, y, _, _ = _digits()
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):  # type: ignore[no-untyped-call]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    model.eval()


def trained_residual_mlp(epochs: int = 6, seed: int = 0) -> ResidualMLP:
    """The demo's :class:`ResidualMLP`, trained on 80% of digits (a few seconds on CPU)."""
    torch.manual_seed(seed)
    model = ResidualMLP()
    _train(model, epochs, 1e-3)
    return model


def digits_accuracy(model: nn.Module) -> float:
    """Accuracy of ``model`` on the 20% of digits it was not trained on."""
    _, _, x, y = _digits()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def finetune_digits(model: nn.Module) -> None:
    """Recovery: one epoch of Adam (lr 3e-4) on the training digits, in place.

    Trains the float parameters that remain: all of a pruned model, the biases of a
    quantized one (packed integer weights are not trained), nothing of int8-dynamic layers.
    """
    _train(model, 1, 3e-4)


def compress_demo(repeats: int = 5, methods: str | None = None, **options: Any) -> Any:
    """Sweep the trained :class:`ResidualMLP` on CPU with recovery fine-tuning (~a minute).

    Runs on one CPU thread (restored afterwards).

    Args:
        repeats: Fewest measured rounds (each row once per round).
        methods: Spec string (default :data:`DEMO_METHODS`).
        **options: Passed to :func:`~greenai.compress.sweep` (``devices``, ``period_s``...).

    Returns:
        The sweep's DataFrame.
    """
    from greenai.compress.sweep import sweep
    from greenai.paired import Protocol

    x = _digits()[2][:64]
    # a demo: at most 30 s of rounds, 2 s of warm-up per row (the CI budget is 2 minutes)
    options.setdefault(
        "protocol",
        Protocol(min_rounds=repeats, max_rounds=max(repeats, 20), budget_s=30.0, warmup_max_s=2.0),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model: one thread beats several on a shared machine
    try:
        report = options.get("progress")
        if report is not None:
            report("train", 0, 1)
        model = trained_residual_mlp()
        return sweep(
            model,
            methods or DEMO_METHODS,
            x,
            eval_fn=digits_accuracy,
            finetune_fn=finetune_digits,
            repeats=repeats,
            device="cpu",
            **options,
        )
    finally:
        torch.set_num_threads(threads)
