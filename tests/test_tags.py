from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import greenai
from greenai.errors import ConfigError
from greenai.store import RunStore
from greenai.tags import check_tags, environment_tags, merge_tags, parse_tags
from greenai.testing import FakeClock, FakeGPU


def test_tags_parse_from_pairs_and_comma_lists() -> None:
    assert parse_tags(["team=vision", "site=par1,model=resnet50", " "]) == {
        "team": "vision",
        "site": "par1",
        "model": "resnet50",
    }


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ({"1team": "x"}, "must start with a letter"),
        ({"team name": "x"}, "must start with a letter"),
        ({"team": ""}, "printable value"),
        ({"team": "x" * 201}, "printable value"),
        ({"team": "a\x1bb"}, "printable value"),
        ({"team": ["x"]}, "must be a string"),
        ({"team": True}, "must be a string"),
    ],
)
def test_bad_tags_are_config_errors(tags: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_tags(tags)


def test_a_pair_without_equals_is_refused() -> None:
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_tags(["team"])


def test_a_tag_given_twice_with_two_values_is_refused() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        parse_tags(["a=1", "a=2"])
    assert parse_tags(["a=1", "a=1"]) == {"a": "1"}  # the same pair twice is one tag


def test_environment_tags_are_overridden_by_given_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENAI_TAGS", "team=infra,site=par1")
    assert environment_tags() == {"team": "infra", "site": "par1"}
    assert merge_tags({"team": "vision"}) == {"team": "vision", "site": "par1"}
    monkeypatch.setenv("GREENAI_TAGS", "broken")
    with pytest.raises(ConfigError, match="GREENAI_TAGS"):
        merge_tags(None)


def test_a_tracked_job_stores_its_tags_with_the_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENAI_TAGS", "site=par1,team=infra")
    clock = FakeClock()
    with greenai.track(
        "t",
        devices=[FakeGPU(clock=clock)],
        clock=clock,
        store=tmp_path / "r.db",
        tags={"team": "vision"},
    ) as job:
        clock.advance(1.0)
    assert job.tags == {"site": "par1", "team": "vision"}
    with RunStore(tmp_path / "r.db") as store:
        assert store.get("latest").tags == {"site": "par1", "team": "vision"}
        assert len(store.runs(tags={"site": "par1", "team": "vision"})) == 1
        assert store.runs(tags={"team": "infra"}).empty
        assert list(store.runs()["tags"]) == ["site=par1,team=vision"]


def test_a_bad_tag_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "greenai", "run", "--store", str(tmp_path / "r.db"),
         "--tag", "9=x", "--", sys.executable, "-c", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("greenai: error: tag name '9'") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "r.db").exists()  # refused before anything ran or was stored


def test_a_huge_tag_is_not_echoed_whole() -> None:
    for tags in ({"team": "x" * 5000}, {"k" * 5000: "x"}):
        with pytest.raises(ConfigError) as info:
            check_tags(tags)
        assert len(str(info.value)) < 300 and "5000 characters" in str(info.value)
