"""The uncounted-op guard: matrix work without a formula is reported, never dropped."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.errors import MeasurementWarning
from greenai.flops import count_flops, uncounted_note
from greenai.flops.guard import MATRIX_OPS, NOT_MATRIX_OPS, does_matrix_work


def test_linear_algebra_is_reported_as_uncounted() -> None:
    a, b = torch.randn(16, 16) + 16 * torch.eye(16), torch.randn(16, 4)
    with pytest.warns(MeasurementWarning, match="uncounted: aten._linalg_solve_ex ×1"):
        flops = count_flops(lambda a, b: torch.linalg.solve(a, b) @ b.T, a, b)
    assert dict(flops.uncounted) == {"aten._linalg_solve_ex": 1}
    assert "uncounted: aten._linalg_solve_ex ×1" in flops.notes
    assert flops.total == 2 * 16 * 4 * 16  # the matmul after it is still counted
    assert flops.to_dict()["uncounted"] == {"aten._linalg_solve_ex": 1}


def test_uncounted_calls_add_up_and_name_every_op() -> None:
    x = torch.randn(8, 8)

    def twice(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.qr(x).Q + torch.linalg.qr(x).R + torch.fft.fft(x).real

    with pytest.warns(MeasurementWarning):
        flops = count_flops(twice, x)
    assert dict(flops.uncounted) == {"aten.linalg_qr": 2, "aten._fft_r2c": 1}
    assert "uncounted: aten._fft_r2c ×1, aten.linalg_qr ×2" in flops.notes


def test_a_new_op_is_caught_by_its_name() -> None:
    # Stands for an op a later torch adds without a formula: nothing lists it, its name does.
    lib = torch.library.Library("greenai_guard_test", "DEF")
    lib.define("fused_matmul(Tensor a, Tensor b) -> Tensor")
    lib.impl("fused_matmul", lambda a, b: a @ b, "CompositeExplicitAutograd")
    op = torch.ops.greenai_guard_test.fused_matmul
    with pytest.warns(MeasurementWarning):
        flops = count_flops(lambda a, b: op(op(a, b), b), torch.randn(4, 4), torch.randn(4, 4))
    assert dict(flops.uncounted) == {"greenai_guard_test.fused_matmul": 2}


def test_counted_and_elementwise_ops_are_not_reported() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    flops = count_flops(model, torch.randn(2, 3, 8, 8), backward=True)
    assert not flops.uncounted
    assert not any(note.startswith("uncounted") for note in flops.notes)


@pytest.mark.parametrize(
    "op",
    [
        "aten.mkldnn_rnn_layer",
        "aten._cudnn_rnn",
        "aten._weight_int4pack_mm",
        "aten.cudnn_convolution_add_relu",
        "aten._native_multi_head_attention",
        "aten.linalg_qr",
        "aten.linalg_pinv",
        "quantized.conv2d_relu",
        "onednn.qlinear_pointwise",
        "aten._scaled_grouped_mm",
        "flex_attention",
    ],
)
def test_matrix_ops_are_recognised(op: str) -> None:
    assert does_matrix_work(op)


@pytest.mark.parametrize(
    "op",
    [
        "aten.mul",
        "aten.cummax",
        "aten.upsample_bilinear2d",
        "aten._convert_indices_from_coo_to_csr",
        "aten._thnn_fused_lstm_cell",
        "aten._cudnn_rnn_flatten_weight",
        "quantized.linear_prepack",
        "aten.fbgemm_pack_quantized_matrix",
        "aten.native_layer_norm",
        "aten._softmax",
        "aten.mvlgamma",
    ],
)
def test_other_ops_are_not(op: str) -> None:
    assert not does_matrix_work(op)


def test_the_maintained_lists_name_real_ops() -> None:
    known = {n.split(".")[0].replace("::", ".") for n in torch._C._dispatch_get_all_op_names()}
    assert sorted(MATRIX_OPS - known) == []
    assert sorted(NOT_MATRIX_OPS - known) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda a: torch.linalg.pinv(a),
        lambda a: torch.linalg.det(a),
        lambda a: torch.linalg.eigvals(a),
        lambda a: torch.linalg.matrix_norm(a, ord=2),
        lambda a: torch.linalg.lstsq(a, a).solution,
        lambda a: torch.linalg.matrix_exp(a),
        lambda a: torch.cholesky_solve(a, torch.linalg.cholesky(a @ a.T + 8 * torch.eye(8))),
    ],
    ids=["pinv", "det", "eigvals", "matrix_norm-2", "lstsq", "matrix_exp", "cholesky_solve"],
)
def test_torch_linalg_is_never_silent(call: object) -> None:
    with pytest.warns(MeasurementWarning, match="uncounted"):
        flops = count_flops(call, torch.randn(8, 8))  # type: ignore[arg-type]
    assert flops.uncounted


def test_uncounted_note() -> None:
    assert uncounted_note({}) is None
    assert uncounted_note({"b.y": 1, "a.x": 3}) == "uncounted: a.x ×3, b.y ×1"


def test_ops_counted_as_zero_by_convention_are_named_in_a_note() -> None:
    """Issue 23: BatchNorm/GroupNorm/upsample/adaptive pooling count 0, and now say so."""
    import torch

    from greenai.flops import count_flops

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.GroupNorm(2, 8),
        torch.nn.Upsample(scale_factor=2),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.LayerNorm(4),  # every transformer's norm: 0 in FlopCounterMode too
        torch.nn.MaxPool2d(2),
        torch.nn.AvgPool2d(2),
    )
    notes = count_flops(model, torch.randn(1, 3, 8, 8)).notes
    (note,) = [n for n in notes if "by convention" in n]
    for op in ("batch_norm", "group_norm", "upsample_nearest2d", "adaptive_avg_pool2d"):
        assert op in note
    for op in ("native_layer_norm", "max_pool2d", "aten.avg_pool2d"):
        assert op in note
    assert "fvcore estimates" in note  # fvcore does not count them as 0
    linear = count_flops(torch.nn.Linear(3, 3), torch.randn(2, 3))
    assert not any("by convention" in n for n in linear.notes)
