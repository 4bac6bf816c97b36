"""Vendor datasheet peak FLOP/s of common GPUs, dense, by dtype.

Datasheets print tensor-core figures "with sparsity" (2:4 structured sparsity doubles them);
every number here is the dense one, half of those. ``fp32`` is the non-tensor-core FP32
rate; ``tf32`` is what fp32 matmuls reach when TF32 is allowed. ``int8`` is in ops/s.
Only GPUs whose datasheet numbers we are sure of are listed; anything else gives None.
"""

from __future__ import annotations

import re
from typing import Any

from greenai.errors import ConfigError

__all__ = ["mfu_note", "peak_flops_per_s"]

T = 1e12

# name -> dtype -> dense peak FLOP/s (int8: ops/s)
_PEAKS: dict[str, dict[str, float]] = {
    # NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column (sparse figures halved).
    "H100 SXM": {
        "fp32": 67 * T,
        "tf32": 494.5 * T,
        "bf16": 989.5 * T,
        "fp16": 989.5 * T,
        "fp8": 1979 * T,
        "int8": 1979 * T,
    },
    # NVIDIA H100 Tensor Core GPU datasheet, H100 PCIe column (sparse figures halved).
    "H100 PCIe": {
        "fp32": 51 * T,
        "tf32": 378 * T,
        "bf16": 756.5 * T,
        "fp16": 756.5 * T,
        "fp8": 1513 * T,
        "int8": 1513 * T,
    },
    # NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column (sparse figures halved).
    "H200 SXM": {
        "fp32": 67 * T,
        "tf32": 494.5 * T,
        "bf16": 989.5 * T,
        "fp16": 989.5 * T,
        "fp8": 1979 * T,
        "int8": 1979 * T,
    },
    # NVIDIA A100 Tensor Core GPU datasheet: the 40GB/80GB PCIe and SXM columns are equal.
    "A100": {
        "fp32": 19.5 * T,
        "tf32": 156 * T,
        "bf16": 312 * T,
        "fp16": 312 * T,
        "int8": 624 * T,
    },
    # NVIDIA L4 Tensor Core GPU datasheet (sparse figures halved).
    "L4": {
        "fp32": 30.3 * T,
        "tf32": 60 * T,
        "bf16": 121 * T,
        "fp16": 121 * T,
        "fp8": 242.5 * T,
        "int8": 242.5 * T,
    },
    # NVIDIA L40S GPU datasheet (dense figures as printed beside the sparse ones).
    "L40S": {
        "fp32": 91.6 * T,
        "tf32": 183 * T,
        "bf16": 362.05 * T,
        "fp16": 362.05 * T,
        "fp8": 733 * T,
        "int8": 733 * T,
    },
    # NVIDIA A10 Tensor Core GPU datasheet (dense figures as printed beside the sparse ones).
    "A10": {
        "fp32": 31.2 * T,
        "tf32": 62.5 * T,
        "bf16": 125 * T,
        "fp16": 125 * T,
        "int8": 250 * T,
    },
    # NVIDIA T4 Tensor Core GPU datasheet (Turing: no TF32, BF16 or sparsity).
    "T4": {"fp32": 8.1 * T, "fp16": 65 * T, "int8": 130 * T},
    # NVIDIA Tesla V100 GPU datasheet, SXM2 column ("Tensor Performance" is FP16).
    "V100 SXM2": {"fp32": 15.7 * T, "fp16": 125 * T},
    # NVIDIA Tesla V100 GPU datasheet, PCIe column.
    "V100 PCIe": {"fp32": 14 * T, "fp16": 112 * T},
    # NVIDIA V100S datasheet (PCIe).
    "V100S PCIe": {"fp32": 16.4 * T, "fp16": 130 * T},
    # NVIDIA Ada Lovelace GPU architecture whitepaper, GeForce RTX 4090 column. FP16/BF16/FP8
    # with FP32 accumulate (what PyTorch matmuls use); GeForce runs FP16 accumulate 2× faster.
    "RTX 4090": {
        "fp32": 82.6 * T,
        "tf32": 82.6 * T,
        "bf16": 165.2 * T,
        "fp16": 165.2 * T,
        "fp8": 330.3 * T,
        "int8": 660.6 * T,
    },
    # AMD Instinct MI300X data sheet (dense figures; FP32 is the vector rate). One device as
    # AMD SMI lists it in SPX mode; a compute partition (CPX) is a fraction: not matched.
    "MI300X": {
        "fp32": 163.4 * T,
        "tf32": 653.7 * T,
        "bf16": 1307.4 * T,
        "fp16": 1307.4 * T,
        "fp8": 2614.9 * T,
        "int8": 2614.9 * T,
    },
    # AMD Instinct MI250X data sheet, halved: the card's two GCDs are two devices in AMD SMI
    # and ROCm (383 TFLOPs FP16/BF16, 383 TOPS INT8, 47.9 TFLOPs FP32 vector per card).
    "MI250X GCD": {"fp32": 23.95 * T, "bf16": 191.5 * T, "fp16": 191.5 * T, "int8": 191.5 * T},
}

# Patterns on the normalised name (lower case, "-" and "_" as spaces), first match wins.
# NVML names: "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA H200",
# "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "Tesla T4", "Tesla V100-SXM2-16GB",
# "NVIDIA GeForce RTX 4090". NVL parts, the A10G, L40 and H800/A800 differ: not matched.
_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\bnvl\b", ""),
    (r"\bh100\b.*\bpcie\b", "H100 PCIe"),
    (r"\bh100\b.*\b(sxm\d?|hbm3)\b", "H100 SXM"),
    (r"\bh200\b", "H200 SXM"),
    (r"\ba100\b.*\b(sxm\d?|pcie)\b", "A100"),
    (r"\bl40s\b", "L40S"),
    (r"\bl4\b", "L4"),
    (r"\ba10\b", "A10"),
    (r"\bt4\b", "T4"),
    (r"\bv100s\b.*\bpcie\b", "V100S PCIe"),
    (r"\bv100\b.*\bsxm2\b", "V100 SXM2"),
    (r"\bv100\b.*\bpcie\b", "V100 PCIe"),
    (r"\brtx 4090$", "RTX 4090"),
    # greenai.devices.amd names: "AMD Instinct MI300X", "AMD Instinct MI250X (one GCD)".
    (r"\bmi300x\b", "MI300X"),
    (r"\bmi250x \(one gcd\)", "MI250X GCD"),
)

_DTYPES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "tf32": "tf32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp8": "fp8",
    "float8": "fp8",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
    "float8_e4m3fnuz": "fp8",
    "float8_e5m2fnuz": "fp8",
    "int8": "int8",
    "qint8": "int8",
    "quint8": "int8",
    "fp64": "fp64",
    "float64": "fp64",
    "double": "fp64",
}


def _gpu(device_name: str) -> str | None:
    name = re.sub(r"[-_]", " ", device_name.strip().lower())
    name = re.sub(r"\s+", " ", name)
    for pattern, gpu in _PATTERNS:
        if re.search(pattern, name):
            return gpu or None
    return None


def _dtype(dtype: Any) -> str:
    text = str(dtype).lower().removeprefix("torch.")
    if text not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {sorted(set(_DTYPES))}")
    return _DTYPES[text]


def check_dtype(dtype: Any) -> str:
    """The table's name for ``dtype``. Raises ConfigError for a dtype greenai does not know."""
    return _dtype(dtype)


def peak_flops_per_s(device_name: str, dtype: Any) -> float | None:
    """Datasheet dense peak of a GPU for a dtype. Units: FLOP/s (int8: ops/s).

    Args:
        device_name: The GPU's name as NVML reports it (``"NVIDIA H100 80GB HBM3"``).
        dtype: A ``torch.dtype`` or a string: ``fp32``/``float32``, ``tf32``,
            ``fp16``/``float16``/``half``, ``bf16``/``bfloat16``, ``fp8`` (and the
            ``float8_*`` dtypes), ``int8``, ``fp64``.

    Returns:
        The peak, or None when the GPU is not in the table or has no figure for the dtype
        (no FP64 figures are kept; T4 and V100 have no TF32/BF16).

    Raises:
        ConfigError: ``dtype`` is none of the above.
    """
    key = _dtype(dtype)
    gpu = _gpu(device_name) if isinstance(device_name, str) else None
    if gpu is None:
        return None
    return _PEAKS[gpu].get(key)


def mfu_note(mfu: float | None) -> str | None:
    """A note for an MFU above 1, which no run can reach: the FLOPs or the peak are wrong.

    MFU is FLOPs per second over the datasheet peak of the GPUs, so above 1 either the FLOP
    count is too high (FLOPs counted per batch but added per micro-batch, a model counted
    twice) or the peak is too low for what ran (``dtype=`` says fp32 while TF32 or bf16
    tensor cores did the matmuls).

    Args:
        mfu: Model FLOP utilisation, a fraction; None when it was not computed.

    Returns:
        The note when ``mfu`` is above 1, else None.

    Raises:
        ConfigError: ``mfu`` is not a number, or is negative or NaN.
    """
    if mfu is None:
        return None
    if isinstance(mfu, bool) or not isinstance(mfu, (int, float)) or not mfu >= 0:
        raise ConfigError(f"mfu must be a number >= 0 or None, got {mfu!r}")
    if mfu <= 1:
        return None
    return (
        f"MFU {mfu:.2f} is above 1, which no GPU can reach: the FLOPs are too high (counted "
        "twice, or per batch but added per micro-batch) or the peak too low for what ran "
        "(pass dtype='tf32' or 'bf16' if tensor cores did the matmuls)"
    )
