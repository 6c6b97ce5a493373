"""Discrete-event simulation of a served topology: throughput and latency figures without a wall clock.

The same `EngineCore` that paces the live server runs here as fast as the CPU allows. A workload is a list
of (prompt tokens, output tokens) pairs sent in one of three ways, as the load tools do:
- all at once at t = 0 (vLLM `bench serve --request-rate inf`, the "max throughput" runs);
- closed loop at a fixed concurrency (a client sends its next request when the last one finishes);
- open loop, Poisson arrivals at a rate.
Metrics follow vLLM's benchmark definitions (docs/architecture.md): TTFT = first token - send; TPOT =
(last - first) / (tokens - 1) per request; ITL = gaps between tokens, pooled; E2EL = last - send.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from testbed.engine.perf_model import PerfModel
from testbed.engine.scheduler import EngineCore, SimRequest


@dataclass(frozen=True)
class RequestRecord:
    prompt_tokens: int
    output_tokens: int
    sent: float
    first_token: float
    finished: float
    itls: tuple[float, ...]

    @property
    def ttft(self) -> float:
        return self.first_token - self.sent

    @property
    def tpot(self) -> float | None:
        if self.output_tokens < 2:
            return None
        return (self.finished - self.first_token) / (self.output_tokens - 1)

    @property
    def e2el(self) -> float:
        return self.finished - self.sent


@dataclass(frozen=True)
class SimSummary:
    """Figures over the measured requests; None when no request qualifies (never 0 for missing)."""

    completed: int
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft_median_s: float | None
    ttft_p99_s: float | None
    tpot_median_s: float | None
    itl_median_s: float | None
    e2el_median_s: float | None
    max_running: int
    preemptions: int


@dataclass(frozen=True)
class SimResult:
    records: tuple[RequestRecord, ...]
    makespan_s: float
    max_running: int
    preemptions: int
    steps: int

    def summary(self, skip_first: int = 0, skip_last: int = 0) -> SimSummary:
        """Latencies over records[skip_first : len - skip_last] (by send order); throughput over all."""
        measured = (
            self.records[skip_first : len(self.records) - skip_last]
            if skip_last
            else self.records[skip_first:]
        )
        ttfts = [r.ttft for r in measured]
        tpots = [t for r in measured if (t := r.tpot) is not None]
        itls = [g for r in measured for g in r.itls]
        e2els = [r.e2el for r in measured]

        def med(xs: list[float]) -> float | None:
            return float(np.median(xs)) if xs else None

        n = len(self.records)
        out = sum(r.output_tokens for r in self.records)
        total = out + sum(r.prompt_tokens for r in self.records)
        span = self.makespan_s
        return SimSummary(
            completed=n,
            duration_s=span,
            request_throughput=n / span if span > 0 else math.nan,
            output_throughput=out / span if span > 0 else math.nan,
            total_token_throughput=total / span if span > 0 else math.nan,
            ttft_median_s=med(ttfts),
            ttft_p99_s=float(np.percentile(ttfts, 99)) if ttfts else None,
            tpot_median_s=med(tpots),
            itl_median_s=med(itls),
            e2el_median_s=med(e2els),
            max_running=self.max_running,
            preemptions=self.preemptions,
        )


def fixed_lengths(n: int, prompt_tokens: int, output_tokens: int) -> list[tuple[int, int]]:
    return [(prompt_tokens, output_tokens)] * n


def sharegpt_like_lengths(
    n: int, *, seed: int = 0, mean_prompt: float = 230.0, mean_output: float = 200.0, max_len: int = 2000
) -> list[tuple[int, int]]:
    """Seeded lognormal lengths with ShareGPT-like means (vLLM bench's ShareGPT sample: ~230 in / ~200 out).

    sigma 1.0 gives the long right tail of chat traffic; pairs are clipped to `max_len` in total.
    """
    rng = random.Random(seed)
    sigma = 1.0
    pairs = []
    for _ in range(n):
        p = max(4, int(rng.lognormvariate(math.log(mean_prompt) - sigma**2 / 2, sigma)))
        o = max(2, int(rng.lognormvariate(math.log(mean_output) - sigma**2 / 2, sigma)))
        p = min(p, max_len - 2)
        o = min(o, max_len - p)
        pairs.append((p, o))
    return pairs


def simulate(
    perf: PerfModel,
    lengths: Sequence[tuple[int, int]],
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    seed: int = 0,
    record_itl: bool = True,
) -> SimResult:
    """Run `lengths` through a fresh engine. concurrency=None and rate=None sends all at t = 0."""
    if concurrency is not None and rate is not None:
        raise ValueError("give either concurrency (closed loop) or rate (open loop), not both")
    core = EngineCore(perf)
    if core.memory.error:
        raise ValueError(f"the model does not fit: {core.memory.error}")
    requests = [
        SimRequest(rid=i, prompt_tokens=p, output_tokens=o, record_times=record_itl)
        for i, (p, o) in enumerate(lengths)
    ]
    arrivals: list[tuple[float, int]] = []
    next_index = 0
    if concurrency is not None:
        first = min(concurrency, len(requests))
        arrivals = [(0.0, i) for i in range(first)]
        next_index = first
    elif rate is not None:
        rng = random.Random(seed)
        t = 0.0
        for i in range(len(requests)):
            arrivals.append((t, i))
            t += rng.expovariate(rate)
        next_index = len(requests)
    else:
        arrivals = [(0.0, i) for i in range(len(requests))]
        next_index = len(requests)
    heapq.heapify(arrivals)
    sent: dict[int, float] = {}
    max_running = 0

    def on_token(req: SimRequest, t: float) -> None:
        nonlocal next_index
        if req.finished and concurrency is not None and next_index < len(requests):
            heapq.heappush(arrivals, (t, next_index))
            next_index += 1

    while True:
        t_batch = core.next_event_time()
        if arrivals and (t_batch is None or arrivals[0][0] <= t_batch):
            t, i = heapq.heappop(arrivals)
            sent[i] = max(t, core.now)
            core.add_request(requests[i], t)
            continue
        if t_batch is None:
            break
        core.step(on_token)
        max_running = max(max_running, core.num_running)

    records = []
    for i, req in enumerate(requests):
        if req.first_token_at is None or req.finished_at is None:
            raise RuntimeError(f"request {i} did not finish: the simulation stalled (KV cache too small?)")
        times = req.token_times
        records.append(
            RequestRecord(
                prompt_tokens=req.prompt_tokens,
                output_tokens=req.output_tokens,
                sent=sent[i],
                first_token=req.first_token_at,
                finished=req.finished_at,
                itls=tuple(b - a for a, b in itertools.pairwise(times)),
            )
        )
    makespan = max(r.finished for r in records) - min(r.sent for r in records) if records else 0.0
    return SimResult(
        records=tuple(records),
        makespan_s=makespan,
        max_running=max_running,
        preemptions=core.preemptions,
        steps=core.steps,
    )
