"""Read codecarbon's shipped data files in place, without importing codecarbon (slow).

Nothing is copied into greenai and nothing goes over the network: the files are those of
the installed codecarbon, so figures follow its release. Each file is parsed once.
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from greenai.errors import ConfigError

__all__ = [
    "PRIVATE_INFRA",
    "codecarbon_version",
    "data_root",
    "exists",
    "latest",
    "load_csv",
    "load_json",
]

PRIVATE_INFRA = "data/private_infra"


@functools.lru_cache(maxsize=1)
def data_root() -> Path | None:
    """The installed codecarbon package folder (holding ``data/``), or None without it."""
    spec = importlib.util.find_spec("codecarbon")  # locates without importing
    for location in (spec and spec.submodule_search_locations) or []:
        if Path(location, PRIVATE_INFRA).is_dir():
            return Path(location)
    return None


@functools.lru_cache(maxsize=1)
def codecarbon_version() -> str:
    """The installed codecarbon's version, for source strings ("?" when unknown)."""
    try:
        return importlib.metadata.version("codecarbon")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def latest(name: str) -> str | None:
    """Relative path of the newest ``data/private_infra/<year>/<name>``, or None.

    codecarbon moves yearly files between releases (``2016/`` then ``2023/``), so the
    newest year folder that has the file wins.
    """
    root = data_root()
    if root is None:
        return None
    found = sorted(root.glob(f"{PRIVATE_INFRA}/[0-9][0-9][0-9][0-9]/{name}"))
    return found[-1].relative_to(root).as_posix() if found else None


def exists(relpath: str) -> bool:
    """Whether codecarbon ships ``relpath`` (relative to its package folder)."""
    root = data_root()
    return root is not None and (root / relpath).is_file()


def _installed(relpath: str) -> Path:
    """The path of one of codecarbon's data files.

    Raises:
        ConfigError: codecarbon (or that file) is not installed.
    """
    root = data_root()
    if root is None or not (root / relpath).is_file():
        raise ConfigError(
            f"codecarbon's data file {relpath} is not installed; install codecarbon "
            "(`pip install codecarbon`) or pass carbon_intensity_g_per_kwh= directly"
        )
    return root / relpath


@functools.cache
def load_json(relpath: str) -> dict[str, Any]:
    """Parse one of codecarbon's JSON files, once.

    Raises:
        ConfigError: codecarbon (or that file) is not installed.
    """
    with open(_installed(relpath), encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


@functools.cache
def load_csv(relpath: str) -> tuple[dict[str, str], ...]:
    """Parse one of codecarbon's CSV files (a byte-order mark is allowed), once.

    Raises:
        ConfigError: codecarbon (or that file) is not installed.
    """
    with open(_installed(relpath), encoding="utf-8-sig", newline="") as f:
        return tuple(csv.DictReader(f))
