from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from greenai.compress import (
    DynamicInt8,
    L1Unstructured,
    model_size_bytes,
    parameter_count,
    pareto_front,
    sparsity,
)
from greenai.compress.stats import t_quantile_975, tensor_bytes


def test_size_is_the_bytes_of_every_stored_tensor(mlp: nn.Module) -> None:
    expected = sum(t.numel() * t.element_size() for t in mlp.state_dict().values())
    assert model_size_bytes(mlp) == expected
    assert model_size_bytes(mlp.to(torch.bfloat16)) == pytest.approx(expected / 2, rel=0.01)


def test_shared_weights_count_once() -> None:
    a = nn.Linear(8, 8, bias=False)
    tied = nn.Sequential(a, nn.ReLU(), nn.Linear(8, 8, bias=False))
    tied[2].weight = a.weight
    assert model_size_bytes(tied) == 8 * 8 * 4


def test_attached_masks_count_and_int8_is_about_a_quarter(mlp: nn.Module) -> None:
    base = model_size_bytes(mlp)
    masked = model_size_bytes(L1Unstructured(0.5, masks="attached").apply(mlp))
    removed = model_size_bytes(L1Unstructured(0.5).apply(mlp))
    assert removed == base
    weights = sum(m.weight.numel() for m in mlp.modules() if isinstance(m, nn.Linear))
    assert masked == base + weights * 4  # one float mask per weight
    int8 = model_size_bytes(DynamicInt8().apply(mlp))
    assert int8 < base / 2


def test_quantized_tensor_bytes_include_per_channel_scales() -> None:
    w = torch.randn(4, 8)
    per_tensor = torch.quantize_per_tensor(w, 0.1, 0, torch.qint8)
    per_channel = torch.quantize_per_channel(
        w, torch.full((4,), 0.1), torch.zeros(4, dtype=torch.long), 0, torch.qint8
    )
    assert tensor_bytes(per_tensor) == 32 + 16
    assert tensor_bytes(per_channel) == 32 + 4 * 8 * 2
    assert tensor_bytes((w, None, torch.float32)) == 128


def test_parameter_count_keeps_logical_weights(mlp: nn.Module) -> None:
    n = sum(p.numel() for p in mlp.parameters())
    assert parameter_count(mlp) == n
    assert parameter_count(L1Unstructured(0.7, masks="attached").apply(mlp)) == n
    assert parameter_count(DynamicInt8().apply(mlp)) == n  # packed int8 weights still count


def test_sparsity_counts_zero_weights_of_linear_and_conv_layers(mlp: nn.Module) -> None:
    assert sparsity(mlp) == 0.0
    assert sparsity(L1Unstructured(0.5).apply(mlp)) == pytest.approx(0.5, abs=0.01)
    assert sparsity(L1Unstructured(0.5, masks="attached").apply(mlp)) == pytest.approx(
        0.5, abs=0.01
    )
    conv = nn.Conv2d(2, 2, 3)
    with torch.no_grad():
        conv.weight.zero_()
    assert sparsity(nn.Sequential(conv)) == 1.0
    assert sparsity(nn.Sequential(nn.ReLU())) == 0.0


def test_pareto_front_keeps_what_nothing_dominates() -> None:
    energy = [1.0, 0.5, 0.5, 2.0, math.nan, 0.4]
    accuracy = [0.9, 0.9, 0.8, 0.95, 0.99, 0.5]
    assert pareto_front(energy, accuracy) == [False, True, False, True, False, True]
    # without accuracy only the lowest energy (ties included) is on the front
    assert pareto_front([2.0, 1.0, 1.0], [math.nan] * 3) == [False, True, True]
    with pytest.raises(ValueError):
        pareto_front([1.0], [1.0, 2.0])


def test_t_quantile() -> None:
    assert t_quantile_975(1) == pytest.approx(12.706)
    assert t_quantile_975(4) == pytest.approx(2.776)
    assert t_quantile_975(60) == pytest.approx(2.000, abs=0.002)
    assert math.isinf(t_quantile_975(0))


def test_a_weight_format_that_cannot_be_read_is_an_error_not_a_guess() -> None:
    class Opaque(torch.Tensor):
        def __tensor_flatten__(self) -> tuple[list[str], None]:
            return [], None

        def to_dense(self) -> torch.Tensor:  # type: ignore[override]
            raise NotImplementedError

        def dequantize(self) -> torch.Tensor:
            raise TypeError("no")

    layer = nn.Linear(4, 4)
    layer.weight = nn.Parameter(torch.zeros(4, 4).as_subclass(Opaque), requires_grad=False)
    with pytest.raises(ValueError, match="cannot read the values of a Opaque weight"):
        sparsity(nn.Sequential(layer))


class _Hidden(torch.Tensor):
    """A format that stores its values but lists no inner tensors."""

    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return [], None


class _Packed(torch.Tensor):
    """A wrapper whose inner tensors are a ``_Hidden`` and a plain scale."""

    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return ["packed", "scale"], None


def test_a_subclass_that_lists_no_inner_tensor_counts_at_its_dense_size() -> None:
    weight = torch.zeros(4, 8).as_subclass(_Packed)
    weight.packed = torch.zeros(4, 8, dtype=torch.int8).as_subclass(_Hidden)
    weight.scale = torch.ones(4)
    dense: list[str] = []
    assert tensor_bytes(weight, dense) == 4 * 8 * 1 + 4 * 4
    assert dense == ["_Hidden"]

    layer = nn.Linear(8, 4, bias=False)
    layer.weight = nn.Parameter(torch.zeros(4, 8).as_subclass(_Hidden), requires_grad=False)
    notes: list[str] = []
    assert model_size_bytes(nn.Sequential(layer), notes) == 4 * 8 * 4
    assert notes == [
        "size_bytes counts 1 tensor(s) of _Hidden at their dense size "
        "(the format lists no inner tensors)"
    ]
