from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from greenai.compress import WeightOnly, model_size_bytes, parameter_count
from greenai.errors import ConfigError

pytest.importorskip("optimum.quanto", reason="low-bit weights need greenai[quanto]")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 128)).eval()


def _packed_bytes(bits: int) -> int:
    """What the weights should weigh packed: bits per value plus a float32 scale and shift
    per group of 128 inputs, plus the float32 biases and quanto's two scalar scales."""
    total = 0
    for inp, out in ((256, 512), (512, 128)):
        total += inp * out * bits // 8 + 2 * 4 * out * (inp // 128) + 4 * out + 2 * 4
    return total


@pytest.mark.parametrize("bits", [4, 2])
def test_weights_are_packed_and_the_size_is_counted_from_the_packed_tensors(bits: int) -> None:
    model = _model()
    q = WeightOnly(bits).apply(model)
    stored = q.state_dict()
    packed = [v for k, v in stored.items() if k.endswith("weight._data._data")]
    assert len(packed) == 2 and all(t.dtype == torch.uint8 for t in packed)
    assert sum(t.numel() for t in packed) == (256 * 512 + 512 * 128) * bits // 8
    assert model_size_bytes(q) == _packed_bytes(bits)
    assert model_size_bytes(model) / model_size_bytes(q) > {4: 6.0, 2: 10.0}[bits]
    assert parameter_count(q) == parameter_count(model)  # logical count, whatever the storage
    assert type(model[0].weight) is nn.Parameter  # the original is untouched


def test_int4_stays_close_and_int2_drifts_further() -> None:
    model = _model()
    x = torch.randn(16, 256)
    with torch.no_grad():
        ref = model(x)
        err = {b: float((WeightOnly(b).apply(model)(x) - ref).abs().mean()) for b in (8, 4, 2)}
    assert err[8] < err[4] < err[2]
    assert err[4] < 0.1 * float(ref.abs().mean())


def test_conv_layers_are_quantized_and_the_model_still_runs() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    q = WeightOnly(4).apply(model.eval())
    assert q(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert model_size_bytes(q) < model_size_bytes(model) / 3


def test_bad_bits_no_layers_and_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="bits"):
        WeightOnly(3)
    with pytest.raises(ConfigError, match="Linear or Conv2d"):
        WeightOnly(4).apply(nn.Sequential(nn.ReLU()))
    assert WeightOnly(4).label == "int4 weight-only"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("optimum") else real(name, *a),
    )
    assert WeightOnly(4).available("cpu") == (
        False,
        "optimum-quanto not installed (pip install 'greenai[quanto]')",
    )


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_weight_only_flops_are_the_dense_matmuls_never_zero(bits: int) -> None:
    from greenai.flops import count_flops

    model, x = _model(), torch.randn(4, 256)
    dense = count_flops(model, x)
    got = count_flops(WeightOnly(bits).apply(model), x)
    # int8 runs quanto.qbytes_mm (counted by its own formula), int4/int2 dequantize then mm
    assert got.nominal == got.executed == dense.nominal
    assert not got.uncounted
