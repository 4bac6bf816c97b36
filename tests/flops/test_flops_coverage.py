"""Ops that FlopCounterMode (torch 2.13) counts as 0 on their own, each against a hand formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from greenai.flops import count_flops
from greenai.flops.formulas import Ledger, custom_mapping

aten = torch.ops.aten


def plain_count(fn: object, *args: object) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args)  # type: ignore[operator]
    return int(counter.get_total_flops())


def lstm_flops(tokens: int, sizes: list[int], hidden: int, gates: int = 4, dirs: int = 1) -> int:
    """2 FLOPs per multiply-add of W_ih·x and W_hh·h, per token, layer and direction."""
    return sum(dirs * 2 * tokens * gates * hidden * (size + hidden) for size in sizes)


# --- RNNs --------------------------------------------------------------------------------


def test_lstm_on_cpu_runs_as_mkldnn_and_is_counted() -> None:
    lstm, x = nn.LSTM(256, 512), torch.randn(100, 8, 256)
    assert plain_count(lstm, x) == 0  # why the formula exists: aten.mkldnn_rnn_layer
    flops = count_flops(lstm, x)
    assert flops.total == 2_516_582_400 == lstm_flops(100 * 8, [256], 512)
    assert dict(flops.by_operator) == {"aten.mkldnn_rnn_layer": 2_516_582_400}
    assert not flops.uncounted
    assert any("fused RNN" in note for note in flops.notes)


@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked_bidirectional_lstm_counts_every_layer_and_direction(batch_first: bool) -> None:
    t, b, i, h = 7, 3, 10, 16
    lstm = nn.LSTM(i, h, num_layers=3, bidirectional=True, batch_first=batch_first)
    x = torch.randn((b, t, i) if batch_first else (t, b, i))
    expected = lstm_flops(t * b, [i, 2 * h, 2 * h], h, dirs=2)
    flops = count_flops(lstm, x)
    assert flops.total == expected
    assert set(flops.by_operator) == {"aten.mkldnn_rnn_layer"}
    # The unfused path (oneDNN off) runs addmm/mm, which FlopCounterMode counts itself.
    with torch.backends.mkldnn.flags(enabled=False):
        assert plain_count(lstm, x) == expected


def test_lstm_backward_on_cpu_counts_every_gradient_the_fused_kernel_computes() -> None:
    t, b, i, h = 6, 2, 8, 16
    lstm, x = nn.LSTM(i, h, num_layers=2, bidirectional=True), torch.randn(t, b, i)
    forward = lstm_flops(t * b, [i, 2 * h], h, dirs=2)
    flops = count_flops(lstm, x, backward=True)
    assert (flops.forward, flops.backward) == (forward, 2 * forward)
    assert dict(flops.by_operator)["aten.mkldnn_rnn_layer_backward"] == 2 * forward
    # The unfused backward skips what nothing needs: the input's gradient in the first
    # layer and the gradient of the zero initial state h0, in each layer and direction.
    with torch.backends.mkldnn.flags(enabled=False):
        unfused = count_flops(lstm, x, backward=True)
    skipped = 2 * (2 * t * b * 4 * h * i) + 4 * (2 * b * 4 * h * h)
    assert unfused.forward == forward
    assert unfused.backward == 2 * forward - skipped


def test_packed_sequence_counts_the_real_tokens_only() -> None:
    i, h = 8, 16
    lstm = nn.LSTM(i, h)
    padded, lengths = torch.randn(5, 2, i), torch.tensor([5, 3])
    packed = nn.utils.rnn.pack_padded_sequence(padded, lengths)
    assert count_flops(lstm, packed).total == lstm_flops(5 + 3, [i], h)


@pytest.mark.parametrize(
    ("module", "gates"),
    [(nn.GRU(8, 16, num_layers=2), 3), (nn.RNN(8, 16, num_layers=2), 1)],
)
def test_gru_and_rnn_on_cpu_run_unfused_and_are_counted(module: nn.Module, gates: int) -> None:
    t, b = 5, 2
    flops = count_flops(module, torch.randn(t, b, 8))
    assert flops.total == lstm_flops(t * b, [8, 16], 16, gates=gates)


@pytest.mark.parametrize(
    "module",
    [
        nn.LSTM(8, 16, num_layers=2, bidirectional=True),
        nn.LSTM(8, 16, proj_size=4),
        nn.GRU(8, 16, num_layers=2),
        nn.RNN(8, 16, bidirectional=True, nonlinearity="relu"),
    ],
    ids=["lstm-2-bi", "lstm-proj", "gru-2", "rnn-relu-bi"],
)
@pytest.mark.parametrize("name", ["_cudnn_rnn", "miopen_rnn"])
def test_cudnn_rnn_formula_agrees_with_the_cpu_count(module: nn.RNNBase, name: str) -> None:
    # cuDNN (and MIOpen) run the whole stack as one op; no GPU here, so the formula is
    # called as FlopCounterMode would call it, with the module's own weights.
    t, b = 5, 2
    x = torch.randn(t, b, 8)
    cpu = count_flops(module, x).total
    mapping = custom_mapping(causal=False, ledger=Ledger())
    weights = module._flat_weights
    assert mapping[getattr(aten, name)](x, weights, len(weights)) == cpu
    backward = mapping[getattr(aten, name + "_backward")]
    assert backward(x, weights, len(weights), output_mask=[True, True, True, True]) == 2 * cpu
    assert backward(x, weights, len(weights), output_mask=[True, True, True, False]) == cpu


# --- transformer inference fast paths ----------------------------------------------------


def mha_flops(b: int, lq: int, lkv: int, e: int) -> int:
    """q and output projections, k and v projections, then QKᵀ and AV."""
    return 2 * b * e * e * (2 * lq + 2 * lkv) + 4 * b * lq * lkv * e


def test_multihead_attention_fast_path_is_counted() -> None:
    mha, x = nn.MultiheadAttention(512, 8, batch_first=True).eval(), torch.randn(8, 128, 512)
    with torch.no_grad():
        assert plain_count(lambda: mha(x, x, x)) == 0  # one fused aten op
        flops = count_flops(mha, x, x, x)
    assert flops.total == 2_415_919_104 == mha_flops(8, 128, 128, 512)
    assert dict(flops.by_operator) == {"aten._native_multi_head_attention": 2_415_919_104}
    mha.train()  # no fast path: linear, bmm and addmm, counted by FlopCounterMode
    assert count_flops(mha, x, x, x).total == 2_415_919_104


def encoder_flops(lengths: list[int], e: int, ff: int, layers: int) -> int:
    per_token = 2 * (3 * e * e + e * e + 2 * e * ff)
    return layers * sum(n * per_token + 4 * n * n * e for n in lengths)


def test_transformer_encoder_fast_path_is_counted() -> None:
    e, ff, layers = 64, 128, 2
    layer = nn.TransformerEncoderLayer(e, 4, ff, batch_first=True)
    encoder, x = nn.TransformerEncoder(layer, layers).eval(), torch.randn(3, 10, e)
    expected = encoder_flops([10, 10, 10], e, ff, layers)
    with torch.no_grad():
        flops = count_flops(encoder, x)
    assert flops.total == expected
    assert dict(flops.by_operator) == {"aten._transformer_encoder_layer_fwd": expected}
    encoder.train()  # the slow path, counted by FlopCounterMode and the CPU attention formula
    assert count_flops(encoder, x).total == expected


def test_transformer_encoder_on_nested_tensors_counts_each_sequence_at_its_length() -> None:
    e, ff = 32, 64
    layer = nn.TransformerEncoderLayer(e, 4, ff, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2).eval()
    x, padding = torch.randn(3, 8, e), torch.zeros(3, 8, dtype=torch.bool)
    padding[0, 5:] = True  # lengths 5, 8, 8
    padding[2, 2:] = True  # lengths 5, 8, 2
    with torch.no_grad():
        flops = count_flops(encoder, x, src_key_padding_mask=padding)
    assert flops.total == encoder_flops([5, 8, 2], e, ff, 2)


# --- products ----------------------------------------------------------------------------

r = torch.randn


@pytest.mark.parametrize(
    ("fn", "args", "op", "expected"),
    [
        (torch.mv, (r(4096, 1024), r(1024)), "aten.mv", 8_388_608),
        (torch.matmul, (r(64, 32), r(32)), "aten.mv", 2 * 64 * 32),
        (torch.addmv, (r(64), r(64, 32), r(32)), "aten.addmv", 2 * 64 * 32),
        (torch.dot, (r(100), r(100)), "aten.dot", 200),
        (torch.matmul, (r(100), r(100)), "aten.dot", 200),
        (torch.vdot, (r(100), r(100)), "aten.vdot", 200),
        (torch.addr, (r(64, 32), r(64), r(32)), "aten.addr", 2 * 64 * 32),
        (torch.addbmm, (r(8, 16), r(4, 8, 32), r(4, 32, 16)), "aten.addbmm", 2 * 4 * 8 * 32 * 16),
        (
            torch._addmm_activation,
            (r(16), r(8, 32), r(32, 16)),
            "aten._addmm_activation",
            2 * 8 * 32 * 16,
        ),
        (F.bilinear, (r(8, 10), r(8, 12), r(5, 10, 12)), "aten._trilinear", 2 * 8 * 5 * 10 * 12),
        (torch.cdist, (r(30, 8), r(40, 8)), "aten._euclidean_dist", 2 * 30 * 40 * 8),
        (
            lambda a, b: torch.cdist(a, b, p=1.0),
            (r(2, 30, 8), r(2, 40, 8)),
            "aten._cdist_forward",
            2 * 2 * 30 * 40 * 8,
        ),
    ],
)
def test_products_that_flop_counter_counts_as_zero(
    fn: object, args: tuple[torch.Tensor, ...], op: str, expected: int
) -> None:
    assert plain_count(fn, *args) == 0
    flops = count_flops(fn, *args)  # type: ignore[arg-type]
    assert dict(flops.by_operator) == {op: expected}
    assert not flops.uncounted


@pytest.mark.parametrize(
    ("fn", "args", "expected"),
    [
        (torch.einsum, ("bij,bjk->bik", r(4, 64, 32), r(4, 32, 16)), 2 * 4 * 64 * 32 * 16),
        (torch.tensordot, (r(4, 64, 32), r(4, 32, 16), ([0, 2], [0, 1])), 2 * 64 * 128 * 16),
        (torch.inner, (r(64, 32), r(16, 32)), 2 * 64 * 32 * 16),
        # the cheaper order, A(BC): [32,16]@[16,8], then [64,32]@[32,8]
        (torch.linalg.multi_dot, ([r(64, 32), r(32, 16), r(16, 8)],), 2 * (32 * 16 + 64 * 32) * 8),
        (torch.matmul, (r(2, 3, 8, 4), r(2, 3, 4, 5)), 2 * 6 * 8 * 4 * 5),
        (torch.matmul, (r(2, 3, 8, 4), r(4, 5)), 2 * 6 * 8 * 4 * 5),
        (torch.baddbmm, (r(4, 64, 16), r(4, 64, 32), r(4, 32, 16)), 2 * 4 * 64 * 32 * 16),
        (torch._int_mm, (torch.ones(32, 32, dtype=torch.int8),) * 2, 2 * 32**3),
    ],
)
def test_products_that_reach_counted_ops(
    fn: object, args: tuple[object, ...], expected: int
) -> None:
    # einsum, tensordot, inner, multi_dot and matmul decompose into mm/bmm before any
    # dispatch mode sees them; _int_mm has its formula in greenai.flops.formulas.
    flops = count_flops(fn, *args)  # type: ignore[arg-type]
    assert flops.total == expected
    assert not flops.uncounted


# --- backward ----------------------------------------------------------------------------


def test_backward_with_an_input_that_requires_grad() -> None:
    layer, x = nn.Linear(64, 32), torch.randn(8, 64, requires_grad=True)
    flops = count_flops(layer, x, backward=True)
    assert (flops.forward, flops.backward) == (2 * 8 * 64 * 32, 2 * (2 * 8 * 64 * 32))
    assert (flops.forward, flops.backward) == (32_768, 65_536)
    assert x.grad is None and layer.weight.grad is None
    counter = FlopCounterMode(display=False)  # torch's own count, with .backward()
    with counter:
        layer(x).sum().backward()
    assert counter.get_total_flops() == flops.total


def test_backward_with_an_input_that_requires_grad_on_fake_tensors() -> None:
    layer, x = nn.Linear(64, 32), torch.randn(8, 64, requires_grad=True)
    flops = count_flops(layer, x, backward=True, fake=True)
    assert (flops.forward, flops.backward) == (32_768, 65_536)
