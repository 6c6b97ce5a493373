"""Fitting many prompts with few /tokenize calls: what each word of the vocabulary costs in the served model's
tokens, measured once with the server, then prompts fitted by adding those costs up.

Word-level tokenizers (GPT-2-style byte BPE, Llama 3's, SentencePiece) split text at spaces before merging,
so a text of space-separated words costs the sum of its words' costs: the first word as it is, the others
with their leading space. ``Fitter`` trusts that sum only after checking it: the first ``verify`` prompts
it fits are counted by the server too, and a single disagreement makes it fit every later prompt with the
server's counts (load/token_fit.py), as it would without costs. The level's check against
``usage.prompt_tokens`` (load/input_check.py) judges every request either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from load.token_fit import Fitted, fit_prompt

Count = Callable[[str], Awaitable[int]]
_ANCHOR = "the"
_VERIFY = 8


@dataclass(frozen=True)
class WordCosts:
    empty: int  # the count of the empty prompt (BOS, a chat template)
    first: dict[str, int]  # a word's cost as the first of the text
    after: dict[str, int]  # a word's cost after a space

    @classmethod
    async def learn(cls, count: Count, words: Sequence[str]) -> WordCosts:
        empty, anchor = await asyncio.gather(count(""), count(_ANCHOR))
        firsts = await asyncio.gather(*(count(w) for w in words))
        afters = await asyncio.gather(*(count(f"{_ANCHOR} {w}") for w in words))
        return cls(
            empty,
            {w: c - empty for w, c in zip(words, firsts, strict=True)},
            {w: c - anchor for w, c in zip(words, afters, strict=True)},
        )

    def fit(self, pool: Sequence[str], target: int, head: str = "", head_count: int | None = None) -> Fitted:
        """The longest run of ``pool`` words within ``target`` by the summed costs, then one-token words."""
        total = head_count if head else self.empty
        assert total is not None, "a head needs its count"
        words: list[str] = []
        for w in pool:
            cost = self.after[w] if (words or head) else self.first[w]
            if total + cost > target:
                break
            words.append(w)
            total += cost
        fillers = [w for w, c in self.after.items() if c == 1]
        if fillers and (words or head):
            while total < target:
                words.append(fillers[len(words) % len(fillers)])
                total += 1
        return Fitted(" ".join([*([head] if head else []), *words]), total)


class Fitter:
    """Fits prompts by word costs once they proved right, else with the server's counts."""

    def __init__(self, count: Count, vocabulary: Sequence[str], verify: int = _VERIFY) -> None:
        self.count = count
        self.vocabulary = frozenset(vocabulary)
        self._words = tuple(vocabulary)
        self._costs: WordCosts | None = None
        self._learning = asyncio.Lock()
        self._verify = verify
        self._checks_started = self._checks_passed = 0
        self._decided = asyncio.Event()
        self.additive: bool | None = None  # None until decided; False: the server's counts from then on

    async def _costs_learned(self) -> WordCosts:
        async with self._learning:
            if self._costs is None:
                self._costs = await WordCosts.learn(self.count, self._words)
            return self._costs

    async def fit(self, pool: Sequence[str], target: int, head: str = "") -> Fitted:
        if self.additive is False or not self.vocabulary.issuperset(pool):
            return await fit_prompt(self.count, pool, target, head)
        costs = await self._costs_learned()
        head_count = await self.count(head) if head else None
        fitted = costs.fit(pool, target, head, head_count)
        if self.additive is None and self._checks_started < self._verify:
            self._checks_started += 1  # one of the first fits: the server counts it too
            if await self.count(fitted.text) != fitted.tokens:
                self.additive = False
                self._decided.set()
                return await fit_prompt(self.count, pool, target, head)
            self._checks_passed += 1
            if self._checks_passed >= self._verify:
                self.additive = True
                self._decided.set()
            return fitted
        if self.additive is None:
            await self._decided.wait()
        return fitted if self.additive else await fit_prompt(self.count, pool, target, head)
