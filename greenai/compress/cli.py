"""``greenai compress``: load a model by name, sweep it, print and write the table."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenai.compress.spec import DEFAULT_METHODS
from greenai.compress.sweep import SweepInterrupted, sweep
from greenai.errors import ConfigError

__all__ = ["load_object", "parse_shape", "print_sweep", "run_compress", "sweep_progress"]


def load_object(target: str) -> Any:
    """The object named ``module:attribute`` (the current directory is importable, last).

    Raises:
        ConfigError: Malformed name, module not found, a module that does not compile or
            raises when imported, or no such attribute.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected module:callable (e.g. mypkg.models:build), got {target!r}")
    if os.getcwd() not in sys.path:
        # Last, never first: a file in the working directory named like an installed
        # package (torch_pruning.py) must not shadow it.
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    except SyntaxError as exc:
        raise ConfigError(
            f"cannot import {module_name!r}: syntax error in {exc.filename}, line {exc.lineno}:"
            f" {exc.msg}"
        ) from exc
    except Exception as exc:  # the user's module raised while it was imported
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def parse_shape(text: str) -> tuple[int, ...]:
    """``"64,64"`` → ``(64, 64)``. Raises ConfigError unless every size is a positive int."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"--input-shape must be positive ints like 64,64, got {text!r}")
    return shape


def _model(target: str) -> nn.Module:
    obj = load_object(target)
    if not isinstance(obj, nn.Module) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:  # the user's builder: say so in one line
            raise ConfigError(f"calling {target}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, nn.Module):
        raise ConfigError(f"{target!r} gave a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def print_sweep(frame: Any, out: Path | None) -> int:
    """Print the sweep as text and write it to ``out`` when given; returns exit code 0."""
    from greenai.report.compression import compression_notes, export_compression, terminal_table

    print(terminal_table(frame, width=100))
    for note in compression_notes(frame):
        print(textwrap.fill(note, 100, initial_indent="  note: ", subsequent_indent="    "))
    if out is not None:
        print(f"wrote {export_compression(frame, out)}")
    return 0


def run_compress(args: argparse.Namespace) -> int:
    """Run ``greenai compress`` from parsed arguments."""
    shape = parse_shape(args.input_shape)
    model = _model(args.model)
    eval_fn = load_object(args.eval_fn) if args.eval_fn else None
    if eval_fn is not None and not callable(eval_fn):
        raise ConfigError(f"--eval {args.eval_fn!r} is not callable")
    if args.out is not None:
        from greenai.report.compression import check_export_path
        from greenai.safe_output import check_output

        check_export_path(args.out, "--out")
        check_output(args.out, "--out")  # a bad path fails now, not after the sweep
    dtype = None
    if args.dtype:
        dtype = getattr(torch, args.dtype, None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"--dtype must be a floating dtype like bfloat16, got {args.dtype!r}")
        model = model.to(dtype)
    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError:
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}") from None
    x = torch.randn(*shape, dtype=dtype or torch.float32)
    from greenai.compress.spec import parse_methods

    rows = 1 + len(parse_methods(args.methods or DEFAULT_METHODS))
    try:
        with sweep_progress(rows) as report:
            frame = sweep(
                model,
                args.methods or DEFAULT_METHODS,
                x,
                eval_fn=eval_fn,
                repeats=args.repeats,
                device=device,
                country=args.country,
                period_s=args.period_s,
                progress=report,
            )
    except SweepInterrupted as exc:  # the rounds done are worth showing; then exit 130
        print_sweep(exc.frame, None)
        n = exc.rounds.kept.count(True)
        print(
            f"greenai: interrupted by {signal.Signals(exc.signum).name} after {n} rounds: the"
            " table holds those rounds only (wider intervals); nothing was written to --out",
            file=sys.stderr,
        )
        return exc.exit_code
    return print_sweep(frame, args.out)


@contextmanager
def sweep_progress(rows: int) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress=`` callback for :func:`sweep` that shows the stage and rows/rounds done.

    On a terminal, a spinner whose label reads "preparing rows (compress, evaluate, warm
    up): 3/8 done" then "measuring in interleaved rounds: round 4 (5 to 30)"; elsewhere
    the same lines printed to stderr as each step ends.
    """
    from greenai.progress import steps

    with steps(None, f"compression sweep: {rows} rows") as shown:

        def report(stage: str, done: int, total: int) -> None:
            if stage == "train":
                shown.begin("training the model to compress")
            elif stage == "prepare":
                shown.begin(f"preparing rows (compress, evaluate, warm up): {done}/{total} done")
            else:
                shown.begin(f"measuring in interleaved rounds: round {done} of at most {total}")

        yield report
        shown.finish()
