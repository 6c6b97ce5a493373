"""A prompt of exactly N of the served model's tokens, built from words and the server's own counts.

Start from one token a word, count the text with the server (load/server_tokenizer.py), rescale by the tokens
a word turned out to cost, and repeat until the count is N; when one word more is too many, single-letter
words (one token in the BPE and SentencePiece vocabularies we know) fill the rest. vLLM's own random dataset
does the same in token ids (decode, re-encode, adjust: vllm@v0.32.0:vllm/benchmarks/datasets.py,
``RandomDataset``); here the text stays words, so it works for chat as for completions and needs no
tokenizer on the client. What cannot be hit exactly is returned as the nearest count found.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

Count = Callable[[str], Awaitable[int]]

_MAX_STEPS = 12
_FILL = "a"
_MAX_FILL = 64


@dataclass(frozen=True, slots=True)
class Fitted:
    text: str
    tokens: int  # the server's count of ``text``


async def fit_prompt(count: Count, pool: Sequence[str], target: int, head: str = "") -> Fitted:
    """``head`` followed by the first words of ``pool`` (and fill), counting ``target`` tokens if it can."""

    def text(n: int, fill: int = 0) -> str:
        return " ".join([*([head] if head else []), *pool[:n], *([_FILL] * fill)])

    base = await count(text(0))
    seen: dict[int, int] = {}
    n = max(0, min(len(pool), target - base))
    for _ in range(_MAX_STEPS):
        c = seen[n] = await count(text(n))
        if c == target:
            return Fitted(text(n), c)
        per_word = max((c - base) / n, 0.25) if n else 1.0
        step = (target - c) / per_word
        nxt = n + (max(1, int(step)) if step > 0 else -max(1, math.ceil(-step)))
        nxt = max(0, min(len(pool), nxt))
        if nxt in seen:
            break
        n = nxt
    below = [k for k, v in seen.items() if v < target]
    best = min(seen.items(), key=lambda kv: (abs(kv[1] - target), kv[1] > target))
    if below:
        lo = max(below)
        c = seen[lo]
        fill = 0
        while c < target and fill < _MAX_FILL:
            more = await count(text(lo, fill + 1))
            if more > target:
                break
            fill, c = fill + 1, more
        if abs(c - target) <= abs(best[1] - target):
            return Fitted(text(lo, fill), c)
    return Fitted(text(best[0]), best[1])
