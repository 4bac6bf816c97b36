from __future__ import annotations

import pytest
import torch

from greenai.errors import ConfigError
from greenai.flops import mfu_note, peak_flops_per_s


@pytest.mark.parametrize(
    ("name", "dtype", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989.5e12),  # H100 SXM
        ("NVIDIA H100 80GB HBM3", "fp8", 1979e12),
        ("NVIDIA H100 PCIe", "bf16", 756.5e12),
        ("NVIDIA H200", torch.float16, 989.5e12),
        ("NVIDIA A100-SXM4-80GB", "tf32", 156e12),
        ("NVIDIA A100-SXM4-40GB", torch.float32, 19.5e12),
        ("NVIDIA A100 80GB PCIe", torch.int8, 624e12),
        ("NVIDIA A100-PCIE-40GB", "bfloat16", 312e12),
        ("NVIDIA L4", "fp8", 242.5e12),
        ("NVIDIA L40S", "bf16", 362.05e12),
        ("NVIDIA A10", "fp16", 125e12),
        ("Tesla T4", "half", 65e12),
        ("Tesla V100-SXM2-16GB", torch.float16, 125e12),
        ("Tesla V100-PCIE-32GB", "fp32", 14e12),
        ("Tesla V100S-PCIE-32GB", "fp16", 130e12),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2e12),
        ("nvidia h100 80gb hbm3", "float8_e4m3fn", 1979e12),
    ],
)
def test_datasheet_dense_peaks(name: str, dtype: object, peak: float) -> None:
    assert peak_flops_per_s(name, dtype) == pytest.approx(peak)


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA H100 NVL",
        "NVIDIA H200 NVL",
        "NVIDIA A10G",
        "NVIDIA L40",
        "NVIDIA H800",
        "NVIDIA GeForce RTX 4090 D",
        "NVIDIA GeForce RTX 4090 Laptop GPU",
        "AMD Instinct MI250X/MI250",  # AMD SMI's name for both parts: ambiguous
        "",
    ],
)
def test_unknown_gpus_give_none(name: str) -> None:
    assert peak_flops_per_s(name, "bf16") is None


def test_dtypes_a_gpu_lacks_give_none() -> None:
    assert peak_flops_per_s("Tesla T4", torch.bfloat16) is None
    assert peak_flops_per_s("NVIDIA A100-SXM4-80GB", "fp8") is None
    assert peak_flops_per_s("NVIDIA H100 80GB HBM3", torch.float64) is None


def test_sparsity_figures_are_not_used() -> None:
    # Every tensor-core figure is dense: bf16 is never 2x the fp16 entry or above it.
    h100 = peak_flops_per_s("NVIDIA H100 80GB HBM3", "bf16")
    assert h100 is not None and h100 < 1e15


def test_unknown_dtype_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dtype"):
        peak_flops_per_s("NVIDIA H100 80GB HBM3", "int4")


@pytest.mark.parametrize("mfu", [None, 0.0, 0.45, 1.0, 1])
def test_mfu_up_to_1_needs_no_note(mfu: float | None) -> None:
    assert mfu_note(mfu) is None


@pytest.mark.parametrize("mfu", [1.01, 2.0, 14.1, 3])
def test_mfu_above_1_is_flagged(mfu: float) -> None:
    note = mfu_note(mfu)
    assert note is not None and f"MFU {mfu:.2f} is above 1" in note
    assert "dtype=" in note and "FLOPs" in note


@pytest.mark.parametrize("mfu", [-0.1, float("nan"), "0.5", True])
def test_mfu_note_rejects_what_is_no_mfu(mfu: object) -> None:
    with pytest.raises(ConfigError, match="mfu"):
        mfu_note(mfu)  # type: ignore[arg-type]
