"""``greenai demo``: train a small real model on a real dataset, tracked end to end."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from greenai.clock import SYSTEM_CLOCK, Clock
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
    threads = torch.get_num_threads()
    # batches of 64 on a small MLP: with torch's default threads each op waits on wake-ups
    # (18-24 s on a busy 2-core machine, against 0.2 s on one thread)
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(64):  # type: ignore[no-untyped-call]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def digits_accuracy(model: Any) -> float:
    """Accuracy of ``model`` on the 20% of digits that :func:`digits_mlp` does not train on."""
    import torch

    _, _, x, y = _digits_split()
    # no_grad, not inference_mode: low-bit weights (quanto) later run through autograd
    # Functions that inference tensors break (a sweep's eval_fn runs before its windows)
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


DEMO_EPOCHS = 24
"""Epochs of ``greenai demo``: about 15 s on two CPU cores."""
QUICK_EPOCHS = 3
"""Epochs of ``greenai demo --quick``: a few seconds."""


def build_cnn(width: int = 96) -> Any:
    """The demo's model: a small CNN for 8×8 digits (input ``(N, 1, 8, 8)``, 10 logits).

    Two 3×3 convolutions (``width`` and ``2 * width`` channels), a 2×2 max-pool to 4×4, and
    a two-layer classifier head; about 0.56 M parameters at ``width=96``.
    """
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(width, 2 * width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * width * 16, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )


def _shift(images: Any, generator: Any) -> Any:
    """Each ``(N, 1, 8, 8)`` image moved by up to one pixel each way (zero fill)."""
    import torch

    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 8, dx : dx + 8]


@dataclass(frozen=True)
class EpochResult:
    """One epoch of the demo: how the model learned, and what the epoch drew.

    ``energy_j`` and ``uncertainty_j`` (J, about 95% coverage) cover the epoch's training and
    evaluation, by ``methods``; None when no energy source was measured, or when the epoch
    ended more than the tracker's full-resolution history (10 minutes) before the run did;
    ``note`` then says which.
    """

    epoch: int
    train_loss: float
    test_accuracy: float
    duration_s: float
    samples: int
    energy_j: float | None = None
    uncertainty_j: float | None = None
    methods: tuple[str, ...] = ()
    note: str = ""

    @property
    def j_per_sample(self) -> float | None:
        """Energy per training sample of the epoch (J); None without energy."""
        return None if self.energy_j is None else self.energy_j / self.samples


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` returns: the run's Measurement, its stored id, and each epoch."""

    measurement: Measurement
    run_id: str | None
    epochs: tuple[EpochResult, ...]


def run_demo(
    epochs: int = DEMO_EPOCHS,
    seed: int = 0,
    batch_size: int = 32,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    command: str = "greenai.demo.run_demo()",
    **options: Any,
) -> DemoResult:
    """Train :func:`build_cnn` on 80% of digits and test it on the rest, tracked.

    Each epoch is a ``train`` phase (with ``forward``, ``backward`` and ``optimizer`` inside
    it, one ``job.step`` per batch) then an ``eval`` phase on the held-out 20%. Batches are
    shifted by up to a pixel (augmentation). FLOPs are counted once per batch shape; CO2e uses
    ``country``'s grid (codecarbon's world average by default). Runs on the GPU if torch sees
    one.

    Args:
        epochs: Epochs to train (>= 1).
        seed: Seed of the weights, the batches' order and the augmentation (the held-out
            20% is the same for every seed).
        batch_size: Training batch size (>= 1).
        on_epoch: Called after each epoch with its loss and accuracy (its energy is known only
            when the run stops, and is in the returned epochs).
        command: What started the demo, kept in the stored run's meta.
        **options: The tracker's options (:class:`~greenai.options.TrackOptions`:
            ``devices``, ``clock``, which also marks epochs, ``pue``...); the demo's own
            defaults are ``country="WORLD"`` (None: no CO2e) and ``store=True`` (False: do
            not store).

    Returns:
        The Measurement, the run id (None when not stored) and one EpochResult per epoch.

    Raises:
        ConfigError: ``epochs`` or ``batch_size`` below 1, or scikit-learn missing.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    import torch

    from greenai.bench.machine import machine_info

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y, x_test, y_test = _digits_split()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = x.view(-1, 1, 8, 8).to(device), y.to(device)
    x_test, y_test = x_test.view(-1, 1, 8, 8).to(device), y_test.to(device)
    model = build_cnn().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    options = {"country": "WORLD", **options}
    if options.get("store") is None:
        options["store"] = True
    clock: Clock = options.get("clock") or SYSTEM_CLOCK
    batches = -(-len(x) // batch_size)
    learned: list[EpochResult] = []
    bounds: list[tuple[float, float]] = []
    with (
        track(
            "demo-digits-cnn",
            **options,
            meta={
                "command": command,
                "model": "CNN (greenai.demo.build_cnn)",
                "dataset": "sklearn digits",
                "epochs": epochs,
                "seed": seed,
                "machine": machine_info(),
            },
        ) as job,
        progress(epochs * batches, "training a CNN on digits") as advance,
    ):
        from greenai.integrations.figures import FlopCounter
        from greenai.integrations.learning import LearningLog

        count, learning = FlopCounter(), LearningLog()  # as the Trainer callback does
        for epoch in range(1, epochs + 1):
            t0 = clock.now()
            losses = []
            model.train()
            with job.phase("train"):
                perm = torch.randperm(len(x), generator=generator).to(device)
                for i in range(0, len(x), batch_size):
                    idx = perm[i : i + batch_size]
                    xb = _shift(x[idx], generator)
                    failed = count(job, model, (xb,), {}, backward=True)  # new shapes apart
                    if failed is not None:
                        raise failed
                    with job.phase("forward"):
                        loss = loss_fn(model(xb), y[idx])
                    with job.phase("backward"):
                        opt.zero_grad()
                        loss.backward()
                    with job.phase("optimizer"):
                        opt.step()
                    losses.append(float(loss.detach()))
                    job.step(samples=len(idx))
                    advance(1)
            model.eval()
            with job.phase("eval", in_steps=False):  # charged to eval, not to the next step
                job.count_flops(model, x_test)
                with torch.inference_mode():
                    accuracy = float((model(x_test).argmax(dim=1) == y_test).float().mean())
            if device == "cuda":
                torch.cuda.synchronize()
            t1 = clock.now()
            bounds.append((t0, t1))
            result = EpochResult(epoch, sum(losses) / len(losses), accuracy, t1 - t0, len(x))
            learned.append(result)
            learning.note(job.steps, epoch, loss=result.train_loss, accuracy=accuracy)
            learning.publish(job)  # the stored run's report draws them too
            if on_epoch is not None:
                on_epoch(result)
    return DemoResult(job.result, job.run_id, tuple(_with_energy(job, learned, bounds)))


def _with_energy(
    job: Any, learned: list[EpochResult], bounds: list[tuple[float, float]]
) -> list[EpochResult]:
    """``learned`` with each epoch's energy, integrated over its bounds after the run."""
    from greenai.timeline import RETENTION_S

    m: Measurement = job.result
    if m.energy_j is None:
        return learned
    out = []
    for e, (t0, t1) in zip(learned, bounds, strict=True):
        try:
            window = job.energy_between([t0], [t1])
        except ConfigError:  # older than the curves' full-resolution history: not kept
            out.append(replace(e, note=f"older than {RETENTION_S / 60:g} min"))
            continue
        out.append(
            EpochResult(
                e.epoch,
                e.train_loss,
                e.test_accuracy,
                e.duration_s,
                e.samples,
                window.energy_j,
                window.uncertainty_j,
                m.methods,
            )
        )
    return out


def scope_line(m: Measurement) -> str:
    """Which scope the demo's energy is in, and what that means on a shared machine."""
    scopes = sorted({d.scope for d in m.devices}) or ["machine"]
    if scopes == ["machine"]:
        return (
            "scope: machine (everything these devices drew, whoever used them; "
            'track(scope="process") charges this process tree its share)'
        )
    return f"scope: {', '.join(scopes)} (this process tree's share of what the devices drew)"


def epoch_line(e: EpochResult, epochs: int) -> str:
    """One line per epoch as it ends: loss, held-out accuracy and time."""
    width = len(str(epochs))
    return (
        f"epoch {e.epoch:>{width}}/{epochs}  loss {e.train_loss:.4f}  "
        f"test accuracy {e.test_accuracy:6.1%}  {e.duration_s:5.2f} s"
    )


def epoch_table(epochs: Sequence[EpochResult]) -> str:
    """Loss and accuracy beside energy and J/sample, one row per epoch, with the method."""
    from greenai.report.frames import format_number, methods_label

    lines = [
        f"{'epoch':>5}  {'loss':>7}  {'accuracy':>8}  {'time':>7}  {'energy (J)':>20}  "
        f"{'J/sample':>9}"
    ]
    for e in epochs:
        if e.energy_j is None:
            energy, per = f"— ({e.note or 'not measured'})", "—"
        else:
            energy = f"{format_number(e.energy_j)} ± {format_number(e.uncertainty_j or 0.0, 2)}"
            per = format_number(e.j_per_sample or 0.0, 3)
        lines.append(
            f"{e.epoch:>5}  {e.train_loss:7.4f}  {e.test_accuracy:8.1%}  "
            f"{e.duration_s:6.2f}s  {energy:>20}  {per:>9}"
        )
    methods = epochs[0].methods if epochs else ()
    if methods:
        lines.append(f"energy per epoch (train + eval): {methods_label(methods)}, ±95%")
    if any(e.note.startswith("older") for e in epochs):
        lines.append(
            "epochs that ended long before the run did have no energy of their own here (the"
            " tracker keeps 10 min at full resolution); the run's total and phases include them"
        )
    return "\n".join(lines)
