"""vLLM's Prometheus metrics, by name and version, exposed by `prometheus_client` as vLLM exposes them.

Each simulated engine has its own `CollectorRegistry` holding what vLLM's /metrics shows: the Python
process and runtime collectors, vLLM's families (`metric_families.py`: which exist per version, their
labels; `metric_buckets.py`, `metric_labels.py`) and, from 0.32, the HTTP families of
prometheus-fastapi-instrumentator (`http_metrics.py`).
Latencies are wall seconds, as in vLLM: simulated seconds x the time scale (`SimServer.wall_per_sim_s`;
simulated seconds at time scale 0, where nothing is paced).
Hot path: a token costs one histogram observation; token counters are plain integers added to the
Prometheus counters when /metrics is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from testbed.engine.http_metrics import HttpMetrics
from testbed.engine.metric_families import register_vllm_families
from testbed.engine.profiles import Profile

CONTENT_TYPE = CONTENT_TYPE_LATEST


class EngineMetrics:
    """The series of one served model; the server updates them, /metrics renders them (`render`).

    `configure` (called by the server before any traffic) sets what the constructor could not know:
    max_model_len (the token histograms' buckets) and the cache config shown by `vllm:cache_config_info`.
    """

    def __init__(
        self,
        profile: Profile,
        model_name: str,
        state: Callable[[], tuple[int, int, float, int]],
        *,
        max_model_len: int | None = None,
        cache_info: Mapping[str, object] | None = None,
    ) -> None:
        self.profile = profile
        self.model_name = model_name
        self._state = state  # () -> (running, waiting, kv usage 0..1, preemptions so far)
        self.v1 = profile.has("v1_engine")
        self.full = profile.has("metrics_v032")
        self.max_model_len = max_model_len
        self.cache_info = dict(cache_info or {})
        self.prompt_tokens = 0
        self.prefix_hit_tokens = 0  # of prompt_tokens, those the prefix cache held (prefix_cache.py)
        self.generation_tokens = 0
        self.requests_finished = 0
        self._build()

    def configure(
        self, *, max_model_len: int | None = None, cache_info: Mapping[str, object] | None = None
    ) -> None:
        """Rebuild the series with what the server knows; only before any request was counted."""
        if self.requests_finished or self.prompt_tokens or self.generation_tokens:
            raise RuntimeError("EngineMetrics.configure after traffic: the series would lose their counts")
        if max_model_len is not None:
            self.max_model_len = max_model_len
        if cache_info:
            self.cache_info.update(cache_info)
        self._build()

    # --- the registry ---------------------------------------------------------------------------------
    def _build(self) -> None:
        reg = self.registry = CollectorRegistry()
        GCCollector(registry=reg)
        PlatformCollector(registry=reg)
        ProcessCollector(registry=reg)
        self._series = register_vllm_families(
            reg, self.profile, self.model_name, max_model_len=self.max_model_len, cache_info=self.cache_info
        )
        requests = self._series.requests
        self._per_token = tuple(h for h in (requests.itl, requests.tpot_legacy) if h is not None)
        self._http = HttpMetrics(reg) if self.full else None
        self._flushed_hits = 0
        self._flushed = (0, 0, 0)  # prompt, generation tokens and preemptions already in the counters

    # --- updates -----------------------------------------------------------------------------------
    def on_first_token(self, prompt_tokens: int, ttft: float, queue_time: float) -> None:
        self.prompt_tokens += prompt_tokens
        requests = self._series.requests
        requests.ttft.observe(ttft)
        requests.queue.observe(queue_time)
        requests.prompt_tokens.observe(prompt_tokens)

    def on_tokens(self, gaps: Sequence[float], count: int) -> None:
        """`count` new tokens, with the inter-token gaps among them (one per token after the first)."""
        self.generation_tokens += count
        for h in self._per_token:
            for g in gaps:
                h.observe(g)

    def on_finished(
        self,
        reason: str,
        e2e: float,
        tokens: int,
        tpot: float | None,
        *,
        prompt_tokens: int | None = None,
        max_tokens: int | None = None,
        phases: tuple[float, float, float] | None = None,
        preemptions: int = 0,
    ) -> None:
        """A request ended. `phases` = (inference, prefill, decode) seconds when it got that far."""
        self.requests_finished += 1
        child = self._series.success.get(reason)
        if child is not None:
            child.inc()
        requests = self._series.requests
        requests.e2e.observe(e2e)
        requests.generation_tokens.observe(tokens)
        if tpot is not None and requests.tpot is not None:
            requests.tpot.observe(tpot)
        v032 = self._series.v032
        if v032 is None:
            return
        v032.params_n.observe(1)
        if max_tokens is not None:
            v032.params_max_tokens.observe(max_tokens)
            v032.max_generation_tokens.observe(max_tokens)
        if prompt_tokens is not None:
            v032.prefill_kv.observe(prompt_tokens)
        if phases is not None:
            for h, seconds in zip((v032.inference, v032.prefill, v032.decode), phases, strict=True):
                h.observe(seconds)
        v032.preemptions.observe(preemptions)

    def on_http(
        self, handler: str, method: str, status: int, request_bytes: int, response_bytes: int, seconds: float
    ) -> None:
        """One HTTP request, as prometheus-fastapi-instrumentator counts it (handler = the route template)."""
        if self._http is not None:
            self._http.observe(handler, method, status, request_bytes, response_bytes, seconds)

    # --- exposition ----------------------------------------------------------------------------------
    def render(self) -> str:
        running, waiting, kv, preemptions = self._state()
        gauges, counters = self._series.gauges, self._series.counters
        gauges.running.set(running)
        gauges.waiting.set(waiting)
        if gauges.waiting_by_reason is not None:
            gauges.waiting_by_reason.set(waiting)
        for g in gauges.kv_usage:
            g.set(kv)
        prompt, generation, preempted = self._flushed
        counters.prompt.inc(self.prompt_tokens - prompt)
        if counters.prefix_queries is not None and counters.prompt_by_source is not None:
            hits = self.prefix_hit_tokens - self._flushed_hits
            counters.prefix_queries.inc(self.prompt_tokens - prompt)
            counters.prompt_by_source.inc(self.prompt_tokens - prompt - hits)
            if counters.prefix_hits is not None and counters.prompt_cached is not None:
                counters.prefix_hits.inc(hits)
                counters.prompt_cached.inc(hits)
            self._flushed_hits = self.prefix_hit_tokens
        counters.generation.inc(self.generation_tokens - generation)
        counters.preemptions.inc(max(0, preemptions - preempted))
        self._flushed = (self.prompt_tokens, self.generation_tokens, max(preemptions, preempted))
        return generate_latest(self.registry).decode()
