"""Token counts from OpenAI-compatible responses: ``usage`` when present, chunks when not.

A non-streamed response carries ``usage.prompt_tokens`` and ``usage.completion_tokens``.
A streamed one (Server-Sent Events, ``data: {...}`` lines) carries them in its last chunk
only when the client asked (``stream_options.include_usage``); otherwise each chunk with
generated text counts as one token (vLLM, SGLang and TGI send one token per chunk, unless
the server's API process falls behind: vLLM's then merges several), and the prompt's tokens
are estimated from its characters (about 4 per token) and marked so, unless it was given
as token ids: then its tokens are counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SseCounter",
    "TokenCount",
    "choices_chars",
    "count_body",
    "prompt_chars",
    "prompt_token_ids",
    "usage_of",
]

CHARS_PER_TOKEN = 4.0
"""Characters per token assumed when a prompt's tokens must be estimated (English BPE)."""


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one request and where the counts came from.

    ``source``: ``"usage"`` (the server said), ``"chunks"`` (generated tokens counted from
    streamed chunks; prompt estimated from characters), ``"none"`` (nothing to count),
    and for a whole body without ``usage`` (:func:`count_body`): ``"estimated"`` (both
    estimated from characters), ``"error"`` (an error answer: nothing generated; its
    prompt, estimated or counted, perhaps never processed: kept out of per-token figures
    whatever it is), ``"unknown"`` (generated tokens unknown, 0 stands in; prompt
    estimated).
    :attr:`tokens` says what the counts are in :class:`~greenai.serving.RequestSpan`'s
    terms.
    """

    prompt_tokens: int
    completion_tokens: int
    source: str
    prompt_counted: bool = False
    """Without ``usage``: the prompt was given as token ids, so ``prompt_tokens`` counts them."""

    @property
    def tokens(self) -> str:
        """What the counts are (:data:`~greenai.serving.attribution.TOKEN_COUNTS`)."""
        if self.prompt_counted and self.source not in ("usage", "error"):
            return _COMPLETION_ONLY.get(self.source, "counted")
        return _TOKENS.get(self.source, "prompt_estimated")


_TOKENS = {"usage": "counted", "estimated": "estimated", "unknown": "unknown", "error": "error"}
"""Each source's kind of counts; the others (streamed chunks, nothing to count) counted the
generated tokens and estimated the prompt's. An error answer's prompt may never have been
processed, counted (token ids) or not: ``"error"``, out of per-token figures."""

_COMPLETION_ONLY = {"estimated": "completion_estimated", "unknown": "completion_unknown"}
"""The kinds of counts where the prompt's were counted (token ids) and the source's
generated tokens were not; other sources counted them (chunks)."""


def prompt_chars(body: Any) -> int:
    """Characters of the prompt in a completions or chat request body (0 if none)."""
    if not isinstance(body, dict):
        return 0
    n = 0
    prompt = body.get("prompt")
    for p in prompt if isinstance(prompt, list) else [prompt]:
        if isinstance(p, str):
            n += len(p)
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                n += len(content)
            elif isinstance(content, list):
                n += sum(len(c.get("text", "")) for c in content if isinstance(c, dict))
    return n


def prompt_token_ids(body: Any) -> int | None:
    """Tokens of a completions request's prompt given as token ids; None if not so given.

    OpenAI's completions API takes ``prompt`` as a list of token ids (``list[int]``) or a
    batch of them (``list[list[int]]``): their lengths are the prompt's tokens, a count.
    None for any other prompt (text, a mix of text and ids, none) or where the body has
    chat ``messages`` too.
    """
    if not isinstance(body, dict) or body.get("messages"):
        return None
    prompt = body.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        return None
    if all(_is_id(x) for x in prompt):
        return len(prompt)
    if all(isinstance(p, list) and all(_is_id(x) for x in p) for p in prompt):
        return sum(len(p) for p in prompt)
    return None


def _is_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _prompt_tokens(chars: int, ids: int | None) -> tuple[int, bool]:
    """The prompt's tokens: its token ids' count where given, else estimated from chars."""
    return (ids, True) if ids is not None else (round(chars / CHARS_PER_TOKEN), False)


def usage_of(payload: Any) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` from a response's ``usage``, if it has one."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(p, int) and not isinstance(p, bool) and isinstance(c, int):
        return max(p, 0), max(c, 0)
    return None


class SseCounter:
    """Reads a Server-Sent Events stream chunk by chunk as it passes; keeps no body.

    Memory is bounded by ``max_line`` (a longer line is skipped, not kept). ``choices``:
    the request's ``n`` (choices generated side by side, each a chunk per token).
    """

    def __init__(
        self,
        prompt_chars: int = 0,
        max_line: int = 1 << 20,
        *,
        prompt_ids: int | None = None,
        choices: int = 1,
    ) -> None:
        self._choices = max(int(choices), 1)
        self._buf = bytearray()
        self._prompt_ids = prompt_ids
        self._skip = False
        self._max = max_line
        self._prompt_chars = prompt_chars
        self.chunks = 0
        self.usage: tuple[int, int] | None = None
        self.saw_token = False
        self.events = 0
        """Choices seen (each carries a ``finish_reason``, null until its last chunk)."""
        self.text_bytes = 0
        """Bytes of generated text seen (as sent: JSON-escaped)."""
        self._first_at: tuple[int, int, int] | None = None  # events, chunks, text by 1st read
        self._reads_after = 0  # reads after the first text read that held choices

    def feed(self, data: bytes) -> bool:
        """Take the next bytes (one read); returns True when they held the first token."""
        seen = self.events + self.chunks
        first = self._take(data)
        if first:
            self.saw_token = True
            self._first_at = (self.events, self.chunks, self.text_bytes)
        elif self._first_at is not None and self.events + self.chunks > seen:
            self._reads_after += 1
        return first

    def paced_after_first(self) -> bool:
        """Whether the choices after the first text read came as they were decoded.

        False where they came :data:`PACED_EVENTS_PER_READ` or more a read on average, per
        choice (``n``), and at least twice that many came: a backlog (a server's API
        process that fell behind its engine sends a request's tokens late, many in one
        burst; seen with vLLM on a loaded machine, 177 of 200 tokens in the ms after a
        first read at 0.231 s). Their gaps then time nothing. Choices are counted by their
        ``finish_reason`` keys, or their text chunks where a server leaves the key out.
        """
        if self._first_at is None:
            return True
        events, chunks, _ = self._first_at
        after = max(self.events - events, self.chunks - chunks)
        per_read = PACED_EVENTS_PER_READ * self._choices
        return after < max(per_read * self._reads_after, 2 * per_read)

    def _take(self, data: bytes) -> bool:
        if not self._buf and not self._skip and data.endswith(b"\n") and b'"usage"' not in data:
            # The usual chunk: whole lines, no usage: its text lines counted in one C-level
            # pass (~0.5 us a chunk, not ~2 us).
            self.events += data.count(_EVENT)
            texts = _TEXT_LINES.findall(data)
            if not texts:
                return False
            self.chunks += len(texts)
            self.text_bytes += sum(map(len, texts))
            return not self.saw_token
        return self._feed_lines(data)

    def _feed_lines(self, data: bytes) -> bool:
        """:meth:`feed` line by line, a partial line kept for the next bytes."""
        first = False
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                rest = data[start:]
                if not self._skip:
                    self._buf += rest
                    if len(self._buf) > self._max:
                        self._buf.clear()
                        self._skip = True
                return first
            if self._skip:
                self._skip = False
            else:
                self._buf += data[start:nl]
                first |= self._line(bytes(self._buf))
            self._buf.clear()
            start = nl + 1

    def _line(self, line: bytes) -> bool:
        # Only a chunk that carries usage is parsed; text is found with one regex search,
        # so a proxy relaying thousands of chunks a second spends microseconds on each.
        if not line.startswith(b"data:"):
            return False
        self.events += line.count(_EVENT)
        if b'"usage"' in line and b"_tokens" in line:
            try:
                usage = usage_of(json.loads(line[5:].strip()))
            except ValueError:
                usage = None
            if usage is not None:
                self.usage = usage
        text = _TEXT.search(line)
        if text is None:
            return False
        self.chunks += 1
        self.text_bytes += len(text[1])
        return not self.saw_token

    def tokens_by_first(self, completion_tokens: int) -> int:
        """Generated tokens that had come by the end of the read that held the first text.

        1 when the tokens came one by one; more when several came at once (the server
        merged its chunks, or the proxy read several chunks late in one go). Bounded below
        by the text chunks of that read, above by ``completion_tokens`` less the choices
        after it (their ``finish_reason`` keys: a choice carries one, null until its last
        chunk, so chunks with empty text count too; or their text chunks where those are
        more, a server that leaves the key out). The bounds meet where no chunk after the
        read was merged; else the tokens are shared in proportion to the text (bytes as
        sent), within them. 0 when no text came.
        """
        if self._first_at is None:
            return 0
        events, chunks, text = self._first_at
        high = completion_tokens - max(self.events - events, self.chunks - chunks)
        by_text = completion_tokens * text // self.text_bytes if self.text_bytes else 0
        return max(min(high, max(chunks, by_text)), 1)

    def count(self) -> TokenCount:
        """The tokens so far: the server's ``usage`` if it sent one, else counted chunks."""
        if self.usage is not None:
            return TokenCount(self.usage[0], self.usage[1], "usage")
        if self.chunks or self._prompt_chars or self._prompt_ids is not None:
            prompt, counted = _prompt_tokens(self._prompt_chars, self._prompt_ids)
            return TokenCount(prompt, self.chunks, "chunks", counted)
        return TokenCount(0, 0, "none")


PACED_EVENTS_PER_READ = 4
"""Choices a read holds on average, at and above which they came as a backlog, not paced
(:meth:`SseCounter.paced_after_first`): a proxy keeping up reads one or two at a time."""

_EVENT = b'"finish_reason"'
"""The key each choice of a chunk carries (OpenAI, vLLM, SGLang): one per choice event."""

_TEXT = re.compile(rb'"(?:text|content|reasoning_content)"\s*:\s*"((?:[^"\\]|\\.)+)"')
"""A non-empty ``text`` (completions) or ``delta.content`` (chat) value in a chunk (the
value, as sent, captured)."""

_TEXT_LINES = re.compile(
    rb'^data:.*"(?:text|content|reasoning_content)"[^\S\n]*:[^\S\n]*"((?:[^"\\\n]|\\.)+)"',
    re.M,
)
"""A ``data:`` line that :data:`_TEXT` finds text in: one match per line (``^`` anchors each
at a line's start, ``.`` stops at its end), so the matches count the lines; each captures
the text value."""


def count_body(
    body: bytes, prompt_chars: int = 0, *, prompt_ids: int | None = None, failed: bool = False
) -> TokenCount:
    """Token counts of a whole (non-streamed) response body.

    The server's ``usage`` where it sent one (``"usage"``). Without it, the counts are
    estimates from characters, :data:`CHARS_PER_TOKEN` a token: the prompt's from the
    request's, the generated tokens' from the text of the response's ``choices``
    (:func:`choices_chars`; ``"estimated"``). An error answer (an ``error`` and no
    ``choices``, or any body without them where ``failed``: the answer's HTTP status was an
    error) generated nothing (``"error"``); any other body (not JSON, no
    ``choices``, or too long to keep) leaves the generated tokens unknown: 0 stands in
    (``"unknown"``). A prompt given as token ids (``prompt_ids``, from
    :func:`prompt_token_ids`) is counted, not estimated (``prompt_counted``).
    """
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    usage = usage_of(obj)
    if usage is not None:
        return TokenCount(usage[0], usage[1], "usage")
    prompt, counted = _prompt_tokens(prompt_chars, prompt_ids)
    chars = choices_chars(obj)
    if chars is not None:
        return TokenCount(prompt, round(chars / CHARS_PER_TOKEN), "estimated", counted)
    if failed or (isinstance(obj, dict) and "error" in obj):
        return TokenCount(prompt, 0, "error", counted)
    return TokenCount(prompt, 0, "unknown", counted)


def choices_chars(payload: Any) -> int | None:
    """Characters of the text a response generated; None when it has no ``choices`` list.

    Counted: each choice's ``text`` (completions), its ``message``'s ``content`` (a string,
    or parts with ``text``) and ``reasoning_content``, and its tool calls' ``arguments``.
    """
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list):
        return None
    texts: list[Any] = []
    for c in choices:
        if not isinstance(c, dict):
            continue
        texts.append(c.get("text"))
        m = c.get("message")
        if isinstance(m, dict):
            content = m.get("content")
            texts += content if isinstance(content, list) else [content]
            texts.append(m.get("reasoning_content"))
            calls = m.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                f = call.get("function") if isinstance(call, dict) else None
                texts.append(f.get("arguments") if isinstance(f, dict) else None)
    texts = [t.get("text") if isinstance(t, dict) else t for t in texts]
    return sum(len(t) for t in texts if isinstance(t, str))
