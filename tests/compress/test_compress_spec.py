from __future__ import annotations

import pytest

from greenai.compress import (
    CPU_METHODS,
    DEFAULT_METHODS,
    DynamicInt8,
    L1Unstructured,
    StructuredL1,
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
        "l1-layer 30%",
        "l1-layer 50%",
        "l1-layer 70%",
        "structured 50%",
        "int8-dynamic",
    ]
    assert len(parse_methods(DEFAULT_METHODS)) == 10
    assert [m.label for m in parse_methods("baseline, l1:0.5,")] == ["l1-layer 50%"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("structure:0.5", "did you mean 'structured'"),
        ("l1", "needs a fraction"),
        ("l1:x", "needs a fraction"),
        ("int8-dynamic:3", "takes no value"),
        ("structured:1.5", "amount"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_method(spec)
