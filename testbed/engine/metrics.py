"""vLLM's Prometheus metrics, by name and version, exposed by `prometheus_client` as vLLM exposes them.

Each simulated engine has its own `CollectorRegistry` holding what vLLM's /metrics shows: the Python
process and runtime collectors, vLLM's families (vllm/v1/metrics/loggers.py: same names, HELP texts,
labels, buckets, `_created` series) and, from 0.32, the HTTP families of prometheus-fastapi-instrumentator
(`http_requests_total`, ...; /metrics, /health, /load, /ping, /version are not counted, as in vLLM).
Which vLLM families exist depends on the profile: `vllm:gpu_cache_usage_perc` and
`vllm:time_per_output_token_seconds` before 0.12, `vllm:kv_cache_usage_perc` from 0.9.2,
`vllm:inter_token_latency_seconds` from 0.10, the rest of the V1 set as seen in 0.32.0 (`profiles.py`).
Token-count histograms use vLLM's 1-2-5 buckets up to max_model_len.
Labels: `model_name` on every vLLM series, and `engine="0"` on V1 (as vLLM); `vllm:cache_config_info` has
the cache config's fields instead, `vllm:admission_rejections` no engine.
Latencies are wall seconds, as in vLLM: simulated seconds x the time scale (`SimServer.wall_per_sim_s`;
simulated seconds at time scale 0, where nothing is paced). Families the simulator has nothing
to report for stay at zero: MFU estimates, prefix/multi-modal/external cache hits, admission rejections,
per-step token counts (`vllm:iteration_tokens_total`).
Hot path: a token costs one histogram observation; token counters are plain integers added to the
Prometheus counters when /metrics is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    Summary,
    generate_latest,
)

from testbed.engine.profiles import Profile

CONTENT_TYPE = CONTENT_TYPE_LATEST

TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
ITERATION_TOKENS_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)
NUM_PREEMPTIONS_BUCKETS = (1, 2, 3, 4, 5, 10, 20)
# prometheus-fastapi-instrumentator's defaults (metrics.default)
HTTP_HIGHR_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    2.5,
    3,
    3.5,
    4,
    4.5,
    5,
    7.5,
    10,
    30,
    60,
)
HTTP_LOWR_BUCKETS = (0.1, 0.5, 1)
HTTP_EXCLUDED = frozenset({"/metrics", "/health", "/load", "/ping", "/version", "/server_info"})
FINISH_REASONS = ("stop", "length", "abort")
FINISH_REASONS_V032 = ("stop", "length", "abort", "error", "repetition")
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
CACHE_HIT_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")
ADMISSION_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
# vllm:cache_config_info's labels in 0.32 (CacheConfig.metrics_info()), with the values vLLM shows when the
# simulator has nothing better to say; `cache_info=` overrides the ones it does know.
CACHE_CONFIG_V032: dict[str, str] = {
    "_block_size_resolved": "True",
    "block_size": "16",
    "cache_dtype": "auto",
    "cache_hit_alignment_tokens": "None",
    "effective_attention_block_size": "16",
    "enable_mamba_shared_prefix_checkpoint": "False",
    "enable_prefix_caching": "True",
    "gpu_memory_utilization": "0.9",
    "hash_block_size": "None",
    "is_attention_free": "False",
    "kv_cache_dtype_skip_layers": "[]",
    "kv_cache_layout": "None",
    "kv_cache_max_concurrency": "None",
    "kv_cache_memory_bytes": "None",
    "kv_cache_size_tokens": "None",
    "kv_offloading_backend": "native",
    "kv_offloading_size": "None",
    "kv_sharing_fast_prefill": "False",
    "mamba_block_size": "None",
    "mamba_cache_dtype": "auto",
    "mamba_cache_mode": "none",
    "mamba_page_size_padded": "None",
    "mamba_ssm_cache_dtype": "auto",
    "num_cpu_blocks": "None",
    "num_gpu_blocks": "None",
    "num_gpu_blocks_override": "None",
    "prefix_cache_retention_interval": "0",
    "prefix_caching_hash_algo": "sha256",
    "prefix_match_unit": "None",
    "replayssm_buffer_len": "16",
    "skip_page_size_padded": "None",
    "sliding_window": "None",
    "swa_bounded_replay": "True",
    "use_kda_recoverssm": "False",
    "use_replayssm": "False",
    "user_specified_block_size": "False",
}
_FALLBACK_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


def build_1_2_5_buckets(max_value: int) -> list[float]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to max_value (vllm/v1/metrics/buckets.py)."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > max_value:
                return out
            out.append(value)
        exponent += 1


HttpMetrics = tuple[Counter, Summary, Summary, Histogram, Histogram]


def _http_metrics(reg: CollectorRegistry) -> HttpMetrics:
    """prometheus-fastapi-instrumentator's default set, as vLLM's API server registers it."""
    size = "Only value of header is respected. Otherwise ignored. No percentile calculated. "
    return (
        Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=reg,
        ),
        Summary(
            "http_request_size_bytes",
            f"Content length of incoming requests by handler. {size}",
            ["handler"],
            registry=reg,
        ),
        Summary(
            "http_response_size_bytes",
            f"Content length of outgoing responses by handler. {size}",
            ["handler"],
            registry=reg,
        ),
        Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile "
            "calculations. ",
            buckets=HTTP_HIGHR_BUCKETS,
            registry=reg,
        ),
        Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is "
            "important. ",
            ["method", "handler"],
            buckets=HTTP_LOWR_BUCKETS,
            registry=reg,
        ),
    )


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
        p, full = self.profile, self.full
        names = ["model_name", "engine"] if self.v1 else ["model_name"]
        values = [self.model_name, "0"] if self.v1 else [self.model_name]

        def counter(name: str, doc: str, *extra: str) -> Counter:
            return Counter(name, doc, names + list(extra), registry=reg)

        def gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, names + list(extra), registry=reg)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, names, buckets=buckets, registry=reg)

        tokens = (
            build_1_2_5_buckets(self.max_model_len) if self.max_model_len else list(_FALLBACK_TOKEN_BUCKETS)
        )
        if full:
            mfu = "(for Model Flops Utilization calculations)."
            for what, doc in (
                ("flops", "Estimated number of floating point operations per GPU"),
                ("read_bytes", "Estimated number of bytes read from memory per GPU"),
                ("write_bytes", "Estimated number of bytes written to memory per GPU"),
            ):
                counter(f"vllm:estimated_{what}_per_gpu_total", f"{doc} {mfu}").labels(*values)
        self._running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self._waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self._running, self._waiting = self._running.labels(*values), self._waiting.labels(*values)
        self._waiting_by_reason = None
        if full:
            by_reason = gauge(
                "vllm:num_requests_waiting_by_reason",
                "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling "
                "capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked "
                "status). Sum of all reasons equals vllm:num_requests_waiting.",
                "reason",
            )
            self._waiting_by_reason = by_reason.labels(*values, "capacity")
            by_reason.labels(*values, "deferred")
            sleep = gauge(
                "vllm:engine_sleep_state",
                "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
                "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
                "sleep_state",
            )
            for state in SLEEP_STATES:
                sleep.labels(*values, state).set(1 if state == "awake" else 0)
        self._kv: list[Gauge] = []
        if p.has("kv_cache_usage_metric"):
            g = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
            self._kv.append(g.labels(*values))
        if not p.has("no_gpu_cache_metric"):
            g = gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.")
            self._kv.append(g.labels(*values))
        self._prefix_queries = None
        if full:
            queries = counter(
                "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."
            )
            self._prefix_queries = queries.labels(*values)
            counter(
                "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
            ).labels(*values)
            ext = "from KV connector cross-instance cache sharing, in terms of number of"
            counter("vllm:external_prefix_cache_queries", f"External prefix cache queries {ext} queried tokens.").labels(*values)  # fmt: skip
            counter("vllm:external_prefix_cache_hits", f"External prefix cache hits {ext} cached tokens.").labels(*values)  # fmt: skip
            counter("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.").labels(*values)  # fmt: skip
            counter("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.").labels(*values)  # fmt: skip
        self._preemptions = counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine."
        ).labels(*values)
        self._prompt = counter("vllm:prompt_tokens", "Number of prefill tokens processed.").labels(*values)
        self._prompt_by_source = None
        if full:
            by_source = counter(
                "vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", "source"
            )
            for source in PROMPT_SOURCES:
                by_source.labels(*values, source)
            self._prompt_by_source = by_source.labels(*values, "local_compute")
            counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).").labels(
                *values
            )
            cached = counter(
                "vllm:prompt_tokens_cached_by_source",
                "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host "
                "(offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or "
                "external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + "
                "vllm:external_prefix_cache_hits.",
                "source",
            )
            for source in CACHE_HIT_SOURCES:
                cached.labels(*values, source)
        self._generation = counter("vllm:generation_tokens", "Number of generation tokens processed.").labels(
            *values
        )
        success = counter(
            "vllm:request_success", "Count of successfully processed requests.", "finished_reason"
        )
        self._success = {
            reason: success.labels(*values, reason)
            for reason in (FINISH_REASONS_V032 if full else FINISH_REASONS)
        }
        if full:
            rejections = Counter(
                "vllm:admission_rejections",
                "Number of admission attempts rejected by a queue limit, by reason.",
                ["model_name", "reason"],
                registry=reg,
            )
            for reason in ADMISSION_REASONS:
                rejections.labels(self.model_name, reason)

        def hist(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return histogram(name, doc, buckets).labels(*values)

        self.req_prompt = hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokens)
        self.req_gen = hist(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", tokens
        )
        if full:
            self.iteration_tokens = hist(
                "vllm:iteration_tokens_total",
                "Histogram of number of tokens per engine_step.",
                ITERATION_TOKENS_BUCKETS,
            )
            self.max_gen = hist(
                "vllm:request_max_num_generation_tokens",
                "Histogram of maximum number of requested generation tokens.",
                tokens,
            )
            self.params_n = hist(
                "vllm:request_params_n", "Histogram of the n request parameter.", PARAMS_N_BUCKETS
            )
            self.params_max_tokens = hist(
                "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", tokens
            )
        self.ttft = hist(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self.itl = self.tpot = self.tpot_legacy = None
        if p.has("inter_token_latency_metric"):
            self.itl = hist(
                "vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                ITL_BUCKETS,
            )
            self.tpot = hist(
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
                ITL_BUCKETS,
            )
        if not p.has("no_gpu_cache_metric"):
            self.tpot_legacy = hist(
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                ITL_BUCKETS,
            )
        self.e2e = hist(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", E2E_BUCKETS
        )
        self.queue = hist(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            E2E_BUCKETS,
        )
        if full:
            self.inference = hist(
                "vllm:request_inference_time_seconds",
                "Histogram of time spent in RUNNING phase for request.",
                E2E_BUCKETS,
            )
            self.prefill = hist(
                "vllm:request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.",
                E2E_BUCKETS,
            )
            self.decode = hist(
                "vllm:request_decode_time_seconds",
                "Histogram of time spent in DECODE phase for request.",
                E2E_BUCKETS,
            )
            self.req_preemptions = hist(
                "vllm:request_num_preemptions",
                "Histogram of the number of times a request was preempted.",
                NUM_PREEMPTIONS_BUCKETS,
            )
            self.prefill_kv = hist(
                "vllm:request_prefill_kv_computed_tokens",
                "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
                tokens,
            )
            info = {**CACHE_CONFIG_V032, **{k: str(v) for k, v in self.cache_info.items()}, "engine": "0"}
            Gauge(
                "vllm:cache_config_info",
                "Information of the LLMEngine CacheConfig",
                list(info),
                registry=reg,
            ).labels(**info).set(1)
        self._http = _http_metrics(reg) if full else None
        self._flushed = (0, 0, 0)  # prompt, generation tokens and preemptions already in the counters

    # --- updates -----------------------------------------------------------------------------------
    def on_first_token(self, prompt_tokens: int, ttft: float, queue_time: float) -> None:
        self.prompt_tokens += prompt_tokens
        self.ttft.observe(ttft)
        self.queue.observe(queue_time)
        self.req_prompt.observe(prompt_tokens)

    def on_tokens(self, gaps: Sequence[float], count: int) -> None:
        """`count` new tokens, with the inter-token gaps among them (one per token after the first)."""
        self.generation_tokens += count
        for h in (self.itl, self.tpot_legacy):
            if h is not None:
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
        child = self._success.get(reason)
        if child is not None:
            child.inc()
        self.e2e.observe(e2e)
        self.req_gen.observe(tokens)
        if tpot is not None and self.tpot is not None:
            self.tpot.observe(tpot)
        if not self.full:
            return
        self.params_n.observe(1)
        if max_tokens is not None:
            self.params_max_tokens.observe(max_tokens)
            self.max_gen.observe(max_tokens)
        if prompt_tokens is not None:
            self.prefill_kv.observe(prompt_tokens)
        if phases is not None:
            for h, seconds in zip((self.inference, self.prefill, self.decode), phases, strict=True):
                h.observe(seconds)
        self.req_preemptions.observe(preemptions)

    def on_http(
        self, handler: str, method: str, status: int, request_bytes: int, response_bytes: int, seconds: float
    ) -> None:
        """One HTTP request, as prometheus-fastapi-instrumentator counts it (handler = the route template)."""
        if self._http is None or handler in HTTP_EXCLUDED:
            return
        total, in_size, out_size, highr, lowr = self._http
        total.labels(method, f"{status // 100}xx", handler).inc()
        in_size.labels(handler).observe(request_bytes)
        out_size.labels(handler).observe(response_bytes)
        highr.observe(seconds)
        lowr.labels(method, handler).observe(seconds)

    # --- exposition ----------------------------------------------------------------------------------
    def render(self) -> str:
        running, waiting, kv, preemptions = self._state()
        self._running.set(running)
        self._waiting.set(waiting)
        if self._waiting_by_reason is not None:
            self._waiting_by_reason.set(waiting)
        for g in self._kv:
            g.set(kv)
        prompt, generation, preempted = self._flushed
        self._prompt.inc(self.prompt_tokens - prompt)
        if self._prefix_queries is not None and self._prompt_by_source is not None:
            self._prefix_queries.inc(self.prompt_tokens - prompt)
            self._prompt_by_source.inc(self.prompt_tokens - prompt)
        self._generation.inc(self.generation_tokens - generation)
        self._preemptions.inc(max(0, preemptions - preempted))
        self._flushed = (self.prompt_tokens, self.generation_tokens, max(preemptions, preempted))
        return generate_latest(self.registry).decode()
