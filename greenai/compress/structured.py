"""Structured pruning of any architecture through Torch-Pruning's dependency graph.

Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023,
https://github.com/VainF/Torch-Pruning) traces one forward of the model and groups every
parameter slice that must shrink together: a residual stream and every layer that reads or
writes it, a convolution and its BatchNorm, the heads of an attention layer. Removing the
lowest-L1 channels of each group leaves a smaller *dense* model that runs with the usual
kernels, so size, FLOPs and latency really fall.

``amount`` is the fraction of the *parameters* to remove: Torch-Pruning's own knob is a
per-layer channel ratio, which removes about ``1 - (1 - r)²`` of a layer pruned on both
sides; the method searches the channel ratio whose pruned copy has ``amount`` fewer
parameters (counted, not assumed) and says which ratio it used. Layers whose output is the
model's output are never cut (the output keeps its shape). A model the pruner cannot trace,
or whose pruned copy no longer runs or changes its output shape, raises :class:`ConfigError`
with the pruner's reason: the sweep makes that a skipped row.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from greenai.compress.base import Method
from greenai.errors import ConfigError

__all__ = ["StructuredL1", "attention_heads", "output_layers"]

_HEAD_ATTRS = ("num_heads", "n_heads", "num_attention_heads", "n_head", "heads")
_QKV_NAMES = ("qkv", "q", "k", "v", "query", "key", "value", "q_proj", "k_proj", "v_proj")
_SEARCH_STEPS = 7
_MAX_CHANNEL_RATIO = 0.95


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def output_layers(model: nn.Module, inputs: tuple[Any, ...]) -> list[nn.Module]:
    """The Linear/Conv layers whose output reaches the model's output with no layer between.

    Found by walking the autograd graph back from each output tensor and stopping at the
    first tensor a Linear/Conv produced (elementwise ops, reshapes, pooling, residual
    additions are walked through). These layers set the output's shape, so they are never
    pruned on their output side.

    Args:
        model: The model (run once, with gradients, on a private copy).
        inputs: One call's positional inputs.
    """
    probe = copy.deepcopy(model)
    made_by: dict[Any, str] = {}
    hooks = []
    names = {m: n for n, m in probe.named_modules()}
    for module in probe.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):

            def hook(mod: nn.Module, _args: Any, out: Any) -> None:
                for t in _tensors(out):
                    if t.grad_fn is not None:
                        made_by[t.grad_fn] = names[mod]

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.enable_grad():
            outs = list(_tensors(probe(*inputs)))
    finally:
        for h in hooks:
            h.remove()
    found: set[str] = set()
    seen: set[Any] = set()
    todo = [t.grad_fn for t in outs if t.grad_fn is not None]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in made_by:
            found.add(made_by[node])
            continue
        todo.extend(n for n, _ in node.next_functions if n is not None)
    lookup = dict(model.named_modules())
    return [lookup[n] for n in sorted(found) if n in lookup]


def _attention_blocks(model: nn.Module) -> list[tuple[Any, str, list[nn.Linear]]]:
    """``(block, head-count attribute, its q/k/v Linears)`` of each attention block."""
    out = []
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            continue
        attr = next((a for a in _HEAD_ATTRS if isinstance(getattr(module, a, None), int)), None)
        if attr is None or not getattr(module, attr):
            continue
        linears = [
            getattr(module, n)
            for n in _QKV_NAMES
            if isinstance(getattr(module, n, None), nn.Linear)
        ]
        if linears:
            out.append((module, attr, linears))
    return out


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """``{q/k/v or fused qkv Linear: number of heads}`` for attention blocks found by name.

    A module with a head-count attribute (``num_heads``, ``n_heads``,
    ``num_attention_heads``...) and Linear children named ``qkv``, ``q``/``k``/``v``,
    ``query``/``key``/``value`` or ``q_proj``/``k_proj``/``v_proj`` (timm, Hugging Face and
    most hand-written attention) is an attention block. ``nn.MultiheadAttention`` is known to
    Torch-Pruning itself and not listed.
    """
    return {
        linear: int(getattr(block, attr))
        for block, attr, linears in _attention_blocks(model)
        for linear in linears
    }


def _torch_pruning() -> Any:
    if importlib.util.find_spec("torch_pruning") is None:
        raise ConfigError("structured pruning needs Torch-Pruning: pip install 'greenai[prune]'")
    return importlib.import_module("torch_pruning")


def _param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class StructuredL1(Method):
    """Remove the lowest-L1 channels, heads and hidden units of any model (Torch-Pruning).

    Args:
        amount: Fraction of the parameters to remove, in [0, 1).
        heads: Remove whole attention heads (and set the block's head-count attribute)
            instead of narrowing every head; other layers lose channels as usual.

    Raises:
        ConfigError: ``amount`` out of range; at apply, no example inputs, Torch-Pruning
            missing, or a model it cannot prune (its reason is in the message).
    """

    name = "structured-l1"
    needs_inputs = True

    def __init__(self, amount: float, heads: bool = False) -> None:
        if not isinstance(amount, int | float) or not 0 <= amount < 1:
            raise ConfigError(f"amount must be a fraction in [0, 1), got {amount!r}")
        super().__init__(amount=float(amount))
        if heads:
            self.params["heads"] = True

    @property
    def label(self) -> str:
        """``"structured 50%"``, ``"structured 50% heads"``."""
        return f"structured {self.params['amount']:.0%}" + (
            " heads" if self.params.get("heads") else ""
        )

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        """Needs Torch-Pruning installed."""
        if importlib.util.find_spec("torch_pruning") is None:
            return False, "Torch-Pruning not installed (pip install 'greenai[prune]')"
        return True, ""

    def _prune(
        self, model: nn.Module, inputs: tuple[Any, ...], ratio: float, keep: list[nn.Module]
    ) -> nn.Module:
        tp = _torch_pruning()
        out = copy.deepcopy(model)
        lookup = {id(m): n for n, m in model.named_modules()}
        modules = dict(out.named_modules())
        ignored = [modules[lookup[id(m)]] for m in keep]
        heads = {modules[lookup[id(m)]]: h for m, h in attention_heads(model).items()}
        whole_heads = bool(self.params.get("heads"))
        # nn.MultiheadAttention's embed_dim must stay a multiple of its head count
        mha = [m.num_heads for m in out.modules() if isinstance(m, nn.MultiheadAttention)]
        round_to = math.lcm(*mha) if mha else None
        # every dict is passed fresh: Torch-Pruning 1.6 mutates its mutable default arguments
        pruner = tp.pruner.MetaPruner(
            out,
            inputs,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            ignored_layers=ignored,
            round_to=round_to,
            num_heads=heads,
            prune_num_heads=whole_heads,
            prune_head_dims=not whole_heads,
            head_pruning_ratio=ratio if whole_heads else 0.0,
            in_channel_groups={},
            out_channel_groups={},
            channel_groups={},
            forward_fn=lambda m, x: m(*x),
        )
        with torch.enable_grad():
            pruner.step()
        for block, attr, linears in _attention_blocks(out):  # what the forward may read
            count = int(pruner.num_heads.get(linears[0], getattr(block, attr)))
            setattr(block, attr, count)
            if isinstance(getattr(block, "head_dim", None), int):
                per = 3 if len(linears) == 1 else 1  # a fused qkv holds q, k and v
                block.head_dim = linears[0].out_features // (per * count)
        return out

    def _apply(self, model: nn.Module) -> nn.Module:
        inputs = self.inputs
        if inputs is None:
            raise ConfigError("structured pruning traces the model: it needs example inputs")
        amount = self.params["amount"]
        if amount == 0:
            return model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                reference = [t.shape for t in _tensors(model(*inputs))]
            keep = output_layers(model, inputs)
        except Exception as exc:
            raise ConfigError(f"the model does not run for tracing: {exc}") from exc
        total = _param_count(model)
        lo, hi = 0.0, _MAX_CHANNEL_RATIO
        best: tuple[float, nn.Module] | None = None
        for _ in range(_SEARCH_STEPS):
            ratio = (lo + hi) / 2
            try:
                pruned = self._prune(model, inputs, ratio, keep)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"Torch-Pruning cannot prune this model: {type(exc).__name__}: {exc}"
                ) from exc
            removed = 1 - _param_count(pruned) / total
            if best is None or abs(removed - amount) < abs(
                1 - _param_count(best[1]) / total - amount
            ):
                best = (ratio, pruned)
            if removed < amount:
                lo = ratio
            else:
                hi = ratio
        assert best is not None
        ratio, pruned = best
        removed = 1 - _param_count(pruned) / total
        if removed <= 0:
            raise ConfigError(
                "Torch-Pruning found nothing to prune (every layer feeds the output or is "
                "not a Linear/Conv/attention layer)"
            )
        try:
            with torch.no_grad():
                shapes = [t.shape for t in _tensors(pruned(*inputs))]
        except Exception as exc:
            raise ConfigError(
                f"the pruned model no longer runs ({type(exc).__name__}: {exc}); attention "
                "heads Torch-Pruning was not told about are the usual cause"
            ) from exc
        if shapes != reference:
            raise ConfigError(f"pruning changed the output shapes {reference} -> {shapes}")
        self.notes.append(
            f"channel ratio {ratio:.3f}: {removed:.1%} of parameters removed "
            f"(target {amount:.0%}); output layers kept whole: {len(keep)}"
        )
        pruned.train(was_training)
        return pruned
