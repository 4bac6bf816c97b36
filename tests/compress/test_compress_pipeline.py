from __future__ import annotations

import pytest
import torch
from torch import nn

from greenai.compress import (
    Method,
    Pipeline,
    model_size_bytes,
    parameter_count,
    parse_method,
    sparsity,
)
from greenai.errors import ConfigError
from tests.compress.models import ResidualMLP

pytest.importorskip("torch_pruning")
pytest.importorskip("optimum.quanto")


def test_structured_then_int4_is_over_ten_times_smaller() -> None:
    torch.manual_seed(0)
    model = ResidualMLP(width=64, hidden=128).eval()
    x = torch.randn(8, 16)
    pipe = parse_method("structured:0.5+int4wo")
    assert isinstance(pipe, Pipeline)
    out = pipe.apply(model, x)
    ratio = model_size_bytes(model) / model_size_bytes(out)
    assert ratio >= 10
    first, second = pipe.steps_report
    assert first.label == "structured 50%" and second.label == "int4 weight-only"
    assert (
        first.params == parameter_count(out) == pytest.approx(parameter_count(model) / 2, rel=0.1)
    )
    assert second.size_bytes == model_size_bytes(out)
    assert model_size_bytes(model) / first.size_bytes == pytest.approx(2, rel=0.1)
    assert pipe.notes[0].startswith("steps: structured 50%: ")
    assert f"(total {ratio:.2f}×)" in pipe.notes[0]
    assert any(n.startswith("structured 50%: channel ratio") for n in pipe.notes)
    assert out(x).shape == (8, 4)


def test_steps_compose_in_order_on_a_copy() -> None:
    torch.manual_seed(0)
    model = ResidualMLP().eval()
    before = model_size_bytes(model)
    pruned_then_int8 = parse_method("l1:0.7+int8-dynamic").apply(model)
    assert model_size_bytes(model) == before
    assert sparsity(model) == 0.0
    assert sparsity(pruned_then_int8) >= 0.69  # int8 keeps the pruned zeros (and adds a few)
    assert model_size_bytes(pruned_then_int8) < before / 3


class _Never(Method):
    name = "never"

    def available(self, device: torch.device | str) -> tuple[bool, str]:
        return False, "not here"

    def _apply(self, model: nn.Module) -> nn.Module:
        return model


def test_availability_and_step_errors_name_the_step() -> None:
    pipe = Pipeline([parse_method("l1:0.5"), _Never()])
    assert pipe.available("cpu") == (False, "never: not here")
    with pytest.raises(ConfigError, match="two or more"):
        Pipeline([parse_method("l1:0.5")])
    with pytest.raises(ConfigError, match=r"step 'structured 50%'.*example inputs"):
        parse_method("structured:0.5+int4wo").apply(ResidualMLP())
