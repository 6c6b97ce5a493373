"""Continuous batching as vLLM does it, in simulated time: who runs in each step, and when its tokens land.

`BatchScheduler` is one vLLM scheduler: a FCFS waiting queue and a running set, at most `max_num_seqs`
running, a token budget of `max_num_batched_tokens` per step, KV cache in blocks of `block_size` tokens.
- With chunked prefill (vLLM V1, and V0 with `--enable-chunked-prefill`): running requests first (one
  token per decoding request, the next chunk of a partial prefill), then waiting requests admitted
  while the budget, `max_num_seqs` and free KV blocks allow, the last one possibly chunked.
- Without it (vLLM V0 default): a step is either prefills only (whole prompts that fit the budget) or
  decodes only; waiting prompts go first.
- A running request that cannot get a KV block for its next token preempts the most recently admitted
  request that is not in flight (recompute: its blocks are freed, it goes back to the front of the
  queue and later re-prefills prompt + generated tokens). When the cache is full, requests queue.

`EngineCore` runs batches through the pipeline of `PerfModel`: up to PP batches in flight (one scheduler
with PP in flight, as V1; or PP schedulers with one each, as V0's virtual engines), each batch taking
host time, then every stage in turn (a stage works on one batch at a time), hops between stages, and the
return of the sampled tokens. A request in flight is not scheduled again until its batch returns.
Everything is in simulated seconds and deterministic; the caller decides whether to pace it against a
wall clock (`runner.py`) or not (`simulate.py`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.engine.perf_model import BatchShape, PerfModel


@dataclass(eq=False)
class SimRequest:
    """One request as the scheduler sees it. `output_tokens` is decided up front (max_tokens or EOS)."""

    rid: int
    prompt_tokens: int
    output_tokens: int
    arrival: float = 0.0
    record_times: bool = False
    payload: object = None  # the server's per-request state; the scheduler never looks inside
    computed: int = 0  # tokens whose KV is in the cache
    cached: int = 0  # prompt tokens the prefix cache held when it was admitted (prefix_cache.py)
    generated: int = 0
    blocks: int = 0
    in_flight: bool = False
    scheduled_at: float | None = None  # first time it entered a batch (queue time ends)
    first_token_at: float | None = None
    finished_at: float | None = None
    preemptions: int = 0
    token_times: list[float] = field(default_factory=list)
    owner: BatchScheduler | None = None

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass
class Batch:
    items: list[tuple[SimRequest, int]]
    shape: BatchShape
    scheduler: BatchScheduler
    done_at: float = 0.0


class BatchScheduler:
    """One vLLM scheduler (see module docstring)."""

    def __init__(
        self,
        *,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        num_blocks: int,
        block_size: int,
        chunked: bool,
    ) -> None:
        self.max_num_seqs = max_num_seqs
        self.budget = max_num_batched_tokens
        self.num_blocks = num_blocks
        self.free_blocks = num_blocks
        self.block_size = block_size
        self.chunked = chunked
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.in_flight_batches = 0
        self.preemptions = 0

    @property
    def unfinished(self) -> int:
        return len(self.waiting) + len(self.running)

    def add(self, req: SimRequest) -> None:
        self.waiting.append(req)

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def _grow(self, req: SimRequest, new_tokens: int) -> bool:
        need = self._blocks_for(req.computed + new_tokens) - req.blocks
        if need <= 0:
            return True
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        req.blocks += need
        return True

    def _preempt(self, req: SimRequest) -> None:
        self.running.remove(req)
        self.free_blocks += req.blocks
        req.blocks = 0
        req.computed = 0
        req.cached = 0  # recomputed from scratch (vLLM would look the cache up again)
        req.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(req)

    def _victim(self, exclude: SimRequest) -> SimRequest | None:
        for cand in reversed(self.running):
            if cand is not exclude and not cand.in_flight:
                return cand
        return None

    def schedule(self) -> list[tuple[SimRequest, int]]:
        """Pick the next batch: (request, tokens to compute) pairs. Empty when nothing can run."""
        if not self.chunked and self.waiting:
            prefills = self._admit(self.budget, allow_chunk=False)
            if prefills:
                return prefills
        items: list[tuple[SimRequest, int]] = []
        budget = self.budget
        preempted = False
        for req in list(self.running):
            if budget <= 0:
                break
            if req.in_flight or req not in self.running:
                continue
            remaining = req.context - req.computed
            need = min(remaining, budget) if (self.chunked or remaining == 1) else remaining
            if need > budget:
                continue
            while not self._grow(req, need):
                victim = self._victim(req)
                if victim is None:
                    break
                self._preempt(victim)
                preempted = True
            else:
                items.append((req, need))
                budget -= need
                continue
            # no block for `req` even after preempting everything else: it waits for its turn again
            self._preempt(req)
            preempted = True
        if self.chunked and not preempted:
            items.extend(self._admit(budget, allow_chunk=True))
        return items

    def _admit(self, budget: int, *, allow_chunk: bool) -> list[tuple[SimRequest, int]]:
        items: list[tuple[SimRequest, int]] = []
        while self.waiting and len(self.running) < self.max_num_seqs and budget > 0:
            req = self.waiting[0]
            need = req.context - req.computed
            if need > budget:
                if not allow_chunk:
                    break
                need = budget
            if not self._grow(req, need):
                break
            self.waiting.popleft()
            self.running.append(req)
            items.append((req, need))
            budget -= need
        return items

    def finish(self, req: SimRequest) -> None:
        self.running.remove(req)
        self.free_blocks += req.blocks
        req.blocks = 0


def shape_of(items: list[tuple[SimRequest, int]]) -> BatchShape:
    decode = decode_ctx = prefill = prefill_seqs = sampled = 0
    weighted = 0.0
    for req, n in items:
        completes = req.computed + n == req.context
        if n == 1 and req.computed == req.context - 1 and req.generated > 0:
            decode += 1
            decode_ctx += req.computed + 1
        else:
            prefill += n
            prefill_seqs += 1
            weighted += n * (req.computed + n / 2)
        if completes:
            sampled += 1
    return BatchShape(
        decode_seqs=decode,
        decode_context_tokens=decode_ctx,
        prefill_tokens=prefill,
        prefill_weighted_tokens=weighted,
        prefill_seqs=prefill_seqs,
        sampled_seqs=sampled,
    )


TokenCallback = Callable[[SimRequest, float], None]


class EngineCore:
    """Batches through the pipeline in simulated time (see module docstring)."""

    def __init__(self, perf: PerfModel) -> None:
        self.perf = perf
        cfg = perf.scheduler
        topo = perf.topology
        plan = perf.memory_plan()
        self.memory = plan
        pp = topo.pp
        n_sched = pp if cfg.per_stage_schedulers else 1
        self.inflight_limit = 1 if cfg.per_stage_schedulers else pp
        blocks_each = plan.num_gpu_blocks // n_sched
        self.schedulers = [
            BatchScheduler(
                max_num_seqs=cfg.max_num_seqs,
                max_num_batched_tokens=perf.max_num_batched_tokens,
                num_blocks=blocks_each,
                block_size=cfg.block_size,
                chunked=cfg.enable_chunked_prefill,
            )
            for _ in range(n_sched)
        ]
        self.now = 0.0
        self.stage_free = [0.0] * pp
        self.host_free = 0.0
        self._inflight: list[tuple[float, int, Batch]] = []
        self._seq = itertools.count()
        self.steps = 0
        self.tokens_out = 0
        self.prompt_tokens_done = 0
        self.last_batch_tokens = 0

    # --- state for metrics ----------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return sum(len(s.running) for s in self.schedulers)

    @property
    def num_waiting(self) -> int:
        return sum(len(s.waiting) for s in self.schedulers)

    @property
    def kv_usage(self) -> float:
        total = sum(s.num_blocks for s in self.schedulers)
        if total == 0:
            return 0.0
        return 1.0 - sum(s.free_blocks for s in self.schedulers) / total

    @property
    def preemptions(self) -> int:
        return sum(s.preemptions for s in self.schedulers)

    @property
    def idle(self) -> bool:
        return not self._inflight and all(s.unfinished == 0 for s in self.schedulers)

    # --- driving ------------------------------------------------------------------------------------
    def add_request(self, req: SimRequest, at: float) -> None:
        """Queue `req` at simulated time `at` (not earlier than the engine's clock)."""
        self.now = max(self.now, at)
        req.arrival = self.now
        sched = (
            min(self.schedulers, key=lambda s: s.unfinished)
            if len(self.schedulers) > 1
            else self.schedulers[0]
        )
        req.owner = sched
        sched.add(req)

    def abort(self, req: SimRequest) -> None:
        """Drop a request (client went away). In-flight ones are dropped when their batch returns."""
        sched = req.owner
        if req.finished or sched is None:
            return
        req.finished_at = self.now
        if req in sched.waiting:
            sched.waiting.remove(req)
        elif req in sched.running and not req.in_flight:
            sched.finish(req)

    def _launch(self) -> None:
        for sched in self.schedulers:
            while sched.in_flight_batches < self.inflight_limit:
                items = sched.schedule()
                if not items:
                    break
                self._start(sched, items)

    def _start(self, sched: BatchScheduler, items: list[tuple[SimRequest, int]]) -> None:
        shape = shape_of(items)
        cost = self.perf.step_cost(shape)
        launch = max(self.now, self.host_free)
        if self.perf.host.overlapped:
            self.host_free = launch + cost.host
            t = launch
        else:
            t = launch + cost.host
            self.host_free = t
        for s, seconds in enumerate(cost.stages):
            start = max(t, self.stage_free[s])
            end = start + seconds
            self.stage_free[s] = end
            t = end + (cost.hops[s] if s < len(cost.hops) else 0.0)
        done = t + cost.back
        if self.perf.host.overlapped:
            done = max(done, launch + cost.host)
        for req, _ in items:
            req.in_flight = True
            if req.scheduled_at is None:
                req.scheduled_at = launch
        sched.in_flight_batches += 1
        batch = Batch(items=items, shape=shape, scheduler=sched, done_at=done)
        heapq.heappush(self._inflight, (done, next(self._seq), batch))

    def next_event_time(self) -> float | None:
        """When something next happens (a batch returns), after launching whatever can start now."""
        self._launch()
        if self._inflight:
            return self._inflight[0][0]
        return None

    def step(self, on_token: TokenCallback) -> bool:
        """Complete the next batch, whenever it is due. False when there is nothing to do."""
        if self.next_event_time() is None:
            return False
        self._complete(on_token)
        return True

    def _complete(self, on_token: TokenCallback) -> None:
        done, _, batch = heapq.heappop(self._inflight)
        self.now = max(self.now, done)
        sched = batch.scheduler
        sched.in_flight_batches -= 1
        self.steps += 1
        self.last_batch_tokens = batch.shape.tokens
        for req, n in batch.items:
            req.in_flight = False
            if req.finished:  # aborted while in flight
                if req in sched.running:
                    sched.finish(req)
                continue
            req.computed += n
            if req.computed < req.context:
                continue  # a prefill chunk that is not the last one
            req.generated += 1
            self.tokens_out += 1
            if req.first_token_at is None:
                req.first_token_at = done
                self.prompt_tokens_done += req.prompt_tokens
            if req.record_times:
                req.token_times.append(done)
            if req.generated >= req.output_tokens:
                req.finished_at = done
                sched.finish(req)
            on_token(req, done)
