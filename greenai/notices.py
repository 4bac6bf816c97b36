"""What the command line says about a job's problems: each one once, when it happens.

A problem of a running job reaches three channels by design: a sink that fails is logged at
once (:meth:`greenai.sinks.SinkSet.note`), warned about at stop (a
:class:`~greenai.errors.MeasurementWarning`, for library callers who catch warnings) and kept
as a note on the result. On the command line the three would print the same line three
times. :func:`said_once` keeps one: the first, as ``greenai: warning: ...`` on stderr when it
happens (a sink that fails at the start of a day-long job is said at the start), and
:func:`unsaid` leaves those out of the summary's notes. The stored run keeps every note.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import TextIO

from greenai.errors import GreenAIWarning
from greenai.safe_output import terminal_text

__all__ = ["said_once", "unsaid"]

_PREFIX = "greenai: "
_NOTE_PREFIXES = ("run store: ",)  # how the result's notes quote a problem said before


def _plain(text: str) -> str:
    text = " ".join(str(text).split())
    return text[len(_PREFIX) :] if text.startswith(_PREFIX) else text


class _Say(logging.Handler):
    """Says greenai's log warnings on stderr, each once, and remembers them."""

    def __init__(self, said: set[str], stream: TextIO | None) -> None:
        super().__init__(logging.WARNING)
        self.said = said
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = _plain(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                message = f"{message}: {type(exc).__name__}: {exc}"
            if message in self.said:
                return
            self.said.add(message)
            stream = self.stream or sys.stderr
            print(terminal_text(f"greenai: warning: {message}"), file=stream, flush=True)
        except Exception:  # a closed stderr: never an error in the job's own threads
            self.handleError(record)


MUTED = ("opentelemetry",)
"""Loggers of libraries whose failures greenai's own sinks report (the OTLP exporter's
retries and its final error, in its words, beside the sink's one line)."""


@contextlib.contextmanager
def said_once(stream: TextIO | None = None, mute: Iterable[str] = MUTED) -> Iterator[set[str]]:
    """While the block runs, say each of greenai's problems once; yield what was said.

    greenai's log warnings (logger ``greenai``, from any thread) become one
    ``greenai: warning: ...`` line each, at once; a greenai warning whose text was already
    said is not shown again. The yielded set holds every text said (for :func:`unsaid`).
    Other warnings show as usual; the loggers in ``mute`` say nothing. Meant for the
    command line's main thread (it sets process-wide logging and warning hooks).

    Args:
        stream: Where to say them (stderr, looked up at each line, by default).
        mute: Loggers silenced while the block runs (their levels are restored after).
    """
    said: set[str] = set()
    logger = logging.getLogger("greenai")
    handler = _Say(said, stream)
    logger.addHandler(handler)
    muted = [logging.getLogger(name) for name in mute]
    levels = [m.level for m in muted]
    for m in muted:
        m.setLevel(logging.CRITICAL + 1)
    shown = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, GreenAIWarning):
            text = _plain(str(message))
            if text in said:
                return
            said.add(text)
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield said
    finally:
        warnings.showwarning = shown
        logger.removeHandler(handler)
        for m, level in zip(muted, levels, strict=True):
            m.setLevel(level)


def unsaid(notes: Iterable[str], said: set[str]) -> list[str]:
    """The ``notes`` not already said (as themselves, or quoted as ``run store: ...``)."""
    kept = []
    for note in notes:
        text = _plain(note)
        quoted = next((text[len(p) :] for p in _NOTE_PREFIXES if text.startswith(p)), None)
        if text in said or (quoted is not None and quoted in said):
            continue
        kept.append(note)
    return kept
