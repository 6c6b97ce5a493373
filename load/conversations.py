"""Multi-turn sessions (``MultiTurnWorkload``): each session's turns in order, every turn carrying the whole
history before it, the next turn ``think_time_s`` after the reply ended.

A session is a user's conversation: turn k sends every earlier user message and the server's reply to it
(the text it streamed), then the new user message: the chat API as messages, the completions API as their
texts joined by a blank line. New messages are random words fitted to ``input_len`` tokens (counted alone,
without special tokens), or a ShareGPT-format file's human turns in order. Before each turn the whole prompt
is counted with the server's /tokenize: that is the turn's requested length, checked against
``usage.prompt_tokens`` as any level's. A turn that fails ends its session (the next turn would have no
reply to carry). ``level.concurrency`` sessions run at once (default: all); the level sends
``ceil(num_requests / turns)`` sessions. The TTFT of each turn number is in ``ttft_by_turn``: later turns
have longer prompts, and their history may be in the server's prefix cache. AIPerf's and inference-perf's
multi-turn chat modes work the same way (sessions of turns with a delay between turns, the history resent).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from time import perf_counter

import aiohttp
import numpy as np

from load.config import Level, MultiTurnWorkload
from load.level_runner import LevelRun, utc_timestamp
from load.metrics import distribution
from load.records import RequestRecord
from load.request import Target, request_body, send_request
from load.server_tokenizer import ServerTokenizer
from load.workload import WORDS, RequestSpec, WorkloadError, load_sharegpt_conversations, random_words
from reports.schema import TurnLatency

_SPARE_WORDS = 16


@dataclass(frozen=True)
class Turn:
    message: str  # the new user message
    output_len: int


@dataclass
class SessionsRun:
    run: LevelRun
    specs: list[RequestSpec]  # by record index: the turn's whole prompt and its counted length
    turns: list[int] = field(default_factory=list)  # by record index: 1-based turn number


async def plan_sessions(
    w: MultiTurnWorkload, sessions: int, rng: np.random.Generator, tok: ServerTokenizer
) -> list[list[Turn]]:
    """Each session's turns: fitted random messages, or a ShareGPT file's conversations in seeded order."""
    if w.path is None:
        out = w.output_len if w.output_len is not None else 128
        pools = [
            [random_words(rng, w.input_len + _SPARE_WORDS) for _ in range(w.turns)] for _ in range(sessions)
        ]
        fitter = tok.fitter(WORDS, text=True)
        fitted = await asyncio.gather(*(fitter.fit(pool, w.input_len) for turns in pools for pool in turns))
        return [[Turn(f.text, out) for f in fitted[s * w.turns : (s + 1) * w.turns]] for s in range(sessions)]
    conversations = load_sharegpt_conversations(w.path, 1)
    order = rng.permutation(len(conversations))
    plans = []
    for s in range(sessions):
        texts = conversations[int(order[s % len(order)])]
        humans, replies = texts[0::2][: w.turns], texts[1::2]
        outs = [
            w.output_len
            if w.output_len is not None
            else max(1, await tok.count_text(replies[i]))
            if i < len(replies)
            else 128
            for i in range(len(humans))
        ]
        plans.append([Turn(h, o) for h, o in zip(humans, outs, strict=True)])
    if not plans:
        raise WorkloadError(f"{w.path}: no conversation to send")
    return plans


async def run_sessions(
    session: aiohttp.ClientSession,
    target: Target,
    level: Level,
    w: MultiTurnWorkload,
    plans: list[list[Turn]],
    tok: ServerTokenizer,
    *,
    stop: asyncio.Event | None = None,
) -> SessionsRun:
    started_at = utc_timestamp()
    records: list[RequestRecord] = []
    specs: list[RequestSpec] = []
    turns: list[int] = []
    slots = asyncio.Semaphore(level.concurrency or len(plans))
    headers = {"Content-Type": "application/json", **target.headers}
    interrupted = False

    async def one(plan: list[Turn]) -> None:
        nonlocal interrupted
        history: list[tuple[str, str]] = []
        carried = 0  # the previous turn's prompt and reply tokens: what the server's prefix cache could hold
        async with slots:
            for k, turn in enumerate(plan, start=1):
                if stop is not None and stop.is_set():
                    interrupted = True
                    return
                messages = [*history, ("user", turn.message)]
                prompt = "\n\n".join(text for _, text in messages)
                counted = await (tok.count_messages(messages) if target.api == "chat" else tok.count(prompt))
                spec = RequestSpec(prompt, turn.output_len, counted, counted=counted, shared_tokens=carried)
                body = request_body(target, spec, messages if target.api == "chat" else None)
                now = perf_counter()
                record = RequestRecord(index=len(records), scheduled=now, ready=now, text=[])
                records.append(record)
                specs.append(spec)
                turns.append(k)
                await send_request(
                    session, target, body, {**headers, "X-Request-Id": f"load-{record.index}"}, record
                )
                if not record.ok:
                    return
                history = [*messages, ("assistant", "".join(record.text or []))]
                carried = counted + (record.output_tokens or 0)
                record.text = None
                if w.think_time_s and k < len(plan):
                    await asyncio.sleep(w.think_time_s)  # the user's think time: part of the workload

    await asyncio.gather(*(one(plan) for plan in plans))
    run = LevelRun(level=level, records=records, started_at=started_at, interrupted=interrupted)
    return SessionsRun(run, specs, turns)


def sessions_for(level: Level, w: MultiTurnWorkload) -> int:
    if level.num_requests is None or level.request_rate is not None:
        raise WorkloadError(
            "a multi-turn level is a closed loop with num_requests (its sessions are num_requests / turns, "
            f"concurrency sessions at once), not {level.describe()}"
        )
    return math.ceil(level.num_requests / w.turns)


def ttft_by_turn(sr: SessionsRun) -> list[TurnLatency]:
    out = []
    for k in sorted(set(sr.turns)):
        done = [r for r, t in zip(sr.run.records, sr.turns, strict=True) if t == k and r.ok and r.sent]
        ttft = np.array([(r.chunk_times[0] - (r.sent or 0.0)) * 1e3 for r in done], dtype=np.float64)
        prompts = [r.prompt_tokens for r in done if r.prompt_tokens is not None]
        out.append(
            TurnLatency(
                turn=k,
                prompt_tokens_mean=round(sum(prompts) / len(prompts), 3) if prompts else None,
                ttft_ms=distribution(ttft),
            )
        )
    return out
