"""vLLM's `POST /tokenize`, answered with the simulator's own tokens (tokens.py), so a client that counts a
prompt there gets the count `usage.prompt_tokens` will report for it.

Request and answer as vLLM 0.32 has them (vllm@v0.32.0:vllm/entrypoints/serve/tokenize/protocol.py):
`{"model": ..., "prompt": "..."}` (`TokenizeCompletionRequest`, `add_special_tokens` default true: the BOS)
or `{"model": ..., "messages": [...]}` (`TokenizeChatRequest`, `add_generation_prompt` default true), answered
`{"count": N, "max_model_len": L, "tokens": [...], "token_strs": null}` (`TokenizeResponse`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.engine.protocol import chat_pairs
from testbed.engine.request_errors import RequestError
from testbed.engine.tokens import BOS_ID, chat_token_ids, text_token_ids


@dataclass(frozen=True)
class Tokenized:
    model: str | None
    tokens: list[int]


def tokenize(body: Any) -> Tokenized:
    """The token ids of a `/tokenize` body; RequestError (400) for a body vLLM would refuse."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f"model must be a string, got {model!r}.", param="model")
    if "messages" in body:
        generation_prompt = body.get("add_generation_prompt", True)
        if not isinstance(generation_prompt, bool):
            raise RequestError("add_generation_prompt must be a boolean.", param="add_generation_prompt")
        pairs = chat_pairs(body.get("messages"))
        return Tokenized(model, chat_token_ids(pairs, add_generation_prompt=generation_prompt))
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise RequestError("prompt must be a string (or give messages).", param="prompt")
    special = body.get("add_special_tokens", True)
    if not isinstance(special, bool):
        raise RequestError("add_special_tokens must be a boolean.", param="add_special_tokens")
    ids = text_token_ids(prompt)
    return Tokenized(model, [BOS_ID, *ids] if special else ids)


def tokenize_answer(tokens: list[int], max_model_len: int) -> dict[str, Any]:
    return {"count": len(tokens), "max_model_len": max_model_len, "tokens": tokens, "token_strs": None}
