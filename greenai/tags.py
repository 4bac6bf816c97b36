"""Tags: what a run belongs to (team, project, model, site, ...), for fleet roll-ups.

Tags are short string pairs stored with each run, indexed, so a store sums energy per team
or per site in SQL (:mod:`greenai.report.kpi`). They come from ``greenai run --tag k=v``,
``track(tags=...)``, the Trainer and Lightning callbacks, and the ``GREENAI_TAGS``
environment variable (``team=vision,site=par1``); given ones win over the environment's.

Example:
    >>> from greenai.tags import parse_tags
    >>> parse_tags(["team=vision", "model=resnet50"])
    {'team': 'vision', 'model': 'resnet50'}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from greenai.errors import ConfigError

__all__ = ["KNOWN_TAGS", "check_tags", "environment_tags", "merge_tags", "parse_tags"]

KNOWN_TAGS = ("team", "project", "model", "site")
"""Tags the KPI roll-ups group by out of the box; any other key may be used as well."""

MAX_VALUE_CHARS = 200

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}\Z")


def check_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """``tags`` as a dict of strings, checked.

    Raises:
        ConfigError: A key is not a letter followed by up to 63 letters, digits, ``_ . -``,
            or a value is empty, longer than 200 characters or not a string or number.
    """
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigError(
                f"tag name {_shown(key)} must start with a letter and hold only letters, digits,"
                " '_', '.' or '-' (at most 64 characters)"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"tag {key!r} must be a string; got {value!r}")
        text = str(value).strip()
        if not text or len(text) > MAX_VALUE_CHARS or not text.isprintable():
            raise ConfigError(
                f"tag {key!r} needs a printable value of 1 to {MAX_VALUE_CHARS} characters;"
                f" got {_shown(value)}"
            )
        out[key] = text
    return out


def _shown(value: object) -> str:
    """``repr(value)`` cut to a line's worth, for messages (a 5000-character tag stays out)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}… ({len(str(value))} characters)"


def parse_tags(items: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` (each item may also hold several, comma-separated) as a dict.

    Raises:
        ConfigError: An item without ``=``, a name given twice with two values, or a bad
            name or value (see :func:`check_tags`).
    """
    pairs: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(f"a tag is NAME=VALUE, e.g. team=vision; got {part!r}")
            key, value = key.strip(), value.strip()
            if key in pairs and pairs[key] != value:
                raise ConfigError(
                    f"tag {_shown(key)} is given twice ({_shown(pairs[key])} and {_shown(value)}): "
                    "give it once"
                )
            pairs[key] = value
    return check_tags(pairs)


def environment_tags() -> dict[str, str]:
    """Tags from ``GREENAI_TAGS`` (``team=vision,site=par1``); none when it is unset.

    Raises:
        ConfigError: ``GREENAI_TAGS`` does not parse; the message names the variable.
    """
    text = os.environ.get("GREENAI_TAGS", "")
    try:
        return parse_tags([text])
    except ConfigError as exc:
        raise ConfigError(f"GREENAI_TAGS: {exc}") from exc


def merge_tags(given: Mapping[str, object] | None) -> dict[str, str]:
    """The environment's tags overridden by ``given`` (checked).

    Raises:
        ConfigError: See :func:`check_tags` and :func:`environment_tags`.
    """
    return {**environment_tags(), **check_tags(given or {})}
