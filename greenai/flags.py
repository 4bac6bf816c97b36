"""Command-line flags of the tracker's options, made from :class:`~greenai.options.TrackOptions`.

Each option that has a flag declares it on its field (flag name, argparse type, help); a
command lists the options it takes and gets their flags from :func:`add_flags`, and the
parsed values back as keyword options from :func:`flag_options`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from greenai.checks import seconds
from greenai.options import STORE_HELP, TrackOptions

__all__ = ["STORE_HELP", "add_flags", "flag_options", "seconds"]


def add_flags(
    parser: argparse.ArgumentParser,
    names: Iterable[str],
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **defaults: Any,
) -> None:
    """Add the command-line flags of options ``names`` to ``parser``.

    Each flag's value lands under the option's name (``--period`` → ``args.period_s``);
    ``defaults`` override the options' own defaults for this command, and ``settings``
    add argparse settings for one option (``{"store": {"nargs": "?", "const": True}}``).

    Raises:
        ValueError: An option without a flag (a programming error).
    """
    fields = {f.name: f for f in dataclasses.fields(TrackOptions)}
    for name in names:
        spec = fields[name]
        flag = spec.metadata.get("flag")
        if flag is None:
            raise ValueError(f"option {name!r} has no command-line flag")
        kwargs = {**spec.metadata["argparse"], **(settings or {}).get(name, {})}
        default = defaults.get(name, spec.default)
        if default is not None:
            kwargs["help"] = f"{kwargs['help']} (default: {default})"
        parser.add_argument(flag, dest=name, default=default, **kwargs)


def flag_options(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options ``names`` as parsed from their flags (see :func:`add_flags`)."""
    return {name: getattr(args, name) for name in names}
