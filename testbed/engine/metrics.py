"""vLLM's Prometheus metrics, by name and version, rendered in the text exposition format.

Written by hand (no prometheus_client at run time: the package is a test dependency only) and cheap to
update on the token path. Names and buckets are vLLM V1's (vllm/v1/metrics/loggers.py); which names exist
depends on the profile: `vllm:gpu_cache_usage_perc` and `vllm:time_per_output_token_seconds` before
0.12, `vllm:kv_cache_usage_perc` from 0.9.2, `vllm:inter_token_latency_seconds` from 0.10 (`profiles.py`).
Latencies are simulated seconds (equal to wall seconds at time-scale 1).
Labels: `model_name` on every series, and `engine="0"` on V1 (as vLLM).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from testbed.engine.profiles import Profile

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
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
FINISH_REASONS = ("stop", "length", "abort")


@dataclass
class Histogram:
    name: str
    help: str
    buckets: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, labels: str, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} histogram")
        cumulative = 0
        for le, c in zip(self.buckets, self.counts, strict=False):
            cumulative += c
            out.append(f'{self.name}_bucket{{{labels},le="{float(le)}"}} {float(cumulative)}')
        out.append(f'{self.name}_bucket{{{labels},le="+Inf"}} {float(self.n)}')
        out.append(f"{self.name}_count{{{labels}}} {float(self.n)}")
        out.append(f"{self.name}_sum{{{labels}}} {self.total!r}")


class EngineMetrics:
    """Counters, gauges and histograms of one served model; the server updates them, /metrics reads them."""

    def __init__(
        self, profile: Profile, model_name: str, state: Callable[[], tuple[int, int, float, int]]
    ) -> None:
        self.profile = profile
        self._state = state  # () -> (running, waiting, kv usage 0..1, preemptions so far)
        escaped = model_name.replace("\\", "\\\\").replace('"', '\\"')
        self.labels = f'model_name="{escaped}"' + (',engine="0"' if profile.has("v1_engine") else "")
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = dict.fromkeys(FINISH_REASONS, 0)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS
        )
        self.tpot_legacy = Histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            ITL_BUCKETS,
        )
        self.tpot = Histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            ITL_BUCKETS,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", E2E_BUCKETS
        )
        self.queue = Histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            E2E_BUCKETS,
        )
        self.req_prompt = Histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", TOKEN_BUCKETS
        )
        self.req_gen = Histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", TOKEN_BUCKETS
        )

    # --- updates -----------------------------------------------------------------------------------
    def on_first_token(self, prompt_tokens: int, ttft: float, queue_time: float) -> None:
        self.prompt_tokens += prompt_tokens
        self.ttft.observe(ttft)
        self.queue.observe(queue_time)
        self.req_prompt.observe(prompt_tokens)

    def on_tokens(self, gaps: Sequence[float], count: int) -> None:
        """`count` new tokens, with the inter-token gaps among them (one per token after the first)."""
        self.generation_tokens += count
        new_itl = self.profile.has("inter_token_latency_metric")
        old_tpot = not self.profile.has("no_gpu_cache_metric")
        for g in gaps:
            if new_itl:
                self.itl.observe(g)
            if old_tpot:
                self.tpot_legacy.observe(g)

    def on_finished(self, reason: str, e2e: float, tokens: int, tpot: float | None) -> None:
        self.success[reason] = self.success.get(reason, 0) + 1
        self.e2e.observe(e2e)
        self.req_gen.observe(tokens)
        if tpot is not None and self.profile.has("inter_token_latency_metric"):
            self.tpot.observe(tpot)

    # --- exposition ----------------------------------------------------------------------------------
    def render(self) -> str:
        running, waiting, kv, preemptions = self._state()
        L = self.labels
        out: list[str] = []

        def gauge(name: str, help_: str, value: float) -> None:
            out.extend([f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name}{{{L}}} {float(value)!r}"])

        def counter(name: str, help_: str, value: float, extra: str = "") -> None:
            out.extend(
                [
                    f"# HELP {name} {help_}",
                    f"# TYPE {name} counter",
                    f"{name}_total{{{L}{extra}}} {float(value)!r}",
                ]
            )

        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", running)
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting)
        if self.profile.has("kv_cache_usage_metric"):
            gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv)
        if not self.profile.has("no_gpu_cache_metric"):
            gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", kv)
        counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", preemptions)
        counter("vllm:prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens)
        counter("vllm:generation_tokens", "Number of generation tokens processed.", self.generation_tokens)
        name = "vllm:request_success"
        out.extend([f"# HELP {name} Count of successfully processed requests.", f"# TYPE {name} counter"])
        for reason in FINISH_REASONS:
            out.append(
                f'{name}_total{{{L},finished_reason="{reason}"}} {float(self.success.get(reason, 0))!r}'
            )
        hists = [self.ttft, self.e2e, self.queue, self.req_prompt, self.req_gen]
        if self.profile.has("inter_token_latency_metric"):
            hists += [self.itl, self.tpot]
        if not self.profile.has("no_gpu_cache_metric"):
            hists.append(self.tpot_legacy)
        for h in hists:
            h.render(L, out)
        return "\n".join(out) + "\n"
