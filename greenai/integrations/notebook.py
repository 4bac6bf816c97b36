"""The ``%%greenai`` cell magic: measure one notebook cell (``%load_ext greenai``).

Usage, in IPython or Jupyter::

    %load_ext greenai

    %%greenai train --country FRA
    for batch in loader:
        ...
        greenai_job.step(samples=len(batch))

The cell runs inside :func:`greenai.track`; the tracker is ``greenai_job`` in the
notebook while the cell runs, and the cell shows its :class:`~greenai.Measurement` (as HTML:
:func:`greenai.report.notebook.measurement_html`), also kept as ``greenai_result`` (``--as``).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from greenai.errors import ConfigError
from greenai.flags import add_flags, flag_options

__all__ = ["load_ipython_extension", "parser"]

CELL_OPTIONS = (
    "store",
    "country",
    "region",
    "cloud",
    "carbon_intensity_g_per_kwh",
    "pue",
    "period_s",
    "scope",
)
"""The tracker options ``%%greenai`` takes as flags (:func:`greenai.options.add_flags`)."""


def parser() -> argparse.ArgumentParser:
    """The options of ``%%greenai`` (the line after the magic's name)."""
    p = argparse.ArgumentParser(prog="%%greenai", add_help=False, exit_on_error=False)
    p.add_argument("name", nargs="?", default="cell", help="the job's name (default: cell)")
    p.add_argument("--as", dest="var", default="greenai_result", help="variable for the result")
    add_flags(p, CELL_OPTIONS, settings={"store": {"nargs": "?", "const": True}})
    p.add_argument("--devices", help="a variable holding the devices to read (default: all)")
    return p


def _options(line: str, user_ns: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    try:
        args = parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit, ValueError) as exc:
        raise ConfigError(f"%%greenai {line}: {exc}; {parser().format_usage()}") from None
    options = flag_options(args, CELL_OPTIONS)
    if args.devices is not None:
        if args.devices not in user_ns:
            raise ConfigError(f"%%greenai --devices {args.devices}: no such variable")
        options["devices"] = user_ns[args.devices]
    return args.name, args.var, options


def greenai_cell(line: str, cell: str) -> Any:
    """Run ``cell`` under a tracker and return its Measurement (IPython displays it)."""
    from IPython import get_ipython

    from greenai.tracker import track

    shell = get_ipython()
    name, var, options = _options(line, shell.user_ns)
    job = track(name, **options)
    shell.user_ns["greenai_job"] = job
    code = shell.transform_cell(cell)
    with job:
        shell.ex(code)  # an exception stops the job as "failed" and reaches the notebook
    shell.user_ns[var] = job.result
    return job.result


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%greenai`` (IPython calls this on ``%load_ext greenai``)."""
    ipython.register_magic_function(greenai_cell, magic_kind="cell", magic_name="greenai")
