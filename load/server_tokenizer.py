"""The served model's own token counts, from the server's ``POST /tokenize`` (vLLM's; the simulator and the
reference server answer it too), cached by text.

vLLM 0.32 takes ``{"model": ..., "prompt": "..."}`` (BOS and other special tokens added, as a completion
prompt gets them) or ``{"model": ..., "messages": [...]}`` (the chat template with the generation prompt, as
a chat request gets it) and answers ``{"count": N, "max_model_len": L, "tokens": [...]}``
(vllm@v0.32.0:vllm/entrypoints/serve/tokenize/protocol.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from load.config import Api
from load.word_costs import Fitter
from load.workload import WorkloadError


class TokenizeUnavailable(WorkloadError):
    """The server cannot count tokens for us; the message says what it answered and what to do."""


class ServerTokenizer:
    """Counts prompts as the server will, for the completions or chat API."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        api: Api,
        *,
        timeout_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        parallel: int = 8,
    ) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + "/tokenize"
        self.model = model
        self.api = api
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.headers = dict(headers or {})
        self._cache: dict[tuple[str, ...], int] = {}
        self._gate = asyncio.Semaphore(parallel)
        self.calls = 0
        self._fitters: dict[tuple[str, ...], Fitter] = {}

    def fitter(self, vocabulary: Sequence[str], *, text: bool = False) -> Fitter:
        """Fits prompts of these words to token counts (load/word_costs.py), counted as whole prompts (or,
        ``text``, as text alone); one per vocabulary, kept for the run, so the word costs are learned and
        verified once."""
        key = (str(text), *vocabulary)
        if key not in self._fitters:
            self._fitters[key] = Fitter(self.count_text if text else self.count, vocabulary)
        return self._fitters[key]

    async def count(self, text: str) -> int:
        """Tokens of ``text`` sent as the whole prompt (completions) or as one user message (chat)."""
        if self.api == "chat":
            return await self.count_messages([("user", text)])
        return await self._count(("prompt", text), {"model": self.model, "prompt": text})

    async def count_messages(self, messages: list[tuple[str, str]]) -> int:
        """Tokens of a chat request with these (role, content) messages, the generation prompt included."""
        key = ("messages", *(f"{r}\x1f{c}" for r, c in messages))
        body = {"model": self.model, "messages": [{"role": r, "content": c} for r, c in messages]}
        return await self._count(key, body)

    async def count_text(self, text: str) -> int:
        """Tokens of ``text`` alone, without special tokens (a reply's length)."""
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        return await self._count(("text", text), body)

    async def _count(self, key: tuple[str, ...], body: dict[str, Any]) -> int:
        if (hit := self._cache.get(key)) is not None:
            return hit
        async with self._gate:
            self.calls += 1
            try:
                async with self.session.post(
                    self.url, json=body, headers=self.headers, timeout=self.timeout
                ) as response:
                    if response.status != 200:
                        detail = (await response.text())[:200]
                        raise TokenizeUnavailable(
                            f"POST {self.url} answered {response.status} ({detail.strip()}); lengths in tokens "
                            "need the server's tokenizer (vLLM's /tokenize): give --length-unit words for "
                            "lengths in words instead"
                        )
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TokenizeUnavailable(
                    f"POST {self.url}: {type(exc).__name__}: {exc}; lengths in tokens need the server's "
                    "tokenizer (vLLM's /tokenize): give --length-unit words for lengths in words instead"
                ) from None
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int):
            raise TokenizeUnavailable(f"POST {self.url}: no 'count' in the answer {str(answer)[:200]}")
        self._cache[key] = count
        return count
