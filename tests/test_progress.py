from __future__ import annotations

import io

import pytest

from greenai.progress import progress, progress_enabled


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENAI_NO_PROGRESS", raising=False)
    stream = Terminal()
    with progress(4, "training on digits", stream=stream) as advance:
        for _ in range(4):
            advance(1)
    out = stream.getvalue()
    assert "training on digits" in out and "4/4" in out


def test_nothing_is_drawn_off_a_terminal_or_when_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    piped = io.StringIO()
    with progress(3, "work", stream=piped) as advance:
        advance(3)
    assert piped.getvalue() == ""
    monkeypatch.setenv("GREENAI_NO_PROGRESS", "1")
    assert not progress_enabled(Terminal())
    terminal = Terminal()
    with progress(3, "work", stream=terminal) as advance:
        advance(3)
    assert terminal.getvalue() == ""
