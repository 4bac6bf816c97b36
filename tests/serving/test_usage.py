from __future__ import annotations

import json

from greenai.serving.usage import SseCounter, count_body, prompt_chars, usage_of


def sse(*objs: object) -> bytes:
    return b"".join(f"data: {json.dumps(o)}\n\n".encode() for o in objs) + b"data: [DONE]\n\n"


def test_chunks_are_counted_across_any_split_and_usage_wins() -> None:
    stream = sse(
        {"choices": [{"text": "a"}]},
        {"choices": [{"text": ""}]},  # no text: not a token
        {"choices": [{"delta": {"content": "b"}}]},
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"text": "c"}]},
    )
    for step in (1, 3, 7, len(stream)):
        c = SseCounter(prompt_chars=40)
        firsts = [c.feed(stream[i : i + step]) for i in range(0, len(stream), step)]
        assert sum(firsts) == 1
        got = c.count()
        assert (got.prompt_tokens, got.completion_tokens, got.source) == (10, 3, "chunks")
    c = SseCounter()
    c.feed(
        sse(
            {"choices": [{"text": "x"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}},
        )
    )
    got = c.count()
    assert (got.prompt_tokens, got.completion_tokens, got.source) == (5, 9, "usage")


def test_a_line_over_the_limit_is_skipped_not_kept() -> None:
    c = SseCounter(max_line=64)
    c.feed(b"data: " + b"x" * 1000)
    c.feed(b"y" * 1000 + b"\n\n")
    c.feed(sse({"choices": [{"text": "ok"}]}))
    assert c.count().completion_tokens == 1


def test_bodies_prompts_and_usage() -> None:
    body = json.dumps({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}).encode()
    got = count_body(body)
    assert (got.prompt_tokens, got.completion_tokens, got.source) == (3, 4, "usage")
    assert count_body(b"not json", prompt_chars=8).source == "chunks"
    assert count_body(b"{}").source == "none"
    assert prompt_chars({"prompt": ["ab", "cd"]}) == 4
    assert prompt_chars({"messages": [{"content": "abc"}, {"content": [{"text": "de"}]}]}) == 5
    assert prompt_chars("nope") == 0
    assert usage_of({"usage": {"prompt_tokens": True, "completion_tokens": 1}}) is None
