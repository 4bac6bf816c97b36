from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from greenai.carbon import codecarbon_data, regions


def _codecarbon_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture
def cc_json() -> Callable[[str], Any]:
    """Read one of codecarbon's data files here, independently of greenai.carbon."""

    def load(relpath: str) -> Any:
        with open(_codecarbon_dir() / "data" / relpath, encoding="utf-8") as f:
            return json.load(f)

    return load


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Clear greenai.carbon's file caches before and after a test that fakes the files."""
    caches = (
        codecarbon_data.data_root,
        codecarbon_data.load_json,
        codecarbon_data.load_csv,
        regions.regions,
    )
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()
