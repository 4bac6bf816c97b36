"""Load for ``greenai bench serve``: prompt sets and closed- or open-loop clients (aiohttp).

A level runs at a fixed concurrency (each of N clients sends its next request when the last
one is answered) or a fixed request rate (Poisson arrivals). Requests that start during the
warm-up, or end after the level's measured window, are kept apart from the steady ones.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenai.errors import ConfigError

__all__ = ["Prompt", "Sample", "generated_prompts", "load_prompts", "run_level"]

_WORDS = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "energy",
    "token",
    "request",
    "server",
    "model",
    "batch",
    "prefill",
    "decode",
    "joule",
    "watt",
    "power",
    "cache",
    "memory",
    "kernel",
    "layer",
    "attention",
)


@dataclass(frozen=True)
class Prompt:
    """One prompt and the tokens to generate for it."""

    text: str
    max_tokens: int


@dataclass(frozen=True)
class Sample:
    """One request as the client saw it (seconds on the client's monotonic clock)."""

    request_id: str | None
    start_s: float
    end_s: float
    status: int
    steady: bool


def generated_prompts(
    n: int = 64,
    *,
    seed: int = 0,
    words: tuple[int, int] = (8, 48),
    max_tokens: tuple[int, int] = (32, 128),
) -> list[Prompt]:
    """A seeded prompt set: word counts and generation lengths drawn uniformly in ranges."""
    rng = random.Random(seed)
    return [
        Prompt(
            " ".join(rng.choice(_WORDS) for _ in range(rng.randint(*words))),
            rng.randint(*max_tokens),
        )
        for _ in range(n)
    ]


def load_prompts(path: str | Path, default_max_tokens: int = 64) -> list[Prompt]:
    """Prompts from a file: JSON lines (``{"prompt": ..., "max_tokens": ...}``) or text lines.

    Raises:
        ConfigError: The file cannot be read or holds no prompt.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read prompts from {str(path)!r}: {exc.strerror}") from None
    out = []
    for line in lines:
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                raise ConfigError(f"{str(path)!r}: a line is not JSON: {line[:60]!r}") from None
            text, n = obj.get("prompt"), obj.get("max_tokens", default_max_tokens)
            if not isinstance(text, str) or not isinstance(n, int) or n < 1:
                raise ConfigError(
                    f"{str(path)!r}: each JSON line needs a string 'prompt' and an int"
                    " 'max_tokens' >= 1"
                )
            out.append(Prompt(text, n))
        else:
            out.append(Prompt(line, default_max_tokens))
    if not out:
        raise ConfigError(f"{str(path)!r} holds no prompt")
    return out


async def run_level(
    session: Any,
    url: str,
    model: str,
    prompts: list[Prompt],
    *,
    concurrency: int | None = None,
    rate_per_s: float | None = None,
    warmup_s: float = 5.0,
    duration_s: float = 20.0,
    stream: bool = False,
    seed: int = 0,
) -> tuple[list[Sample], float, float]:
    """Run one level; returns its samples and the steady window ``(start, end)``.

    Raises:
        ConfigError: Neither or both of ``concurrency`` and ``rate_per_s``.
    """
    if (concurrency is None) == (rate_per_s is None):
        raise ConfigError("a level has either a concurrency or a request rate")
    rng = random.Random(seed)
    t0 = time.monotonic()
    steady_from, stop_at = t0 + warmup_s, t0 + warmup_s + duration_s
    samples: list[Sample] = []
    counter = iter(range(10**9))

    async def one() -> None:
        p = prompts[next(counter) % len(prompts)]
        body: dict[str, Any] = {
            "model": model,
            "prompt": p.text,
            "max_tokens": p.max_tokens,
            "ignore_eos": True,
        }
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        start = time.monotonic()
        rid, status = None, 0
        try:
            async with session.post(url + "/v1/completions", json=body) as r:
                rid, status = r.headers.get("x-greenai-request-id"), r.status
                await r.read()
        except (OSError, asyncio.TimeoutError):
            status = 0
        end = time.monotonic()
        samples.append(Sample(rid, start, end, status, start >= steady_from and end <= stop_at))

    if concurrency is not None:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        assert rate_per_s is not None
        tasks = []
        t = time.monotonic()
        while t < stop_at:
            tasks.append(asyncio.create_task(one()))
            t += rng.expovariate(rate_per_s)
            await asyncio.sleep(max(0.0, t - time.monotonic()))
        await asyncio.gather(*tasks)
    return samples, steady_from, stop_at
