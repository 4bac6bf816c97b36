from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune
from flops_models import GPT
from torch import nn
from torch.utils import flop_counter as torch_flops

from greenai.errors import ConfigError, MeasurementWarning
from greenai.flops import FakeModeError, count_flops
from greenai.flops.formulas import Ledger, custom_mapping

aten = torch.ops.aten

M, K, N = 8, 32, 16


def quantized_mlp() -> nn.Module:
    model = nn.Sequential(nn.Linear(K, N), nn.ReLU(), nn.Linear(N, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated, still shipped
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def test_matmul_is_2mnk() -> None:
    a, b = torch.randn(M, K), torch.randn(K, N)
    flops = count_flops(torch.mm, a, b)
    assert flops.total == flops.executed == flops.forward == 2 * M * N * K
    assert flops.by_operator == {"aten.mm": 2 * M * N * K}


def test_linear_without_bias_is_2mnk() -> None:
    flops = count_flops(nn.Linear(K, N, bias=False), torch.randn(M, K))
    assert flops.total == 2 * M * N * K
    assert flops.by_module == {"Linear": 2 * M * N * K}


def test_plain_flop_counter_misses_cpu_attention() -> None:
    # Why the CPU attention formula exists (torch 2.13): FlopCounterMode counts 0 here.
    q = k = v = torch.randn(1, 2, 16, 8)
    counter = torch_flops.FlopCounterMode(display=False)
    with counter:
        F.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 0
    flops = count_flops(F.scaled_dot_product_attention, q, k, v)
    assert flops.total == torch_flops.sdpa_flop_count(q.shape, k.shape, v.shape) > 0
    assert any("CPU attention" in note for note in flops.notes)


def test_fake_count_equals_real_count_with_backward() -> None:
    model = GPT(vocab=97, n_layers=2, d_model=32, n_heads=4, context=16)
    idx = torch.randint(0, 97, (2, 16))
    real = count_flops(model, idx, backward=True)
    fake = count_flops(model, idx, backward=True, fake=True)
    assert real.total > 0 and "aten._scaled_dot_product_flash_attention_for_cpu_backward" in (
        real.by_operator
    )
    assert fake.to_dict() | {"notes": []} == real.to_dict() | {"notes": []}


def test_is_causal_halves_executed_attention_only() -> None:
    q = k = v = torch.randn(1, 2, 16, 8)
    dense = count_flops(F.scaled_dot_product_attention, q, k, v)
    masked = count_flops(F.scaled_dot_product_attention, q, k, v, is_causal=True)
    assert masked.nominal == dense.nominal
    assert masked.executed == dense.nominal // 2
    halved = count_flops(F.scaled_dot_product_attention, q, k, v, causal=True)
    assert halved.nominal == halved.executed == dense.nominal // 2


def test_causal_option_halves_attention_backward_too() -> None:
    q, k, v = (torch.randn(1, 2, 16, 8, requires_grad=True) for _ in range(3))
    dense = count_flops(F.scaled_dot_product_attention, q, k, v, backward=True)
    causal = count_flops(F.scaled_dot_product_attention, q, k, v, backward=True, causal=True)
    assert causal.forward == dense.forward // 2
    assert causal.backward == dense.backward // 2


def test_causal_without_fused_attention_warns() -> None:
    with pytest.warns(MeasurementWarning, match="nothing was halved"):
        flops = count_flops(torch.mm, torch.randn(M, K), torch.randn(K, N), causal=True)
    assert flops.total == 2 * M * N * K


def test_dynamically_quantized_linear_is_counted() -> None:
    x = torch.randn(M, K)
    flops = count_flops(quantized_mlp(), x)
    dense = count_flops(nn.Sequential(nn.Linear(K, N), nn.ReLU(), nn.Linear(N, 4)), x)
    assert flops.by_operator == {"quantized.linear_dynamic": 2 * M * (K * N + N * 4)}
    # Same shapes, same nominal; the int8 GEMMs execute as many int ops.
    assert flops.nominal == flops.executed == dense.nominal > 0
    assert any("int8" in note for note in flops.notes)


def test_quantized_ops_count_the_same_on_fake_tensors() -> None:
    # No fake kernel: FakeTensorMode runs the real one on zeros. Twice, to pass torch's
    # fake-op cache, which cannot compare the packed weights.
    model, x = quantized_mlp(), torch.randn(M, K)
    real = count_flops(model, x)
    for _ in range(2):
        assert count_flops(model, x, fake=True).total == real.total


def test_code_that_reads_values_cannot_run_on_fake_tensors() -> None:
    def reads_values(x: torch.Tensor) -> torch.Tensor:
        return torch.mm(x, x.T) * x.sum().item()

    with pytest.raises(FakeModeError, match="fake=False"):
        count_flops(reads_values, torch.randn(M, K), fake=True)
    assert count_flops(reads_values, torch.randn(M, K)).total == 2 * M * M * K


def test_int_mm_is_counted() -> None:
    a = torch.randint(-128, 127, (M, K), dtype=torch.int8)
    b = torch.randint(-128, 127, (K, N), dtype=torch.int8)
    flops = count_flops(torch._int_mm, a, b)
    assert flops.by_operator == {"aten._int_mm": 2 * M * N * K}
    assert flops.executed == flops.nominal


def test_weight_only_int8_matmul_is_counted() -> None:
    x = torch.randn(M, K, dtype=torch.bfloat16)
    w = torch.randint(-128, 127, (N, K), dtype=torch.int8)
    flops = count_flops(torch._weight_int8pack_mm, x, w, torch.ones(N, dtype=torch.bfloat16))
    assert flops.by_operator == {"aten._weight_int8pack_mm": 2 * M * N * K}


def test_grouped_query_attention_counts_the_query_heads() -> None:
    q, kv = torch.randn(1, 8, 16, 8), torch.randn(1, 2, 16, 8)
    flops = count_flops(F.scaled_dot_product_attention, q, kv, kv, enable_gqa=True)
    assert flops.total == 2 * (2 * 8 * 16 * 16 * 8)  # QK^T and AV over 8 query heads


def test_pruned_model_executes_dense() -> None:
    layer = nn.Linear(K, N, bias=False)
    torch.nn.utils.prune.l1_unstructured(layer, "weight", amount=0.5)
    flops = count_flops(layer, torch.randn(M, K))
    assert flops.nominal == flops.executed == 2 * M * N * K


def test_semi_structured_sparse_linear_executes_half() -> None:
    # 2:4 kernels are CUDA-only; on meta, F.linear still reaches FlopCounterMode as an mm
    # on the SparseSemiStructuredTensor (whose shape is the dense one), and nothing runs.
    from torch.sparse import SparseSemiStructuredTensorCUTLASS

    packed = torch.empty(N, K // 2, device="meta", dtype=torch.float16)
    meta = torch.empty(N, K // 16, device="meta", dtype=torch.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "prototype stage"
        weight = SparseSemiStructuredTensorCUTLASS(
            torch.Size([N, K]), packed, meta, packed, meta, None, requires_grad=False
        )
    x = torch.empty(M, K, device="meta", dtype=torch.float16)
    flops = count_flops(F.linear, x, weight)
    assert flops.nominal == 2 * M * N * K
    assert flops.executed == M * N * K
    assert any("2:4" in note for note in flops.notes)


def test_compressed_sparse_ops_take_k_from_the_dense_operand() -> None:
    ledger = Ledger()
    formula = custom_mapping(causal=False, ledger=ledger)[aten._sparse_semi_structured_linear]
    x, compressed = torch.empty(M, K, device="meta"), torch.empty(N, K // 2, device="meta")
    out = torch.empty(M, N, device="meta")
    assert formula(x, compressed, compressed, out_val=out) == 2 * M * N * K
    assert ledger.executed_delta == {"aten._sparse_semi_structured_linear": -(M * N * K)}


def test_no_side_effects_on_grads_buffers_and_rng() -> None:
    model = nn.Sequential(nn.Linear(K, N), nn.BatchNorm1d(N), nn.Dropout(0.5), nn.Linear(N, 2))
    model.train()
    x = torch.randn(M, K)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    for fake in (False, True):
        count_flops(model, x, backward=True, fake=fake)
        assert all(p.grad is None for p in model.parameters())
        assert all(torch.equal(v, stats[k]) for k, v in model.state_dict().items())
        assert torch.equal(torch.get_rng_state(), rng)


def test_backward_of_a_plain_function_reaches_its_inputs() -> None:
    a = torch.randn(M, K, requires_grad=True)
    b = torch.randn(K, N)
    flops = count_flops(lambda x, y: {"out": x @ y}, a, b, backward=True)
    # backward computes only grad(a) = grad_out @ b.T: one more matmul of the same size.
    assert (flops.forward, flops.backward) == (2 * M * N * K, 2 * M * N * K)
    assert a.grad is None


def test_keyword_arguments_reach_the_model() -> None:
    flops = count_flops(F.linear, torch.randn(M, K), weight=torch.randn(N, K))
    assert flops.total == 2 * M * N * K


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: count_flops("not a model"), "callable"),
        (lambda: count_flops(torch.mm, backward="yes"), "backward"),
        (lambda: count_flops(torch.mm, causal=1), "causal"),
        (lambda: count_flops(torch.mm, fake=None), "fake"),
        (
            lambda: count_flops(torch.mm, torch.randn(2, 2), torch.randn(2, 2), backward=True),
            "requires grad",
        ),
    ],
)
def test_invalid_calls_raise_config_error(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]


def test_errors_of_the_model_itself_pass_through() -> None:
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        count_flops(nn.Linear(K, N), torch.randn(M, K + 1))
