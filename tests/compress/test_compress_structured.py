from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.compress import StructuredL1, parameter_count
from greenai.compress.structured import prunable_pairs
from greenai.errors import ConfigError


def test_mlp_loses_rows_and_matching_columns_and_bn_channels(mlp: nn.Module) -> None:
    pruned = StructuredL1(0.5).apply(mlp)
    assert (pruned[0].out_features, pruned[2].in_features) == (16, 16)
    assert (pruned[2].out_features, pruned[5].in_features) == (16, 16)
    assert pruned[5].out_features == 4  # the model's output is never cut
    bn = pruned[3]
    assert bn.num_features == 16 and bn.running_mean.shape == (16,) and bn.weight.shape == (16,)
    assert pruned(torch.randn(3, 16)).shape == (3, 4)
    assert parameter_count(pruned) < parameter_count(mlp) / 2
    assert mlp[0].out_features == 32  # original untouched


def test_removing_dead_rows_changes_nothing() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():  # rows 1, 4, 6, 7 have the smallest norms and produce exactly 0
        for row in (1, 4, 6, 7):
            model[0].weight[row] = 0.0
            model[0].bias[row] = 0.0
    pruned = StructuredL1(0.5).apply(model)
    x = torch.randn(10, 6)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x))
    torch.testing.assert_close(pruned[2].weight, model[2].weight[:, [0, 2, 3, 5]])


def test_conv_stack_with_batchnorm_and_pooling() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    ).eval()
    pruned = StructuredL1(0.25).apply(model)
    assert (pruned[0].out_channels, pruned[1].num_features, pruned[4].in_channels) == (6, 6, 6)
    assert pruned[4].out_channels == 8  # feeds a Flatten: left whole
    assert pruned(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_what_is_not_a_pair_is_left_alone() -> None:
    norm_between = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 4))
    grouped = nn.Sequential(nn.Conv2d(4, 4, 1, groups=2), nn.Conv2d(4, 4, 1))
    mixed = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(4, 4))
    prelu = nn.Sequential(nn.Linear(4, 4), nn.PReLU(4), nn.Linear(4, 4))
    for model in (norm_between, grouped, mixed, prelu, nn.Linear(4, 4)):
        assert prunable_pairs(model) == []
        with pytest.raises(ConfigError, match="no Linear->Linear"):
            StructuredL1(0.5).apply(model)


def test_keeps_at_least_one_row_and_checks_amount() -> None:
    model = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1))
    assert StructuredL1(0.9).apply(model)[0].out_features == 1
    assert StructuredL1(0.5).label == "structured 50%"
    with pytest.raises(ConfigError):
        StructuredL1(1.0)


def test_bf16_model() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).to(torch.bfloat16)
    pruned = StructuredL1(0.5).apply(model)
    assert pruned[0].weight.dtype == torch.bfloat16
    assert pruned(torch.randn(2, 8, dtype=torch.bfloat16)).shape == (2, 2)


class _Residual(nn.Sequential):
    """Looks like a Sequential, but adds its input back: cutting its pairs would break it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x + super().forward(x)


def test_a_sequential_with_its_own_forward_is_left_whole(mlp: nn.Module) -> None:
    residual = _Residual(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
    with pytest.raises(ConfigError, match=r"left whole: \(model\) \(_Residual\)"):
        StructuredL1(0.5).apply(residual)
    assert prunable_pairs(residual) == []
    model = nn.Sequential(nn.Linear(8, 8), _Residual(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8)))
    model = nn.Sequential(*model, nn.ReLU(), nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 8))
    method = StructuredL1(0.5)
    pruned = method.apply(model)
    assert pruned[1][0].out_features == 16  # inside the residual block: untouched
    assert pruned[3].out_features == 6  # the plain Sequential's own pair is cut
    assert method.notes and "1 (_Residual)" in method.notes[0]
    assert pruned(torch.randn(2, 8)).shape == (2, 8)
