from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from greenai.compress import DynamicInt8, TorchaoFloat8Dynamic, TorchaoInt8WeightOnly, quantize
from greenai.errors import ConfigError


def test_dynamic_int8_runs_close_and_warns_nothing(mlp: nn.Module) -> None:
    assert DynamicInt8().available("cpu") == (True, "")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = DynamicInt8().apply(mlp)
    assert not [w for w in caught if "deprecated" in str(w.message)]
    assert "DynamicQuantizedLinear" in repr(q)
    x = torch.randn(8, 16)
    with torch.no_grad():
        torch.testing.assert_close(q(x), mlp(x), atol=0.05, rtol=0.05)


def test_dynamic_int8_refuses_gpu_and_non_float32(mlp: nn.Module) -> None:
    ok, why = DynamicInt8().available("cuda")
    assert not ok and "CPU only" in why
    with pytest.raises(ConfigError, match="float32"):
        DynamicInt8().apply(mlp.to(torch.bfloat16))
    with pytest.raises(ConfigError, match="no"):
        DynamicInt8().apply(nn.Sequential(nn.ReLU()))


def test_dynamic_int8_unavailable_when_torch_drops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = quantize.importlib.import_module

    def without(name: str) -> Any:
        if name in ("torch.ao.quantization", "torch.quantization"):
            raise ImportError(f"No module named {name!r}")
        return real(name)

    monkeypatch.setattr(quantize.importlib, "import_module", without)
    ok, why = DynamicInt8().available("cpu")
    assert not ok and "no quantize_dynamic" in why


def test_torchao_methods_say_why_they_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize.importlib.util, "find_spec", lambda name: None)
    assert TorchaoInt8WeightOnly().available("cuda") == (
        False,
        "torchao not installed (pip install 'greenai[torchao]')",
    )


@pytest.fixture
def fake_torchao(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A stand-in torchao whose quantize_ records its config (the plumbing, not the kernels)."""
    calls: list[Any] = []
    pkg = types.ModuleType("torchao")
    mod = types.ModuleType("torchao.quantization")
    mod.quantize_ = lambda model, config: calls.append((model, config))  # type: ignore[attr-defined]
    mod.Int8WeightOnlyConfig = lambda: "int8-config"  # type: ignore[attr-defined]
    mod.float8_dynamic_activation_float8_weight = lambda: "fp8-old-name"  # type: ignore[attr-defined]
    pkg.quantization = mod  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchao", pkg)
    monkeypatch.setitem(sys.modules, "torchao.quantization", mod)
    monkeypatch.setattr(quantize.importlib.util, "find_spec", lambda name: object())
    return calls


def test_torchao_plumbing_with_a_fake(
    fake_torchao: list[Any], mlp: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert TorchaoInt8WeightOnly().available("cpu") == (False, "needs CUDA")
    monkeypatch.setattr(quantize, "cuda_capability", lambda device: (8, 0))
    assert TorchaoInt8WeightOnly().available("cuda") == (True, "")
    ok, why = TorchaoFloat8Dynamic().available("cuda")
    assert not ok and ">= 8.9" in why
    monkeypatch.setattr(quantize, "cuda_capability", lambda device: (9, 0))
    assert TorchaoFloat8Dynamic().available("cuda") == (True, "")
    out = TorchaoInt8WeightOnly().apply(mlp)
    TorchaoFloat8Dynamic().apply(mlp)
    assert [c for _, c in fake_torchao] == ["int8-config", "fp8-old-name"]
    assert fake_torchao[0][0] is out and out is not mlp


def test_cuda_capability_is_none_without_cuda() -> None:
    assert quantize.cuda_capability("cpu") is None
