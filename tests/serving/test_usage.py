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
    assert got.tokens == "counted"
    assert prompt_chars({"prompt": ["ab", "cd"]}) == 4
    assert prompt_chars({"messages": [{"content": "abc"}, {"content": [{"text": "de"}]}]}) == 5
    assert prompt_chars("nope") == 0
    assert usage_of({"usage": {"prompt_tokens": True, "completion_tokens": 1}}) is None


def vllm_chunk(text: str, finish: str | None = None) -> dict[str, object]:
    """A chunk as vLLM streams it: one choice with its ``finish_reason`` (null until last)."""
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def test_tokens_by_the_first_read_one_by_one_and_merged() -> None:
    done = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 12}}
    # one token a chunk, one chunk a read (an empty-text chunk among them still a token)
    c = SseCounter()
    for i in range(12):
        c.feed(sse(vllm_chunk("" if i == 5 else f"t{i}", "length" if i == 11 else None))[:-14])
    c.feed(sse(done))
    assert c.tokens_by_first(c.count().completion_tokens) == 1
    # the first read held 7 chunks (the proxy read late), then 5 one by one
    c = SseCounter()
    assert c.feed(b"".join(sse(vllm_chunk(f"t{i}"))[:-14] for i in range(7)))
    for i in range(7, 12):
        assert not c.feed(sse(vllm_chunk(f"t{i}"))[:-14])
    c.feed(sse(done))
    assert c.tokens_by_first(12) == 7
    # the server merged 9 tokens into its first chunk, then 3 one by one (usage says 12)
    c = SseCounter()
    for chunk in [vllm_chunk("t0 t1 t2 t3 t4 t5 t6 t7 t8")] + [vllm_chunk("t") for _ in range(3)]:
        c.feed(sse(chunk)[:-14])
    c.feed(sse(done))
    assert c.count().completion_tokens == 12 and c.tokens_by_first(12) == 9
    # no finish_reason keys (a server that leaves them out): the text chunks after count
    c = SseCounter()
    for i in range(12):
        c.feed(sse({"choices": [{"text": f"t{i}"}]})[:-14])
    assert c.tokens_by_first(12) == 1
    assert SseCounter().tokens_by_first(12) == 0  # no text came


def test_choices_after_the_first_read_paced_or_a_late_backlog() -> None:
    chunks = [sse(vllm_chunk(f"t{i}"))[:-14] for i in range(30)]
    c = SseCounter()
    for data in chunks:  # one by one
        c.feed(data)
    assert c.paced_after_first()
    c = SseCounter()
    c.feed(chunks[0])
    for i in range(1, 30, 3):  # three a read: a proxy a little behind
        c.feed(b"".join(chunks[i : i + 3]))
    assert c.paced_after_first()
    c = SseCounter()
    c.feed(chunks[0])
    c.feed(b"".join(chunks[1:20]))  # the rest at once, in two reads: a backlog sent late
    c.feed(b"".join(chunks[20:]))
    assert not c.paced_after_first() and c.tokens_by_first(30) == 1
    assert SseCounter().paced_after_first()  # nothing came: nothing to judge
    # four choices side by side (n=4): four chunks a token, paced
    c = SseCounter(choices=4)
    c.feed(chunks[0])
    for i in range(1, 29, 4):
        c.feed(b"".join(chunks[i : i + 4]))
    assert c.paced_after_first()
    c = SseCounter()
    c.feed(chunks[0])
    for i in range(1, 29, 4):
        c.feed(b"".join(chunks[i : i + 4]))
    assert not c.paced_after_first()  # the same reads, one choice: 4 tokens a read
    # a short tail in one read is no backlog (too few to tell)
    c = SseCounter()
    c.feed(chunks[0])
    c.feed(b"".join(chunks[1:6]))
    assert c.paced_after_first()
    # a server that leaves finish_reason out: its text chunks count
    bare = [sse({"choices": [{"text": f"t{i}"}]})[:-14] for i in range(30)]
    c = SseCounter()
    c.feed(bare[0])
    c.feed(b"".join(bare[1:]))
    assert not c.paced_after_first()


def test_merged_chunks_after_the_first_read_do_not_make_it_merged() -> None:
    # vLLM merges tokens into one chunk when its API process falls behind: here after a
    # first token that came alone. The choices after it undercount the tokens after it, so
    # completion_tokens less them (10 - 4) is only an upper bound; the text shares them.
    chunks = [sse(vllm_chunk(t))[:-14] for t in ("ab", "cd ef gh ij", "kl mn", "op", "qr st")]
    chunks.append(sse({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 10}}))
    whole = b"".join(chunks)
    for reads in (chunks, [whole[: len(chunks[0])], whole[len(chunks[0]) :]]):
        c = SseCounter()
        for data in reads:  # chunk by chunk; or the first, then the rest at once
            for j in range(0, len(data), 5):  # in 5-byte pieces: the line-by-line path
                c.feed(data[j : j + 5])
        assert c.events == 5 and c.tokens_by_first(10) == 1
    # the same stream with its first two chunks in one read: 1 + 4 tokens by the text
    c = SseCounter()
    c.feed(chunks[0] + chunks[1])
    for data in chunks[2:]:
        c.feed(data)
    assert c.tokens_by_first(10) == 5


def test_a_body_without_usage_is_estimated_from_its_text_and_says_so() -> None:
    def count(obj: object, chars: int = 8) -> tuple[int, int, str, str]:
        got = count_body(json.dumps(obj).encode(), prompt_chars=chars)
        return got.prompt_tokens, got.completion_tokens, got.source, got.tokens

    assert count({"choices": [{"text": "x" * 40}, {"text": "y" * 4}]}) == (
        2, 11, "estimated", "estimated",
    )  # fmt: skip
    call = {"function": {"name": "f", "arguments": '{"a": 1}'}}
    chat = {"message": {"content": "abcd" * 3, "tool_calls": [call]}}
    assert count({"choices": [chat]})[:2] == (2, 5)  # 12 + 8 characters
    parts = {"message": {"content": [{"type": "text", "text": "abcdefgh"}]}}
    assert count({"choices": [parts, {"message": {"reasoning_content": "abcd"}}]})[1] == 3
    assert count({"choices": []}) == (2, 0, "estimated", "estimated")
    assert count({"error": {"message": "bad"}}) == (2, 0, "error", "error")
    for body in (b"not json", b"{}", b'{"data": [1]}'):
        got = count_body(body, prompt_chars=8)
        assert (got.completion_tokens, got.source, got.tokens) == (0, "unknown", "unknown")
    streamed = SseCounter(prompt_chars=8)
    streamed.feed(sse({"choices": [{"text": "a"}]}))
    assert streamed.count().tokens == "prompt_estimated"


def test_a_prompt_given_as_token_ids_is_counted_not_estimated() -> None:
    from greenai.serving.usage import prompt_token_ids

    assert prompt_token_ids({"prompt": [101, 7, 9, 4]}) == 4
    assert prompt_token_ids({"prompt": [[1, 2, 3], [4, 5], []]}) == 5
    for body in (
        {"prompt": "text"},
        {"prompt": ["a", [1, 2]]},  # a mix: the text part is estimated
        {"prompt": [True, 2]},
        {"prompt": []},
        {"messages": [{"content": "x"}], "prompt": [1, 2]},
        None,
    ):
        assert prompt_token_ids(body) is None, body
    body = json.dumps({"choices": [{"text": "x" * 40}]}).encode()  # no usage
    got = count_body(body, prompt_ids=6)
    assert (got.prompt_tokens, got.completion_tokens) == (6, 10)
    assert got.tokens == "completion_estimated"
    assert count_body(b"not json", prompt_ids=6).tokens == "completion_unknown"
    # an error answer's prompt may never have been processed: out of prefill J/token
    error = count_body(b'{"error": "bad"}', prompt_ids=6)
    assert (error.prompt_tokens, error.tokens, error.prompt_counted) == (6, "error", True)
    page = count_body(b"<html>Bad Gateway</html>", prompt_ids=6, failed=True)  # any error status
    assert (page.completion_tokens, page.tokens) == (0, "error")
    assert count_body(b"<html>Bad Gateway</html>", prompt_ids=6).tokens == "completion_unknown"
    with_usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
    assert count_body(json.dumps(with_usage).encode(), prompt_ids=6).prompt_tokens == 9
    c = SseCounter(prompt_ids=6)
    c.feed(b'data: {"choices": [{"text": "a"}]}\n\ndata: {"choices": [{"text": "b"}]}\n\n')
    assert (c.count().prompt_tokens, c.count().completion_tokens, c.count().tokens) == (
        6,
        2,
        "counted",
    )
