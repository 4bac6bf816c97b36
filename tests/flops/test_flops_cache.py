from __future__ import annotations

import gc
from typing import Any

import pytest
import torch
from torch import nn

from greenai.errors import ConfigError
from greenai.flops import FakeModeError, FlopCache, FlopCount, count_flops, shape_key


class Spy:
    """count_flops, recording each call."""

    def __init__(self, fail_fake: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_fake = fail_fake

    def __call__(self, model: Any, *inputs: Any, **options: Any) -> FlopCount:
        self.calls.append(options)
        if self.fail_fake and options["fake"]:
            raise FakeModeError("reads values")
        return count_flops(model, *inputs, **options)


def test_counts_once_per_shape() -> None:
    spy = Spy()
    cache = FlopCache(count_fn=spy)
    model = nn.Linear(8, 4, bias=False)
    for _ in range(5):
        assert cache(model, torch.randn(3, 8)).total == 2 * 3 * 8 * 4
    assert cache(model, torch.randn(6, 8)).total == 2 * 6 * 8 * 4
    assert cache(model, torch.randn(3, 8)).total == 2 * 3 * 8 * 4
    assert len(spy.calls) == 2
    assert (cache.hits, cache.misses, len(cache)) == (5, 2, 2)
    assert spy.calls[0] == {"fake": True, "backward": False, "causal": False}


def test_backward_dtype_and_model_are_part_of_the_key() -> None:
    spy = Spy()
    train, infer = FlopCache(backward=True, count_fn=spy), FlopCache(count_fn=spy)
    a, b = nn.Linear(8, 4), nn.Linear(8, 4)
    x = torch.randn(3, 8)
    assert train(a, x).backward > 0 and infer(a, x).backward == 0
    infer(b, x)
    infer(a, x.double().float())  # same shape and dtype: a hit
    infer(a.double(), x.double())
    assert len(spy.calls) == 4


def test_bound_methods_hit_the_cache() -> None:
    spy = Spy()
    cache = FlopCache(count_fn=spy)
    model = nn.Linear(8, 4)
    for _ in range(3):
        cache(model.forward, torch.randn(2, 8))
    assert len(spy.calls) == 1


def test_a_dead_model_is_not_confused_with_a_new_one() -> None:
    spy = Spy()
    cache = FlopCache(count_fn=spy)
    cache(nn.Linear(8, 4), torch.randn(2, 8))
    gc.collect()
    cache(nn.Linear(8, 2), torch.randn(2, 8))  # may reuse the dead model's id
    assert len(spy.calls) == 2


def test_falls_back_to_a_real_run_when_fake_fails() -> None:
    spy = Spy(fail_fake=True)
    flops = FlopCache(count_fn=spy)(torch.mm, torch.randn(2, 3), torch.randn(3, 4))
    assert [c["fake"] for c in spy.calls] == [True, False]
    assert flops.total == 2 * 2 * 3 * 4
    assert any("counted by running the call" in n for n in flops.notes)


def test_shape_key_sees_shapes_not_values() -> None:
    x = torch.randn(2, 3)
    assert shape_key(x, {"mask": None}) == shape_key(torch.zeros(2, 3), {"mask": None})
    assert shape_key(x) != shape_key(x.T)
    assert shape_key(x) != shape_key(x.double())
    assert shape_key(x) != shape_key(x.requires_grad_())
    assert shape_key([x], n=3) != shape_key([x], n=4)
    hash(shape_key(x, {"a": [x, 1.0, "s"]}, opt=object()))


def test_options_must_be_bools() -> None:
    with pytest.raises(ConfigError):
        FlopCache(backward=1)  # type: ignore[arg-type]


def test_a_hit_is_cheap() -> None:
    import time

    cache = FlopCache()
    model, x = nn.Linear(8, 4), torch.randn(2, 8)
    cache(model, x)
    t0 = time.perf_counter()
    for _ in range(1000):
        cache(model, x)
    per_hit_s = (time.perf_counter() - t0) / 1000
    assert per_hit_s < 100e-6
