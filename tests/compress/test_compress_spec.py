from __future__ import annotations

import pytest

from greenai.compress import (
    CPU_METHODS,
    DEFAULT_METHODS,
    DynamicInt8,
    L1Unstructured,
    Pipeline,
    StructuredL1,
    WeightOnly,
    parse_method,
    parse_methods,
)
from greenai.errors import ConfigError


def test_specs_build_the_methods() -> None:
    m = parse_method("l1-global-masked:0.25")
    assert isinstance(m, L1Unstructured)
    assert m.params == {"sparsity": 0.25, "scope": "global", "masks": "attached"}
    assert isinstance(parse_method(" structured:0.5"), StructuredL1)
    assert isinstance(parse_method("int8-dynamic"), DynamicInt8)
    assert [m.label for m in parse_methods(CPU_METHODS)] == [
        "l1-layer 50%",
        "structured 50%",
        "int8-dynamic",
        "int4 weight-only",
        "structured 50% + int8-dynamic",
        "structured 50% + int4 weight-only",
    ]
    assert len(parse_methods(DEFAULT_METHODS)) == 16
    assert [m.label for m in parse_methods("baseline, l1:0.5,")] == ["l1-layer 50%"]


def test_pipelines_and_low_bit_specs() -> None:
    pipe = parse_method("structured:0.5+int8-dynamic+int4wo")
    assert isinstance(pipe, Pipeline)
    assert [type(s) for s in pipe.steps] == [StructuredL1, DynamicInt8, WeightOnly]
    assert pipe.label == "structured 50% + int8-dynamic + int4 weight-only"
    assert pipe.needs_inputs
    assert [parse_method(f"int{b}wo").params["bits"] for b in (8, 4, 2)] == [8, 4, 2]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("structure:0.5", "did you mean 'structured'"),
        ("l1", "needs a fraction"),
        ("l1:x", "needs a fraction"),
        ("int8-dynamic:3", "takes no value"),
        ("structured:1.5", "amount"),
        ("l1:0.5+", "empty step"),
        ("int4wo+nope", "unknown method 'nope'"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_method(spec)
