"""``greenai demo``: train a small real model on a real dataset, tracked end to end."""

from __future__ import annotations

import functools
from typing import Any

from greenai.errors import ConfigError
from greenai.measurement import Measurement
from greenai.progress import progress
from greenai.tracker import track


def load_digits_tensors() -> tuple[object, object]:
    """scikit-learn's bundled digits (1,797 8×8 images), as float and label tensors."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ConfigError(
            "the demo trains on scikit-learn's digits: pip install 'greenai[demo]'"
        ) from exc
    import torch

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    return x, y


def build_mlp(hidden: int = 256) -> Any:
    """The demo's model: an MLP for 8×8 digits (64 inputs, 10 classes)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )


@functools.lru_cache(maxsize=1)
def _digits_split(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    import torch

    x, y = load_digits_tensors()
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


def digits_mlp(epochs: int = 20, seed: int = 0) -> Any:
    """An MLP trained (untracked, about a second on CPU) on 80% of digits, in eval mode.

    For ``greenai compress greenai.demo:digits_mlp --input-shape 64,64``.
    """
    import torch

    torch.manual_seed(seed)
    x, y, _, _ = _digits_split()
    model = build_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):  # type: ignore[no-untyped-call]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    return model.eval()


def digits_accuracy(model: Any) -> float:
    """Accuracy of ``model`` on the 20% of digits that :func:`digits_mlp` does not train on."""
    import torch

    _, _, x, y = _digits_split()
    with torch.inference_mode():
        return float((model(x).argmax(dim=1) == y).float().mean())


def compress_demo(repeats: int = 5, methods: str | None = None) -> Any:
    """``greenai demo --compress``: see :func:`greenai.compress.demo.compress_demo`."""
    from greenai.compress.demo import compress_demo as run

    return run(repeats=repeats, methods=methods)


def run_demo(
    epochs: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    country: str | None = "WORLD",
    pue: float = 1.0,
    store: str | bool | None = True,
) -> tuple[Measurement, str | None]:
    """Train an MLP on digits for ``epochs`` epochs, on the GPU if there is one.

    FLOPs are counted once per batch shape; CO2e uses ``country``'s grid (codecarbon's world
    average by default). Returns the result and its run id when ``store`` is not False.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    import torch

    torch.manual_seed(seed)
    x, y = load_digits_tensors()
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = x.to(device), y.to(device)
    model = build_mlp().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    store = True if store is None else store
    n_batches = epochs * -(-len(x) // batch_size)
    with (
        track("demo-digits-mlp", country=country, pue=pue, store=store) as job,
        progress(n_batches, "training on digits") as advance,
    ):
        for _ in range(epochs):
            perm = torch.randperm(len(x), device=device)
            for i in range(0, len(x), batch_size):
                idx = perm[i : i + batch_size]
                job.count_flops(model, x[idx], backward=True)
                with job.phase("forward"):
                    loss = loss_fn(model(x[idx]), y[idx])
                with job.phase("backward"):
                    opt.zero_grad()
                    loss.backward()
                with job.phase("optimizer"):
                    opt.step()
                job.step(samples=len(idx))
                advance(1)
        if device == "cuda":
            torch.cuda.synchronize()
    return job.result, job.run_id
