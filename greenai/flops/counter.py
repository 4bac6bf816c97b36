"""count_flops: the FLOPs of one call of a model or function, counted as it runs.

Built on ``torch.utils.flop_counter.FlopCounterMode`` (which counts matmuls, convolutions
and fused attention; elementwise ops, softmax and norms count 0), with the formulas it lacks
from :mod:`greenai.flops.formulas`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils.flop_counter import FlopCounterMode

from greenai.errors import ConfigError, GreenAIError, MeasurementWarning
from greenai.flops.formulas import Ledger, custom_mapping
from greenai.flops.guard import (
    ConventionalZeroOps,
    UncountedOps,
    conventional_zero_note,
    uncounted_note,
)
from greenai.flops.result import FlopCount

__all__ = ["FakeModeError", "count_flops"]


class FakeModeError(GreenAIError, RuntimeError):
    """A call could not run on fake tensors; count it with ``fake=False``.

    Raised for code that reads tensor values (``.item()``, data-dependent shapes) and for
    ops that have neither a fake kernel nor a real one torch may fall back to.
    """


def count_flops(
    model_or_fn: Callable[..., Any],
    *inputs: Any,
    backward: bool = False,
    causal: bool = False,
    fake: bool = False,
    **kwargs: Any,
) -> FlopCount:
    """Count the FLOPs of ``model_or_fn(*inputs, **kwargs)``, and of its backward if asked.

    One multiply-add counts as 2 FLOPs (the ``torch.utils.flop_counter`` convention): a
    ``[M, K] @ [K, N]`` matmul is ``2·M·N·K``. Matmuls, convolutions and attention are
    counted; elementwise ops, softmax and normalisation count 0. The result has two totals
    (see :class:`FlopCount`): ``nominal`` (dense floating-point FLOPs of the shapes that
    ran: a quantized or 2:4 sparse model has its dense parent's count) and ``executed``
    (what the kernels did: int8 matmuls as int8 ops, 2:4 sparse matmuls at half, fused
    causal attention at half).

    Attention on CPU, int8/quantized matmuls, 2:4 sparse matmuls, matrix-vector and other
    products (``mv``, ``dot``, ``addr``, …), fused RNNs (``nn.LSTM`` on CPU, cuDNN RNNs) and
    the eval-mode transformer fast paths, which ``FlopCounterMode`` counts as 0, are counted
    with the formulas of :mod:`greenai.flops.formulas`; ``notes`` says which ones fired.
    Fused attention counts dense in nominal, as ``FlopCounterMode`` does on CUDA, unless
    ``causal=True``. An op that does matrix work and still has no formula (``torch.linalg``
    factorisations, FFTs, an op a later torch adds) is never dropped silently: it is named
    in ``FlopCount.uncounted`` and in a note ``"uncounted: aten.X ×N"``, with a
    :class:`~greenai.errors.MeasurementWarning` (see :mod:`greenai.flops.guard`).

    The call leaves no trace: parameter ``.grad`` is never written (the backward uses
    ``torch.autograd.grad``), a module's buffers (BatchNorm statistics) are restored and the
    CPU and CUDA random number generators are put back where they were.

    Args:
        model_or_fn: An ``nn.Module`` or any callable.
        *inputs: Positional arguments of the call.
        backward: Also run the backward of the output (of the sum of its floating-point
            tensors when it is not a scalar) and count it (``FlopCount.backward``).
        causal: Count every fused attention op at half (all attention is causal). Without
            it, attention called with ``is_causal=True`` counts half in ``executed`` only.
            Attention that runs as plain matmuls (hand-written, or SDPA's math path, which
            is what the ``meta`` device runs) cannot be recognised and counts dense.
        fake: Run on ``FakeTensorMode`` tensors: shapes propagate, but no arithmetic runs
            and no activation memory is used; the parameters stay real. Ops without a fake
            kernel (the ``quantized::`` ops) run their real kernel on zeros of the same
            shape (torch's fallback); code that reads tensor values (``.item()``,
            data-dependent shapes) fails with :class:`FakeModeError`.
        **kwargs: Keyword arguments of the call (a model keyword named ``backward``,
            ``causal`` or ``fake`` cannot pass through: wrap the call in a lambda).

    Returns:
        The :class:`FlopCount` of the call.

    Raises:
        ConfigError: ``model_or_fn`` is not callable, a flag is not a bool, or
            ``backward=True`` and no output tensor requires grad.
        FakeModeError: ``fake=True`` and the call cannot run on fake tensors.
    """
    if not callable(model_or_fn):
        raise ConfigError(f"count_flops needs an nn.Module or a callable, got {model_or_fn!r}")
    for name, flag in (("backward", backward), ("causal", causal), ("fake", fake)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be True or False, got {flag!r}")
    ledger = Ledger()
    counter = FlopCounterMode(
        display=False, custom_mapping=custom_mapping(causal=causal, ledger=ledger)
    )
    with ExitStack() as stack:
        stack.enter_context(_no_side_effects(model_or_fn, (inputs, kwargs)))
        if backward:
            stack.enter_context(torch.enable_grad())
        if fake:
            inputs, kwargs = _enter_fake_mode(stack, (inputs, kwargs))
        if backward:
            inputs, kwargs = _unleaf((inputs, kwargs))
        guard = UncountedOps(counter.flop_registry)
        stack.enter_context(guard)  # under the counter: sees the ops it lets run
        stack.enter_context(counter)
        convention = ConventionalZeroOps()
        stack.enter_context(convention)  # above the counter: before it decomposes upsampling
        try:
            output = model_or_fn(*inputs, **kwargs)
            forward = counter.get_total_flops()
            if backward:
                _run_backward(output)
        except GreenAIError:
            raise
        except Exception as error:
            if not fake:
                raise
            raise FakeModeError(
                f"the call could not run on fake tensors ({type(error).__name__}: {error}); "
                "count it with fake=False"
            ) from error
    count = _result(
        counter.get_flop_counts(), forward, ledger, dict(guard.calls), causal=causal, fake=fake
    )
    zero = conventional_zero_note(dict(convention.calls))
    return count if zero is None else replace(count, notes=(*count.notes, zero))


def _enter_fake_mode(stack: ExitStack, args: Any) -> Any:
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    # torch's fake-op cache compares arguments with ==, which quantized packed weights
    # (ScriptObjects) do not implement: the second quantized call would fail.
    mode.cache_enabled = False
    stack.enter_context(mode)

    def to_fake(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and not isinstance(x, FakeTensor):
            return mode.from_tensor(x)
        return x

    return pytree.tree_map(to_fake, args)


def _unleaf(args: Any) -> Any:
    """Input leaves that require grad, as views (no FLOPs) that lead back to them.

    ``FlopCounterMode`` hooks the inputs of every module for its backward accounting, and
    those hooks fail under ``torch.autograd.grad`` on a leaf ("A leaf node was passed to
    _will_engine_execute_node"). A view is no leaf; the gradient still reaches the input.
    """

    def view(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_leaf and x.requires_grad:
            return x.view_as(x)
        return x

    return pytree.tree_map(view, args)


@contextmanager
def _no_side_effects(model_or_fn: Any, args: Any) -> Iterator[None]:
    """Restore the module's buffers and the RNG states after the call."""
    module = model_or_fn if isinstance(model_or_fn, torch.nn.Module) else None
    if module is None and isinstance(getattr(model_or_fn, "__self__", None), torch.nn.Module):
        module = model_or_fn.__self__  # a bound method such as model.generate
    saved: list[tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]] = []
    tensors = [x for x in pytree.tree_leaves(args) if isinstance(x, torch.Tensor)]
    if module is not None:
        for owner in module.modules():
            for name, buffer in owner._buffers.items():
                if buffer is not None:
                    saved.append((owner, name, buffer, buffer.detach().clone()))
        tensors.extend(module.parameters())
    cuda = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            with torch.no_grad():
                for owner, name, buffer, copy in saved:
                    owner._buffers[name] = buffer
                    buffer.copy_(copy)


def _run_backward(output: Any) -> None:
    """Backprop the sum of the output's floating-point tensors into every leaf of its graph."""
    outs = [
        t
        for t in pytree.tree_leaves(output)
        if isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point()
    ]
    if not outs:
        raise ConfigError(
            "backward=True, but no floating-point output tensor requires grad "
            "(are all parameters frozen, or does the model detach its output?)"
        )
    loss = outs[0].sum()
    for t in outs[1:]:
        loss = loss + t.sum()
    torch.autograd.grad(loss, _graph_leaves(loss), allow_unused=True)


def _graph_leaves(root: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors (parameters, inputs) that ``root`` was computed from."""
    if root.grad_fn is None:
        return [root]
    leaves: dict[int, torch.Tensor] = {}
    seen: set[Any] = set()
    stack: list[Any] = [root.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad holds its leaf
        if isinstance(variable, torch.Tensor):
            leaves[id(variable)] = variable
        stack.extend(next_node for next_node, _ in node.next_functions)
    return list(leaves.values())


def _result(
    counts: dict[str, dict[Any, int]],
    forward: int,
    ledger: Ledger,
    uncounted: dict[str, int],
    *,
    causal: bool,
    fake: bool,
) -> FlopCount:
    by_operator = {str(op): int(n) for op, n in counts.get("Global", {}).items()}
    executed_by_operator = dict(by_operator)
    for op, delta in ledger.executed_delta.items():
        executed_by_operator[op] = executed_by_operator.get(op, 0) + delta
    by_module = {name: int(sum(ops.values())) for name, ops in counts.items() if name != "Global"}
    nominal = sum(by_operator.values())
    notes = list(ledger.notes)
    if causal and ledger.attention_calls == 0:
        message = (
            "causal=True, but no fused attention op ran (attention as plain matmuls, or SDPA's "
            "math path, cannot be recognised): nothing was halved"
        )
        warnings.warn(message, MeasurementWarning, stacklevel=3)
        notes.append(message)
    line = uncounted_note(uncounted)
    if line is not None:
        message = (
            f"{line} (ops that do matrix work but have no FLOP formula: "
            "the count is low by their FLOPs)"
        )
        warnings.warn(message, MeasurementWarning, stacklevel=3)
        notes.append(line)
    if fake:
        notes.append("counted on fake tensors: shapes only, no arithmetic ran")
    return FlopCount(
        nominal=nominal,
        executed=sum(executed_by_operator.values()),
        forward=int(forward),
        backward=nominal - int(forward),
        by_module=by_module,
        by_operator=by_operator,
        executed_by_operator=executed_by_operator,
        uncounted=uncounted,
        notes=tuple(notes),
    )
