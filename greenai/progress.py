"""Progress bars for long work on the command line: shown on a terminal only.

A bar goes to stderr, so a command's output stays clean when piped; where stderr is not a
terminal (CI logs, files) or ``GREENAI_NO_PROGRESS`` is set, nothing is drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


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


class Steps:
    """What :func:`steps` yields: :meth:`begin` as each unit of work starts, :meth:`note`."""

    def __init__(self, bar: Any, task: Any, stream: TextIO) -> None:
        self._bar, self._task, self._stream = bar, task, stream
        self._begun = False

    def begin(self, label: str) -> None:
        """The next unit starts: the previous one counts as done; ``label`` is shown."""
        if self._bar is None:
            print(f"{label} ...", file=self._stream, flush=True)
            return
        if self._begun:
            self._bar.advance(self._task, 1)
        self._begun = True
        self._bar.update(self._task, description=label)

    def finish(self) -> None:
        """The last unit is done too."""
        if self._bar is not None and self._begun:
            self._bar.advance(self._task, 1)
            self._begun = False
            self._bar.refresh()

    def note(self, text: str) -> None:
        """A line printed above the bar (or as is where no bar is drawn)."""
        if self._bar is None:
            print(text, file=self._stream, flush=True)
        else:
            self._bar.console.print(text, markup=False, highlight=False)


@contextmanager
def steps(total: int | None, description: str, *, stream: TextIO | None = None) -> Iterator[Steps]:
    """A bar over ``total`` named units of work (``None``: unknown, an elapsed-time spinner).

    On a terminal the bar shows the unit running, how many are done and the time spent;
    elsewhere (a log file, CI, ``GREENAI_NO_PROGRESS``) each unit's label and each note
    are printed as lines instead.
    """
    stream = sys.stderr if stream is None else stream
    if not progress_enabled(stream):
        yield Steps(None, None, stream)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [SpinnerColumn(), "[progress.description]{task.description}", BarColumn()]
    if total is not None:
        columns.append(MofNCompleteColumn())
    bar = Progress(*columns, TimeElapsedColumn(), console=Console(file=stream), transient=True)
    with bar:
        task = bar.add_task(description, total=total)
        done = Steps(bar, task, stream)
        yield done
        done.finish()
