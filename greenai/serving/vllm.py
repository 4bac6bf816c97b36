"""Iteration-level attribution for vLLM running in this process (its ``LLM`` offline API).

:func:`generate` feeds prompts to an ``LLM``'s engine and drives it step by step through
the engine's public API (``add_request``, ``step``, ``has_unfinished_requests``). Every
step is one scheduler iteration: the requests whose outputs it returned are the batch,
with the prompt tokens of those seen for the first time (prefill) and the tokens each
generated in it (decode). Each step becomes a :meth:`ServingMeter.iteration` mark, so the
split uses rule ``iterations``: the batch composition the engine reports, with a prefill
and a decode token weighted by their cost fitted over the steps.

Only what the engine returns is seen: with chunked prefill a prompt processed over several
steps is charged to the step that produced its first token. vLLM is not a dependency of
greenai; this module imports nothing from it and takes the ``LLM`` object as it is.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

from greenai.errors import ConfigError
from greenai.serving.meter import ServingMeter

__all__ = ["generate"]

_ids = itertools.count(1)


def generate(
    llm: Any, prompts: Sequence[Any], sampling_params: Any, meter: ServingMeter
) -> list[Any]:
    """Generate like ``llm.generate(prompts, sampling_params)``, marking each engine step.

    Args:
        llm: A ``vllm.LLM``.
        prompts: Prompts as ``LLM.generate`` takes them (strings or prompt dicts).
        sampling_params: One ``vllm.SamplingParams`` for all, or one per prompt.
        meter: The meter of the job that measures this process.

    Returns:
        The final ``RequestOutput`` of each prompt, in the order given, with every
        generated token (the text of each output is the concatenation of its steps').

    Raises:
        ConfigError: ``llm`` has no engine with ``add_request``/``step``, or the number of
            sampling parameters does not match the prompts.
    """
    engine = getattr(llm, "llm_engine", None)
    if engine is None or not hasattr(engine, "step") or not hasattr(engine, "add_request"):
        raise ConfigError("generate() takes a vllm.LLM (its llm_engine steps the batches)")
    params = (
        list(sampling_params)
        if isinstance(sampling_params, list | tuple)
        else [sampling_params] * len(prompts)
    )
    if len(params) != len(prompts):
        raise ConfigError(f"{len(params)} sampling parameters for {len(prompts)} prompts")
    from vllm.sampling_params import RequestOutputKind  # type: ignore[import-not-found]

    run = next(_ids)
    order: dict[str, int] = {}
    for i, (prompt, p) in enumerate(zip(prompts, params, strict=True)):
        rid = f"vllm-{run}-{i}"
        p = copy.copy(p)
        p.output_kind = RequestOutputKind.DELTA  # each step's new tokens only
        meter.begin(rid)
        engine.add_request(rid, prompt, p)
        order[rid] = i
    seen: set[str] = set()
    generated: dict[str, int] = dict.fromkeys(order, 0)
    prompt_len: dict[str, int] = {}
    final: dict[str, Any] = {}
    texts: dict[str, list[str]] = {rid: [] for rid in order}
    tokens: dict[str, list[int]] = {rid: [] for rid in order}
    while engine.has_unfinished_requests():
        t0 = meter.now_s()
        outputs = engine.step()
        t1 = meter.now_s()
        prefill: dict[str, int] = {}
        decode: dict[str, int] = {}
        for out in outputs:
            rid = str(out.request_id)
            if rid not in order:
                continue
            if rid not in seen:
                seen.add(rid)
                prompt_len[rid] = len(out.prompt_token_ids or ())
                prefill[rid] = prompt_len[rid]
                meter.first_token(rid, t1)
            new = sum(len(c.token_ids) for c in out.outputs)
            if new:
                decode[rid] = new
                generated[rid] += new
            for c in out.outputs[:1]:
                texts[rid].append(c.text)
                tokens[rid].extend(c.token_ids)
            if out.finished:
                final[rid] = out
                meter.end(
                    rid,
                    prompt_tokens=prompt_len.get(rid, 0),
                    completion_tokens=generated[rid],
                    end_s=t1,
                )
        if prefill or decode:
            meter.iteration(t0, t1, prefill=prefill, decode=decode)
    results: list[Any] = [None] * len(order)
    for rid, i in order.items():
        out = final.get(rid)
        if out is None:  # the engine dropped it: keep the meter consistent
            if meter.is_open(rid):
                meter.end(rid, prompt_tokens=prompt_len.get(rid, 0), status="aborted")
            continue
        if out.outputs:
            out.outputs[0].text = "".join(texts[rid])
            out.outputs[0].token_ids = tokens[rid]
        results[i] = out
    return results
