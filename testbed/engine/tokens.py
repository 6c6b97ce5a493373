"""Token counts and generated text without a tokenizer: deterministic, cheap, and documented.

Prompt tokens (what `usage.prompt_tokens` reports):
- a string prompt: 1 (BOS) + one token per run of word characters and one per other non-space
  character (`\\w+|[^\\w\\s]`), so "Hello, world!" is 1 + 4 = 5; a load tool that builds prompts from N
  space-separated words gets N + 1;
- a list of token ids: its length (vLLM adds nothing to token-id prompts);
- chat: the Llama 3 template, 1 (BOS) + per message 5 (`<|start_header_id|>`, role, `<|end_header_id|>`,
  "\\n\\n", `<|eot_id|>`) + its content tokens, + 4 for the assistant header that prompts the reply.
Output: a seeded stream of common words (each one token). Without `ignore_eos` the request stops at a
seeded "EOS" point (never before `min_tokens`), with finish_reason "stop"; otherwise at max_tokens
("length"). The same seed and prompt always give the same text and length.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from dataclasses import dataclass

_PIECE = re.compile(r"\w+|[^\w\s]")

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "I",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "more",
    "can",
    "about",
    "said",
    "what",
    "out",
    "up",
    "its",
    "into",
    "them",
    "than",
    "time",
    "only",
    "some",
    "could",
    "new",
    "these",
    "two",
    "may",
    "first",
    "then",
    "do",
    "any",
    "like",
    "my",
    "now",
    "over",
    "such",
    "our",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "men",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
]
VOCAB: tuple[str, ...] = tuple(" " + w for w in WORDS)
VOCAB_JSON: tuple[str, ...] = tuple(json.dumps(t)[1:-1] for t in VOCAB)  # already escaped for a JSON string
VOCAB_BYTES: tuple[bytes, ...] = tuple(t.encode() for t in VOCAB_JSON)

BOS_TOKENS = 1
CHAT_MESSAGE_OVERHEAD = 5
CHAT_REPLY_OVERHEAD = 4


def count_text_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


# Token ids (what `POST /tokenize` answers and the prefix cache hashes): the same pieces as the counts above,
# each mapped to an id by CRC-32, so a text always gets the same ids, in any process, and
# len(ids) == the count above. Ids below _FIRST_PIECE_ID are the special tokens.
VOCAB_SIZE = 32000
BOS_ID = 1
_CHAT_IDS = (2, 3, 4, 5, 6)  # <|start_header_id|>, role, <|end_header_id|>, "\n\n", <|eot_id|>
_REPLY_IDS = (2, 7, 4, 5)  # <|start_header_id|>, "assistant", <|end_header_id|>, "\n\n"
_FIRST_PIECE_ID = 16


def text_token_ids(text: str) -> list[int]:
    span = VOCAB_SIZE - _FIRST_PIECE_ID
    return [_FIRST_PIECE_ID + zlib.crc32(p.encode()) % span for p in _PIECE.findall(text)]


def prompt_token_ids(prompt: str | list[int]) -> list[int]:
    """The ids whose length `prompt_token_count` gives."""
    if isinstance(prompt, str):
        return [BOS_ID, *text_token_ids(prompt)]
    return list(prompt)


def chat_token_ids(messages: list[tuple[str, str]], *, add_generation_prompt: bool = True) -> list[int]:
    """The ids whose length `chat_token_count` gives (with the generation prompt)."""
    ids = [BOS_ID]
    for _role, content in messages:
        ids += [*_CHAT_IDS[:4], *text_token_ids(content), _CHAT_IDS[4]]
    if add_generation_prompt:
        ids += _REPLY_IDS
    return ids


def prompt_token_count(prompt: str | list[int]) -> int:
    if isinstance(prompt, str):
        return BOS_TOKENS + count_text_tokens(prompt)
    return len(prompt)


def chat_token_count(messages: list[tuple[str, str]]) -> int:
    """`messages` as (role, text content) pairs."""
    total = BOS_TOKENS + CHAT_REPLY_OVERHEAD
    for _role, content in messages:
        total += CHAT_MESSAGE_OVERHEAD + count_text_tokens(content)
    return total


@dataclass(frozen=True)
class OutputPlan:
    """How many tokens a request will produce and why it stops."""

    tokens: int
    finish_reason: str  # "length" or "stop"
    start: int  # offset into VOCAB of the first token
    stride: int  # step through VOCAB (coprime with its size)


def _digest(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest(), "little")


def plan_output(*, seed: int, key: str, max_tokens: int, min_tokens: int, ignore_eos: bool) -> OutputPlan:
    """Decide the output length and text stream for a request identified by `key` (e.g. its prompt).

    The natural (EOS) length is log-normal with a median of 120 tokens, a chat-like spread.
    """
    h = _digest(seed, key)
    n = len(VOCAB)
    start = h % n
    stride = 1 + (h >> 16) % (n - 1)
    while math.gcd(stride, n) != 1:
        stride += 1
    if ignore_eos:
        return OutputPlan(tokens=max_tokens, finish_reason="length", start=start, stride=stride)
    u = ((h >> 32) % 1_000_003 + 0.5) / 1_000_003  # uniform in (0, 1)
    z = math.sqrt(2) * _erfinv(2 * u - 1)
    natural = max(1, int(120 * math.exp(0.9 * z)))
    length = max(min_tokens, natural)
    if length >= max_tokens:
        return OutputPlan(tokens=max_tokens, finish_reason="length", start=start, stride=stride)
    return OutputPlan(tokens=length, finish_reason="stop", start=start, stride=stride)


def token_index(plan: OutputPlan, i: int) -> int:
    return (plan.start + i * plan.stride) % len(VOCAB)


def output_text(plan: OutputPlan, first: int, count: int) -> str:
    return "".join(VOCAB[token_index(plan, i)] for i in range(first, first + count))


def _erfinv(y: float) -> float:
    """Inverse error function (Giles' single-precision approximation; ample for a length draw)."""
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        p = 2.81022636e-08
        for c in (
            3.43273939e-07,
            -3.5233877e-06,
            -4.39150654e-06,
            0.00021858087,
            -0.00125372503,
            -0.00417768164,
            0.246640727,
            1.50140941,
        ):
            p = c + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        for c in (
            0.000100950558,
            0.00134934322,
            -0.00367342844,
            0.00573950773,
            -0.0076224613,
            0.00943887047,
            1.00167406,
            2.83297682,
        ):
            p = c + p * w
    return p * y
