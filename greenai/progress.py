"""Progress bars for long work on the command line: shown on a terminal only.

A bar goes to stderr, so a command's output stays clean when piped; where stderr is not a
terminal (CI logs, files) or ``GREENAI_NO_PROGRESS`` is set, nothing is drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether a bar would be drawn on ``stream`` (stderr by default)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("GREENAI_NO_PROGRESS"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress(
    total: int | None, description: str, *, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` units; yields ``advance(n)`` to call as work gets done.

    Where no bar is drawn (see :func:`progress_enabled`), ``advance`` does nothing, so callers
    never branch on it. The bar disappears when the block ends.
    """
    stream = sys.stderr if stream is None else stream
    if not progress_enabled(stream):
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def _ignore(n: int = 1) -> None:
    """``advance`` where no bar is drawn."""
