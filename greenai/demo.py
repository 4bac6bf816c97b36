"""``greenai demo``: train a small real model on a real dataset, tracked end to end."""

from __future__ import annotations

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
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    ).to(device)
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
