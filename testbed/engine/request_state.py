"""One request in flight: what its HTTP handler waits on, and the request metrics vLLM records as the
engine works on it (first token, the gaps between tokens, the finish or the abort)."""

from __future__ import annotations

import asyncio

from testbed.engine.metrics import EngineMetrics
from testbed.engine.scheduler import SimRequest
from testbed.engine.tokens import OutputPlan


class StreamState:
    """What a waiting HTTP handler needs from the engine for one request."""

    __slots__ = ("done", "error", "finish_reason", "last_t", "max_tokens", "plan", "req", "waiter")

    def __init__(self, plan: OutputPlan, max_tokens: int | None = None) -> None:
        self.plan = plan
        self.max_tokens = max_tokens
        self.req: SimRequest | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.done = False
        self.error: str | None = None
        self.finish_reason = plan.finish_reason
        self.last_t = 0.0

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter
        self.waiter = None


def record_token(metrics: EngineMetrics, req: SimRequest, state: StreamState, t: float, w: float) -> None:
    """The engine made the request's next token at simulated time `t`: count it (`w` wall seconds per
    simulated second), and when it was the last one mark the request done and record how it finished."""
    if req.generated == 1:
        metrics.prefix_hit_tokens += req.cached
        metrics.on_first_token(
            req.prompt_tokens,
            (t - req.arrival) * w,
            ((req.scheduled_at or req.arrival) - req.arrival) * w,
        )
        metrics.on_tokens((), 1)
    else:
        metrics.on_tokens(((t - state.last_t) * w,), 1)
    state.last_t = t
    if req.finished:
        state.done = True
        first = req.first_token_at
        tpot = (t - first) * w / (req.generated - 1) if req.generated > 1 and first is not None else None
        scheduled = req.scheduled_at if req.scheduled_at is not None else req.arrival
        metrics.on_finished(
            state.finish_reason,
            (t - req.arrival) * w,
            req.generated,
            tpot,
            prompt_tokens=req.prompt_tokens,
            max_tokens=state.max_tokens,
            phases=((t - scheduled) * w, ((first or t) - scheduled) * w, (t - (first or t)) * w),
            preemptions=req.preemptions,
        )


def record_abort(metrics: EngineMetrics, req: SimRequest, state: StreamState, now: float, w: float) -> None:
    """The client went away at simulated time `now`: the request is done, finished as `abort`."""
    state.done = True
    state.finish_reason = "abort"
    metrics.on_finished(
        "abort",
        (now - req.arrival) * w,
        req.generated,
        None,
        prompt_tokens=req.prompt_tokens,
        max_tokens=state.max_tokens,
        preemptions=req.preemptions,
    )
