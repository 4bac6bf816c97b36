"""Sinks by name: ``greenai run --sink NAME[:ARG][,key=value...]``.

A sink is registered as a Python entry point in the group :data:`GROUP`
(``greenai.sinks``): its name is the sink's name, its object a factory that takes the
spec's arguments as strings and returns a :class:`~greenai.sinks.Sink`. greenai's own sinks
are registered the same way, in its ``pyproject.toml``, so a package adds a sink without
touching greenai::

    [project.entry-points."greenai.sinks"]
    mysink = "mypkg.sink:make_sink [extra]"

The ``[extra]`` (optional) names the package's extra that the sink needs: when one of its
requirements is not installed, :func:`make_sink` says which extra to install instead of
failing in the middle of the job.

A spec is the sink's name, then optionally ``:`` and its arguments separated by commas; an
argument ``key=value`` (``key`` a Python name) is passed by keyword, any other by position:
``otlp:http://host:4318,timeout_s=2`` calls ``factory("http://host:4318", timeout_s="2")``.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import math
import re
from collections.abc import Callable
from typing import NamedTuple

from greenai.errors import ConfigError, GreenAIError
from greenai.sinks import Sink

__all__ = [
    "GROUP",
    "SinkSpec",
    "flag",
    "make_sink",
    "number",
    "parse_sink_spec",
    "registered_sinks",
]

GROUP = "greenai.sinks"
"""The entry-point group sinks are registered in."""

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


class SinkSpec(NamedTuple):
    """A parsed ``--sink`` value: the name, positional and keyword arguments (strings)."""

    name: str
    args: tuple[str, ...]
    options: dict[str, str]


def parse_sink_spec(text: str) -> SinkSpec:
    """``NAME[:ARG][,key=value...]`` as a :class:`SinkSpec`.

    Raises:
        ConfigError: No name, a name that is not a sink name, an empty argument, or a
            keyword given twice.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"--sink takes NAME[:ARG][,key=value...] (e.g. otlp:http://host:4318); got {text!r}"
        )
    args: list[str] = []
    options: dict[str, str] = {}
    for item in rest.split(",") if rest else []:
        key, eq, value = item.partition("=")
        if eq and _KEY.fullmatch(key.strip()):
            if key.strip() in options:
                raise ConfigError(f"--sink {name}: {key.strip()}= is given twice")
            options[key.strip()] = value
        elif not item.strip():  # "mlflow:,x=1", "a,,b": a sink would get "" and fail later
            raise ConfigError(
                f"--sink {name}: an empty argument in {text!r} (a comma right after ':' or"
                " two commas in a row); leave out what you do not give"
            )
        else:
            args.append(item)
    return SinkSpec(name, tuple(args), options)


def registered_sinks() -> dict[str, md.EntryPoint]:
    """The sinks registered in :data:`GROUP`, by name (the first of a name wins)."""
    found: dict[str, md.EntryPoint] = {}
    for ep in md.entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def make_sink(text: str | SinkSpec) -> Sink:
    """The sink a ``--sink`` spec names, made now (so a bad spec fails before the job).

    ``text`` may also be a :class:`SinkSpec` already split (an argument with a comma).

    Raises:
        ConfigError: A malformed spec, an unknown name (the message lists the known ones),
            a sink whose extra is not installed (the message names it), arguments its
            factory does not take or refuses (a ``ValueError`` or ``TypeError`` it raises),
            or a factory that makes no sink.
    """
    spec = parse_sink_spec(text) if isinstance(text, str) else text
    sinks = registered_sinks()
    ep = sinks.get(spec.name)
    if ep is None:
        known = ", ".join(sorted(sinks)) or "none"
        hint = ""
        if "otlp" not in sinks:  # greenai's own are missing: metadata of an older install
            hint = " (greenai's own sinks are not registered: reinstall it, pip install -e .)"
        raise ConfigError(f"no sink named {spec.name!r}; known sinks: {known}{hint}")
    _check_extras(spec.name, ep)
    try:
        factory = ep.load()
    except ImportError as exc:
        raise ConfigError(
            f"sink {spec.name!r} cannot be loaded ({exc}); install what {_dist_name(ep)} needs"
            f" for it, e.g. pip install {_dist_name(ep)!r}"
        ) from exc
    _check_arguments(spec, factory)
    try:
        made = factory(*spec.args, **spec.options)
    except GreenAIError:
        raise
    except (ValueError, TypeError) as exc:  # a factory's own check of its arguments
        raise ConfigError(f"--sink {spec.name}: {exc}") from exc
    if not isinstance(made, Sink):
        raise ConfigError(
            f"sink {spec.name!r} ({ep.value}) made {type(made).__name__}, which lacks"
            " start(job), update(snapshot) and finish(result)"
        )
    return made


def number(value: str, what: str) -> float:
    """A finite number > 0 from a spec's text (seconds, a rate).

    Raises:
        ConfigError: ``value`` is not such a number.
    """
    try:
        out = float(value)
    except ValueError:
        out = math.nan
    if not (math.isfinite(out) and out > 0):
        raise ConfigError(f"{what} must be a number > 0, got {value!r}")
    return out


def flag(value: str, what: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``) from a spec's text.

    Raises:
        ConfigError: Anything else.
    """
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{what} must be true or false, got {value!r}")


def _dist_name(ep: md.EntryPoint) -> str:
    dist = ep.dist
    return dist.metadata["Name"] if dist is not None else ep.module.split(".")[0]


def _check_extras(name: str, ep: md.EntryPoint) -> None:
    """Raise when a requirement of the entry point's extras is not installed."""
    if not ep.extras or ep.dist is None:
        return
    for extra in ep.extras:
        for requirement in ep.dist.requires or []:
            req, _, marker = requirement.partition(";")
            if extra not in _EXTRA_MARKER.findall(marker):
                continue
            match = _REQUIREMENT.match(req)
            if match is None:
                continue
            try:
                md.distribution(match.group(1))
            except md.PackageNotFoundError:
                dist = _dist_name(ep)
                raise ConfigError(
                    f"sink {name!r} needs {match.group(1)}, which is not installed:"
                    f" pip install '{dist}[{extra}]'"
                ) from None


def _check_arguments(spec: SinkSpec, factory: Callable[..., object]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        return
    try:
        signature.bind(*spec.args, **spec.options)
    except TypeError as exc:
        usage = f"{spec.name}{_usage(signature)}"
        raise ConfigError(f"--sink {spec.name} takes {usage}: {exc}") from None


def _usage(signature: inspect.Signature) -> str:
    positional, keywords = [], []
    for p in signature.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            optional = p.default is not p.empty  # prometheus[:PORT]: given by position
            positional.append(f"[{p.name.upper()}]" if optional else p.name.upper())
        elif p.kind is p.KEYWORD_ONLY:
            keywords.append(f"{p.name}=")
        elif p.kind is p.VAR_KEYWORD:
            keywords.append("key=value...")
    parts = ",".join([*positional, *keywords])
    return f":{parts}" if parts else ""
