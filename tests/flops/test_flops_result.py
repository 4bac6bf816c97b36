from __future__ import annotations

import json

import pytest

from greenai.errors import ConfigError
from greenai.flops import FlopCount


def make(nominal: int = 10, executed: int = 6, forward: int = 4, **fields: object) -> FlopCount:
    return FlopCount(
        nominal=nominal,
        executed=executed,
        forward=forward,
        backward=nominal - forward,
        by_module={"Net": nominal},
        by_operator={"aten.mm": nominal},
        executed_by_operator={"aten.mm": executed},
        **fields,  # type: ignore[arg-type]
    )


def test_total_is_nominal_and_to_dict_is_json_ready() -> None:
    flops = make(notes=("a", "a", "b"))
    assert flops.total == flops.nominal == 10
    d = flops.to_dict()
    assert d["total"] == 10 and d["executed"] == 6 and d["notes"] == ["a", "b"]
    assert json.loads(json.dumps(d)) == d


def test_add_sums_every_field() -> None:
    a = make(notes=("a",))
    b = FlopCount(nominal=5, executed=5, forward=5, by_operator={"aten.bmm": 5}, notes=("b",))
    c = a + b
    assert (c.nominal, c.executed, c.forward, c.backward) == (15, 11, 9, 6)
    assert dict(c.by_operator) == {"aten.mm": 10, "aten.bmm": 5}
    assert c.notes == ("a", "b")
    assert sum([a, b]) == c


def test_scaled_repeats_a_step() -> None:
    flops = make().scaled(3)
    assert (flops.nominal, flops.executed, flops.forward, flops.backward) == (30, 18, 12, 18)
    assert dict(flops.by_module) == {"Net": 30}
    assert make().scaled(0).total == 0


@pytest.mark.parametrize("k", [-1, 1.5, True, "2"])
def test_scaled_rejects_anything_but_a_count(k: object) -> None:
    with pytest.raises(ConfigError):
        make().scaled(k)  # type: ignore[arg-type]


def test_negative_flops_anywhere_are_rejected() -> None:
    with pytest.raises(ConfigError, match="nominal"):
        FlopCount(nominal=-1, executed=0, forward=-1)
    with pytest.raises(ConfigError, match="executed"):
        FlopCount(nominal=1, executed=-1, forward=1)
    with pytest.raises(ConfigError, match="by_operator"):
        FlopCount(nominal=1, executed=1, forward=1, by_operator={"aten.mm": -1})
    with pytest.raises(ConfigError, match="int"):
        FlopCount(nominal=1.5, executed=1, forward=1)  # type: ignore[arg-type]


def test_forward_and_backward_must_add_up() -> None:
    with pytest.raises(ConfigError, match="forward"):
        FlopCount(nominal=10, executed=10, forward=4, backward=5)


def test_is_frozen_and_read_only() -> None:
    flops = make()
    with pytest.raises(AttributeError):
        flops.nominal = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        flops.by_operator["aten.mm"] = 3  # type: ignore[index]


def test_uncounted_ops_add_scale_and_are_checked() -> None:
    a = make(uncounted={"aten.linalg_qr": 2})
    b = make(uncounted={"aten.linalg_qr": 1, "aten._fft_r2c": 1})
    assert dict((a + b).uncounted) == {"aten.linalg_qr": 3, "aten._fft_r2c": 1}
    assert dict(a.scaled(3).uncounted) == {"aten.linalg_qr": 6}
    assert a.to_dict()["uncounted"] == {"aten.linalg_qr": 2}
    assert make().to_dict()["uncounted"] == {}
    with pytest.raises(ConfigError, match="uncounted"):
        make(uncounted={"aten.linalg_qr": -1})
