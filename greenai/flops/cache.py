"""FlopCache: count a model's FLOPs once per distinct input shape, for a tracker's every step.

A hit costs building :func:`shape_key` (a tuple of shapes, dtypes and devices) and one dict
lookup: a few microseconds, no torch dispatch.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

import torch

from greenai.errors import ConfigError
from greenai.flops.counter import FakeModeError, count_flops
from greenai.flops.result import FlopCount

__all__ = ["FlopCache", "shape_key"]

_SCALARS = (int, float, bool, str, bytes, type(None))


def _key(x: Any) -> Hashable:
    if isinstance(x, torch.Tensor):
        return (tuple(x.shape), x.dtype, x.device, x.requires_grad)
    if isinstance(x, _SCALARS):
        return x
    if isinstance(x, Mapping):
        return ("{", tuple((k, _key(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return (type(x), tuple(_key(v) for v in x))
    return cast(Hashable, type(x))


def shape_key(*inputs: Any, **kwargs: Any) -> Hashable:
    """A hashable key for a call's inputs: what decides the FLOPs of a call, not the values.

    Tensors contribute their shape, dtype, device and ``requires_grad``; lists, tuples and
    mappings are walked; ints, floats, strings, bools and None contribute their value;
    any other object its type.
    """
    return (_key(inputs), _key(kwargs)) if kwargs else _key(inputs)


def _identity(model: Any) -> tuple[int, ...]:
    # model.forward is a new bound-method object at each access: key on what it binds.
    if inspect.ismethod(model):
        return (id(model.__self__), id(model.__func__))
    return (id(model),)


class FlopCache:
    """Memoised :func:`count_flops`: counts once per (model, input shapes, backward).

    Call it like the model: ``flops = cache(model, batch)``. The first call with a new
    input shape counts (by default on fake tensors, see ``fake``); later calls return the
    stored :class:`FlopCount`.

    Args:
        backward: Count forward + backward (a training step) instead of forward only.
        causal: Passed to :func:`count_flops`.
        fake: Count on fake tensors (no arithmetic, no GPU work that would show up in the
            measured energy). A call that cannot run on fake tensors (it reads tensor
            values) is counted by running it, with a note saying so.
        count_fn: The counting function (tests pass a spy).

    Attributes:
        hits: Calls answered from the cache.
        misses: Calls that counted.

    Raises:
        ConfigError: A flag is not a bool.
    """

    def __init__(
        self,
        *,
        backward: bool = False,
        causal: bool = False,
        fake: bool = True,
        count_fn: Callable[..., FlopCount] = count_flops,
    ) -> None:
        for name, flag in (("backward", backward), ("causal", causal), ("fake", fake)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be True or False, got {flag!r}")
        self.backward = backward
        self.causal = causal
        self.fake = fake
        self._count_fn = count_fn
        self._counts: dict[Hashable, tuple[Callable[[], Any], FlopCount]] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, model: Callable[..., Any], *inputs: Any, **kwargs: Any) -> FlopCount:
        """The :class:`FlopCount` of ``model(*inputs, **kwargs)``, counted at most once per shape.

        Raises:
            ConfigError: As :func:`count_flops`.
        """
        owner = model.__self__ if inspect.ismethod(model) else model
        training = getattr(owner, "training", None)
        key = (_identity(model), training, shape_key(*inputs, **kwargs))
        entry = self._counts.get(key)
        if entry is not None and entry[0]() is not None:
            self.hits += 1
            return entry[1]
        self.misses += 1
        flops = self._count(model, inputs, kwargs)
        self._counts[key] = (_reference(model), flops)
        return flops

    def _count(self, model: Callable[..., Any], inputs: Any, kwargs: Any) -> FlopCount:
        options = {"backward": self.backward, "causal": self.causal}
        if self.fake:
            try:
                return self._count_fn(model, *inputs, fake=True, **options, **kwargs)
            except FakeModeError as error:
                flops = self._count_fn(model, *inputs, fake=False, **options, **kwargs)
                note = f"counted by running the call: {error}"
                return flops + FlopCount(nominal=0, executed=0, forward=0, notes=(note,))
        return self._count_fn(model, *inputs, fake=False, **options, **kwargs)

    def __len__(self) -> int:
        return len(self._counts)

    def clear(self) -> None:
        """Forget every count (the hit and miss counters stay)."""
        self._counts.clear()


def _reference(model: Any) -> Callable[[], Any]:
    """A weak reference where possible, so a dead model's id cannot alias a new one."""
    target = model.__self__ if inspect.ismethod(model) else model
    try:
        return weakref.ref(target)
    except TypeError:  # builtins and some callables take no weak references
        return lambda: target
