from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.compress import L1Unstructured, sparsity
from greenai.compress.base import prunable_layers
from greenai.errors import ConfigError


def _layer_sparsities(model: nn.Module) -> list[float]:
    return [float((m.weight == 0).float().mean()) for _, m in prunable_layers(model)]


def test_per_layer_prunes_each_layer_to_the_sparsity(mlp: nn.Module) -> None:
    pruned = L1Unstructured(0.5).apply(mlp)
    assert _layer_sparsities(pruned) == pytest.approx([0.5, 0.5, 0.5], abs=0.02)
    assert sparsity(mlp) == 0.0  # the original is untouched
    # the smallest magnitudes went first
    w0, p0 = mlp[0].weight.detach(), pruned[0].weight.detach()
    assert w0[p0 == 0].abs().max() <= w0[p0 != 0].abs().min()


def test_global_prunes_the_smallest_weights_wherever_they_are() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    with torch.no_grad():
        model[2].weight.mul_(100.0)  # layer 2's weights are all large
    pruned = L1Unstructured(0.5, scope="global").apply(model)
    per_layer = _layer_sparsities(pruned)
    assert per_layer[0] == 1.0 and per_layer[1] == 0.0
    assert sparsity(pruned) == pytest.approx(0.5)


def test_masks_removed_leave_plain_weights_and_attached_keep_hooks(mlp: nn.Module) -> None:
    removed = L1Unstructured(0.3).apply(mlp)
    attached = L1Unstructured(0.3, masks="attached").apply(mlp)
    assert not any(k.endswith("_mask") for k in removed.state_dict())
    assert {"0.weight_orig", "0.weight_mask"} <= set(attached.state_dict())
    assert torch.nn.utils.prune.is_pruned(attached) and not torch.nn.utils.prune.is_pruned(removed)
    x = torch.randn(5, 16)
    with torch.no_grad():
        torch.testing.assert_close(removed(x), attached(x))


def test_labels_and_bad_values() -> None:
    assert L1Unstructured(0.5).label == "l1-layer 50%"
    assert L1Unstructured(0.3, scope="global", masks="attached").label == "l1-global 30% +masks"
    for bad in ({"sparsity": 1.0}, {"sparsity": -0.1}, {"sparsity": 0.5, "scope": "net"}):
        with pytest.raises(ConfigError):
            L1Unstructured(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no Linear or Conv"):
        L1Unstructured(0.5).apply(nn.Sequential(nn.ReLU()))
