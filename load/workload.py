"""Workloads: the prompts of a level and how many tokens each asks for, built from a seed.

No tokenizer is loaded (the suite runs against any model without downloading one), so prompt lengths
are in words chosen to be about one token each in common BPE vocabularies; the server's
``usage.prompt_tokens`` is what the metrics use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from load.config import (
    MultiTurnWorkload,
    RandomWorkload,
    SharedPrefixWorkload,
    ShareGptWorkload,
    Workload,
)

# Short, common English words: each is a single token (with its leading space) in the GPT-2, Llama 2/3
# and Mistral vocabularies, so a prompt of N of them is close to N tokens.
WORDS: tuple[str, ...] = tuple(
    """the of and to in is that for it as was with be by on not he this are or his from at which but
    have an they you were her she there one all we their has been if more when will would who so no out
    up into do any time my than only new some could these two may first then very also after our made
    well over back year most where much before good through work way down even want because day same
    man must still life home such long own last here why might under never world few both city hand
    part place high land small young old since state great set end big north group light left water
    side black open white off game name sea week power story plan food fire red music art
    sun school tree door road table book river money room house night line order point stone""".split()  # noqa: SIM905
)

# ShareGPT filter from vLLM bench (``is_valid_sequence``), applied to estimated token counts.
_SHAREGPT_MIN_TOKENS = 4
_SHAREGPT_MAX_PROMPT = 1024
_SHAREGPT_MAX_TOTAL = 2048
_CHARS_PER_TOKEN = 4


class WorkloadError(ValueError):
    """A workload that cannot be built (unreadable or empty dataset); the message says which and why."""


@dataclass(frozen=True, slots=True)
class RequestSpec:
    prompt: str
    output_len: int
    input_len: int | None  # the intended prompt length in tokens (estimate); usage has the truth
    # lengths in tokens (load/token_workload.py): the server's count of the prompt (input_len is then what
    # was asked for), and of its prefix shared with other requests of the level
    counted: int | None = None
    shared_tokens: int | None = None


def build_requests(workload: Workload, n: int, rng: np.random.Generator) -> list[RequestSpec]:
    if isinstance(workload, RandomWorkload):
        return [
            RequestSpec(_random_text(rng, workload.input_len), workload.output_len, workload.input_len)
            for _ in range(n)
        ]
    if isinstance(workload, SharedPrefixWorkload):
        return _shared_prefix(workload, n, rng)
    if isinstance(workload, ShareGptWorkload):
        return _sharegpt(workload, n, rng)
    if isinstance(workload, MultiTurnWorkload):
        raise TypeError("a multi-turn workload is sent as sessions (load/conversations.py), not requests")
    raise TypeError(f"unknown workload {workload!r}")


def _random_text(rng: np.random.Generator, words: int) -> str:
    return " ".join(random_words(rng, words))


def random_words(rng: np.random.Generator, words: int) -> list[str]:
    return [WORDS[i] for i in rng.integers(0, len(WORDS), size=words)]


def _shared_prefix(w: SharedPrefixWorkload, n: int, rng: np.random.Generator) -> list[RequestSpec]:
    prefixes = [_random_text(rng, w.prefix_len) for _ in range(w.num_prefixes)]
    groups = rng.permutation(np.arange(n) % w.num_prefixes)
    suffix_len = w.input_len - w.prefix_len
    return [
        RequestSpec(prefixes[g] + " " + _random_text(rng, suffix_len), w.output_len, w.input_len)
        for g in groups
    ]


def _sharegpt(w: ShareGptWorkload, n: int, rng: np.random.Generator) -> list[RequestSpec]:
    pairs = load_sharegpt_pairs(w.path)
    valid = []
    for prompt, reply in pairs:
        prompt_len = _estimate_tokens(prompt)
        output_len = w.output_len if w.output_len is not None else _estimate_tokens(reply)
        if (
            prompt_len >= _SHAREGPT_MIN_TOKENS
            and output_len >= _SHAREGPT_MIN_TOKENS
            and prompt_len <= _SHAREGPT_MAX_PROMPT
            and prompt_len + output_len <= _SHAREGPT_MAX_TOTAL
        ):
            valid.append(RequestSpec(prompt, output_len, prompt_len))
    if not valid:
        raise WorkloadError(
            f"{w.path}: no conversation fits (prompt and reply >= {_SHAREGPT_MIN_TOKENS} tokens, prompt <= "
            f"{_SHAREGPT_MAX_PROMPT}, both <= {_SHAREGPT_MAX_TOTAL}, estimated at {_CHARS_PER_TOKEN} chars/token)"
        )
    # Seeded sample without replacement; cycles through a fresh permutation when asked for more.
    picked: list[RequestSpec] = []
    while len(picked) < n:
        picked += [valid[i] for i in rng.permutation(len(valid))[: n - len(picked)]]
    return picked


def sharegpt_valid(prompt_len: int, output_len: int) -> bool:
    """vLLM bench's ShareGPT filter (``is_valid_sequence``)."""
    return (
        prompt_len >= _SHAREGPT_MIN_TOKENS
        and output_len >= _SHAREGPT_MIN_TOKENS
        and prompt_len <= _SHAREGPT_MAX_PROMPT
        and prompt_len + output_len <= _SHAREGPT_MAX_TOTAL
    )


def load_sharegpt_pairs(path: Path) -> list[tuple[str, str]]:
    """(first human turn, the reply to it) from each conversation of a ShareGPT-format JSON file."""
    return [(c[0], c[1]) for c in load_sharegpt_conversations(path, 2)]


def load_sharegpt_conversations(path: Path, min_turns: int = 2) -> list[list[str]]:
    """Each conversation's turns (human, reply, human, ...) as text, from a ShareGPT-format JSON file; those
    with fewer than ``min_turns`` turns are left out."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the ShareGPT file ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(raw, list):
        raise WorkloadError(f"{path}: expected a JSON list of conversations, got {type(raw).__name__}")
    conversations = []
    for entry in raw:
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list) or len(turns) < min_turns:
            continue
        texts = [t.get("value") if isinstance(t, dict) else None for t in turns]
        # the turns up to the first that is not text; enough of them or none
        usable = texts[: next((i for i, t in enumerate(texts) if not isinstance(t, str)), len(texts))]
        if len(usable) >= min_turns:
            conversations.append([str(t) for t in usable])
    if not conversations:
        raise WorkloadError(
            f"{path}: no conversation with {'two' if min_turns == 2 else min_turns} turns found; expected "
            '[{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}, ...]'
        )
    return conversations


def _estimate_tokens(text: str) -> int:
    return max(1, round(len(text) / _CHARS_PER_TOKEN))
