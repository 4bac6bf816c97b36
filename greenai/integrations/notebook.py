"""The ``%%greenai`` cell magic: measure one notebook cell (``%load_ext greenai``).

Usage, in IPython or Jupyter::

    %load_ext greenai

    %%greenai train --country FRA
    for batch in loader:
        ...
        greenai_job.step(samples=len(batch))

The cell runs inside :func:`greenai.track`; the tracker is ``greenai_job`` in the
notebook while the cell runs, and the cell shows its :class:`~greenai.Measurement`
(:meth:`~greenai.Measurement._repr_html_`), also kept as ``greenai_result`` (``--as``).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from greenai.errors import ConfigError

__all__ = ["load_ipython_extension", "parser"]


def parser() -> argparse.ArgumentParser:
    """The options of ``%%greenai`` (the line after the magic's name)."""
    p = argparse.ArgumentParser(prog="%%greenai", add_help=False, exit_on_error=False)
    p.add_argument("name", nargs="?", default="cell", help="the job's name (default: cell)")
    p.add_argument("--as", dest="var", default="greenai_result", help="variable for the result")
    p.add_argument("--store", nargs="?", const=True, default=None, help="record the run")
    p.add_argument("--country", help="grid for CO2e: ISO alpha-3 (FRA) or WORLD")
    p.add_argument("--region", help="sub-national grid")
    p.add_argument("--carbon-intensity", type=float, help="grid intensity, g CO2e/kWh")
    p.add_argument("--pue", type=float, default=1.0, help="facility PUE")
    p.add_argument("--devices", help="a variable holding the devices to read (default: all)")
    return p


def _options(line: str, user_ns: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    try:
        args = parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit, ValueError) as exc:
        raise ConfigError(f"%%greenai {line}: {exc}; {parser().format_usage()}") from None
    options: dict[str, Any] = {
        "store": args.store,
        "country": args.country,
        "region": args.region,
        "carbon_intensity_g_per_kwh": args.carbon_intensity,
        "pue": args.pue,
    }
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
