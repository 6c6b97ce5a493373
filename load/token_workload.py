"""A level's requests with lengths in the served model's tokens (``length_unit="tokens"``, the default).

Lengths are drawn from the workload's distributions (load/lengths.py), then each prompt is fitted to its
length with the server's own counts (load/token_fit.py, load/server_tokenizer.py): random words for
``random``; for ``shared-prefix`` each of the ``num_prefixes`` prefixes fitted to ``prefix_len`` tokens and a
random suffix fitted so the whole prompt is ``input_len``; ShareGPT prompts as recorded, counted (and
filtered as vLLM bench filters them) in tokens, the reply's recorded length in tokens when no
``output_len`` is given. Seeded as the word workloads are (load/workload.py).
"""

from __future__ import annotations

import asyncio

import numpy as np

from load.config import RandomWorkload, SharedPrefixWorkload, ShareGptWorkload, Workload
from load.lengths import draw_lengths
from load.server_tokenizer import ServerTokenizer
from load.workload import (
    WORDS,
    RequestSpec,
    WorkloadError,
    load_sharegpt_pairs,
    random_words,
    sharegpt_valid,
)

_SPARE_WORDS = 16
_SHAREGPT_BATCH = 64


async def build_token_requests(
    workload: Workload, n: int, rng: np.random.Generator, tokenizer: ServerTokenizer
) -> list[RequestSpec]:
    if isinstance(workload, RandomWorkload):
        return await _random(workload, n, rng, tokenizer)
    if isinstance(workload, SharedPrefixWorkload):
        return await _shared_prefix(workload, n, rng, tokenizer)
    if isinstance(workload, ShareGptWorkload):
        return await _sharegpt(workload, n, rng, tokenizer)
    raise TypeError(f"no token-length requests for workload {workload!r}")


async def _random(
    w: RandomWorkload, n: int, rng: np.random.Generator, tok: ServerTokenizer
) -> list[RequestSpec]:
    inputs = draw_lengths(w.input_dist, w.input_len, n, rng)
    outputs = draw_lengths(w.output_dist, w.output_len, n, rng)
    pools = [random_words(rng, length + _SPARE_WORDS) for length in inputs]
    fitter = tok.fitter(WORDS)
    fitted = await asyncio.gather(*(fitter.fit(p, t) for p, t in zip(pools, inputs, strict=True)))
    return [
        RequestSpec(f.text, out, target, counted=f.tokens)
        for f, out, target in zip(fitted, outputs, inputs, strict=True)
    ]


async def _shared_prefix(
    w: SharedPrefixWorkload, n: int, rng: np.random.Generator, tok: ServerTokenizer
) -> list[RequestSpec]:
    prefix_pools = [random_words(rng, w.prefix_len + _SPARE_WORDS) for _ in range(w.num_prefixes)]
    fitter = tok.fitter(WORDS)
    prefixes = await asyncio.gather(*(fitter.fit(p, w.prefix_len) for p in prefix_pools))
    groups = rng.permutation(np.arange(n) % w.num_prefixes)
    outputs = draw_lengths(w.output_dist, w.output_len, n, rng)
    pools = [random_words(rng, w.input_len + _SPARE_WORDS) for _ in range(n)]
    fitted = await asyncio.gather(
        *(fitter.fit(pool, w.input_len, prefixes[g].text) for pool, g in zip(pools, groups, strict=True))
    )
    return [
        RequestSpec(f.text, out, w.input_len, counted=f.tokens, shared_tokens=prefixes[g].tokens)
        for f, out, g in zip(fitted, outputs, groups, strict=True)
    ]


async def _sharegpt(
    w: ShareGptWorkload, n: int, rng: np.random.Generator, tok: ServerTokenizer
) -> list[RequestSpec]:
    """Conversations in a seeded order, counted a batch at a time until ``n`` fit (a large file is not
    counted whole); cycles through those that fit when the file has fewer."""
    pairs = load_sharegpt_pairs(w.path)
    order = rng.permutation(len(pairs))
    fits: list[RequestSpec] = []
    for start in range(0, len(order), _SHAREGPT_BATCH):
        batch = [pairs[i] for i in order[start : start + _SHAREGPT_BATCH]]
        got = await asyncio.gather(*(_sharegpt_spec(w, tok, p, r) for p, r in batch))
        fits += [g for g in got if g is not None]
        if len(fits) >= n:
            break
    if not fits:
        raise WorkloadError(
            f"{w.path}: no conversation fits (prompt and reply >= 4 tokens, prompt <= 1024, both <= 2048, "
            "counted with the server's tokenizer)"
        )
    return [fits[i % len(fits)] for i in range(n)]


async def _sharegpt_spec(
    w: ShareGptWorkload, tok: ServerTokenizer, prompt: str, reply: str
) -> RequestSpec | None:
    count = await tok.count(prompt)
    out = w.output_len if w.output_len is not None else await tok.count_text(reply)
    return RequestSpec(prompt, out, count, counted=count) if sharegpt_valid(count, out) else None
