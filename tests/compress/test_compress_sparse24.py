from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.compress import Sparse24
from greenai.compress.sparse24 import mask_2_4
from greenai.errors import ConfigError


def test_mask_keeps_the_two_largest_of_every_four() -> None:
    w = torch.tensor([[1.0, -4.0, 3.0, 0.5, 0.1, 0.2, -0.3, 0.4]])
    assert mask_2_4(w).tolist() == [[False, True, True, False, False, False, True, True]]
    m = mask_2_4(torch.randn(16, 32))
    assert (m.reshape(16, 8, 4).sum(-1) == 2).all()
    with pytest.raises(ConfigError, match="multiple of 4"):
        mask_2_4(torch.randn(4, 6))


def test_availability_needs_cuda_8_0(monkeypatch: pytest.MonkeyPatch) -> None:
    method = Sparse24()
    assert method.available("cpu") == (False, "needs CUDA (2:4 sparse kernels are GPU-only)")
    monkeypatch.setattr(Sparse24, "capability", staticmethod(lambda device: (7, 5)))
    ok, why = Sparse24().available("cuda")
    assert not ok and ">= 8.0" in why
    monkeypatch.setattr(Sparse24, "capability", staticmethod(lambda device: (9, 0)))
    assert Sparse24().available("cuda") == (True, "")


def test_apply_with_a_fake_converter_prunes_2_of_4_and_notes_refusals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake(w: torch.Tensor) -> torch.Tensor:
        if w.shape[0] < 8:
            raise RuntimeError("Error original_tensor.shape is not supported!\nmore")
        return w.clone()

    monkeypatch.setattr(Sparse24, "converter", staticmethod(fake))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    method = Sparse24()
    out = method.apply(model)
    assert float((out[0].weight == 0).float().mean()) == 0.5
    assert not out[0].weight.requires_grad
    assert (out[2].weight != 0).all()  # refused: stays dense
    assert method.notes == ["kept dense: 2: Error original_tensor.shape is not supported!"]
    with pytest.raises(ConfigError, match="no Linear layer could be made 2:4"):
        method.apply(nn.Sequential(nn.Linear(8, 4)))
