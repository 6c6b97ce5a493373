"""The versioned result schema shared by every producer and consumer.

One file format for the async load generator (`python -m load`), the Locust runs, the benchmark tests
and the conformance run's recovery measurements. Reports, comparisons and the regression gate read
only this. Missing data is ``None`` (JSON ``null``), never 0.

Layout (``schema`` is checked on read; unknown fields are rejected so a typo cannot pass silently)::

    {"schema": "lws-vllm-suite/result/v1",
     "run": {...RunMetadata...},
     "results": [{"load": {...LoadSpec...}, "metrics": {...LevelMetrics...}}, ...],
     "recovery": [{...RecoveryMeasurement...}, ...]}

Metric definitions follow vLLM's ``bench serve`` (docs/architecture.md, "Metric definitions"):
TTFT = first token-carrying chunk - send time; ITL = gaps between consecutive token-carrying chunks,
pooled over requests; TPOT = (last - first token time) / (output tokens - 1) per request with > 1
token; E2EL = last token time - send time. Output tokens come from the server's usage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = "lws-vllm-suite/result/v1"


class SchemaError(ValueError):
    """A result file that cannot be read: names the file and what was wrong."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Model):
    """Summary of one latency distribution in milliseconds; None where there were no samples."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    count: int = 0


class RequestCounts(_Model):
    """Every request sent is either completed or failed: sent == completed + failed."""

    sent: int
    completed: int
    failed: int
    errors_by_reason: dict[str, int] = Field(default_factory=dict)


class Throughput(_Model):
    requests_per_s: float | None = None
    output_tokens_per_s: float | None = None
    total_tokens_per_s: float | None = None


class LoadSpec(_Model):
    """What was asked of one load level."""

    api: Literal["completions", "chat"] = "completions"
    concurrency: int | None = None
    request_rate: float | None = None  # requests/s for open loop; None = as fast as concurrency allows
    burstiness: float | None = None  # gamma shape; 1.0 = Poisson
    request_rate_end: float | None = (
        None  # a linear ramp of the rate from request_rate to this; None = constant
    )
    num_requests: int | None = None
    duration_s: float | None = None
    input_len: int | None = None
    output_len: int | None = None
    # what input_len counts: the served model's tokens (its /tokenize), or words of about a token each (the
    # load generator before lengths in tokens; None in files written then)
    length_unit: Literal["tokens", "words"] | None = None
    workload: str = "random"
    seed: int | None = None
    slo: dict[str, float] = Field(default_factory=dict)  # e.g. {"ttft_ms": 500, "tpot_ms": 50}
    generator: str = "load"  # "load" (async aiohttp) or "locust"


class LoopLagCause(_Model):
    """Where the event loop's worst lateness went (load/client_check.py): shares of the summed lateness of
    the ticks at or beyond the level's p99. Reported beside the verdict; never an excuse for the lag."""

    cpu_wait: float  # runnable but waiting for a CPU: run-queue delay from /proc/thread-self/schedstat
    running: float  # on a CPU: the client's own work held the loop
    blocked: float  # off a CPU and not runnable: a blocking call on the loop (sleep, DNS, file I/O, ...)
    ticks: int  # how many late ticks the shares cover


class ClientCheck(_Model):
    """Whether the load generator kept up during a level (load/client_check.py computes it).

    ``verdict`` is "invalid" when the client, not the server, was the bottleneck: the level's timings are
    then partly of the client's own queue and ``compare`` and ``gate`` refuse it unless told otherwise.
    Thresholds and their rationale: load/README.md, "Client saturation".
    """

    verdict: Literal["valid", "invalid"]
    reasons: list[str] = Field(default_factory=list)  # why invalid, one sentence each; empty when valid
    warnings: list[str] = Field(
        default_factory=list
    )  # sharpness lost without the client being the bottleneck
    configured_rate: float | None = None  # requests/s asked (open loop); None for closed loop
    achieved_rate: float | None = None  # requests/s actually sent over the send span
    configured_concurrency: int | None = None
    achieved_concurrency: float | None = None  # closed loop: concurrency x the slots' busy fraction
    peak_in_flight: int | None = None
    dispatch_lag_ms: Distribution = Field(default_factory=Distribution)  # sent - ready (the client's own)
    loop_lag_ms: Distribution = Field(default_factory=Distribution)  # lateness of a periodic loop wake-up
    # the part of each lateness the loop's thread spent runnable but waiting for a CPU (run-queue delay from
    # /proc/thread-self/schedstat); empty where the kernel does not say
    loop_lag_cpu_wait_ms: Distribution = Field(default_factory=Distribution)
    loop_lag_cause: LoopLagCause | None = None  # the worst ticks' lateness by cause; None: not known
    cpu_s: float | None = None  # process CPU time (user + system) over the level
    wall_s: float | None = None
    cpu_fraction: float | None = None  # cpu_s / wall_s: share of one core (one event loop = one core)
    cores: int | None = None  # CPUs the client process was allowed to run on

    @model_validator(mode="before")
    @classmethod
    def _drop_the_old_estimate(cls, data: object) -> object:
        # Files written before issue 22 hold loop_lag_busy_ms, lag x CPU share: it read a loop blocked in a
        # syscall as the machine's fault, so it is dropped on reading and no longer written.
        if isinstance(data, dict) and "loop_lag_busy_ms" in data:
            return {k: v for k, v in data.items() if k != "loop_lag_busy_ms"}
        return data

    @property
    def invalid(self) -> bool:
        return self.verdict == "invalid"


class Interval(_Model):
    """A confidence interval for one metric over repeats of a level (reports/intervals.py)."""

    mean: float
    low: float
    high: float
    n: int  # repeats with a value
    confidence: float = 0.95
    method: str = "t"  # Student t-interval over the repeats' values (NIST e-Handbook 7.2.2.1)


class ServerPercentile(_Model):
    """One percentile of a server histogram beside the client's: the server's lies in (lower, upper]."""

    lower_ms: float  # lower edge of the bucket(s) holding the percentile
    upper_ms: float | None  # upper edge; None = the +Inf bucket
    estimate_ms: float | None = None  # linear inside the bucket (Prometheus histogram_quantile)
    client_ms: float | None = None  # the client's same percentile
    difference_ms: float | None = None  # client - estimate


class ServerLatency(_Model):
    """A vLLM latency histogram over one level (bucket deltas), in milliseconds."""

    metric: str  # e.g. vllm:time_to_first_token_seconds
    count: int
    mean_ms: float | None = None
    p50: ServerPercentile | None = None
    p90: ServerPercentile | None = None
    p99: ServerPercentile | None = None


class ServerView(_Model):
    """The server's own view of a level (vLLM /metrics before and after it) and where it disagrees with the
    client's (load/server_view.py says what is checked)."""

    ttft_ms: ServerLatency | None = None
    itl_ms: ServerLatency | None = None
    e2el_ms: ServerLatency | None = None
    requests_finished: int | None = None  # vllm:request_success_total, every finished_reason
    generation_tokens: int | None = None
    prompt_tokens: int | None = None
    # round trip of GET /health before the level: the allowance for the network
    network_ms: float | None = None
    # mean HTTP duration of the level's generate requests (http_request_duration_seconds: arrival to end of
    # the streamed body), and the client's mean send to end of stream, which contains it
    request_span_ms: float | None = None
    client_request_span_ms: float | None = None
    # request_span_ms - the server's mean e2e_request_latency: the API server's time outside vLLM's timers
    http_overhead_ms: float | None = None
    # what cannot be: a client TTFT below the server's bounds, counts that disagree
    problems: list[str] = Field(default_factory=list)
    # The client's TTFT above the server's upper bound + the network allowance: time outside the server's timer
    # (the client's own queue, or the server's HTTP work under load). Possible, but not the server's latency.
    warnings: list[str] = Field(default_factory=list)


class GroupLoad(_Model):
    """The requests one LWS group served in a level (optional; added compatibly in v1). Client side: responses
    whose ``x-lws-vllm-endpoint`` header named the group's leader (the loopback balancer adds it). Server side:
    the increase of that leader's own ``vllm:request_success_total`` over the level, read from the leader."""

    group: str | None = None  # the leader's leaderworkerset.sigs.k8s.io/group-index label; None when unknown
    pod: str  # the leader pod behind the Service's endpoint
    client_requests: int | None = None  # None: the responses carried no endpoint header (e.g. --in-cluster)
    server_requests: int | None = None  # None: the leader's /metrics could not be read
    gpus: int | None = None  # GPUs of the whole group (leader and workers)

    @property
    def served(self) -> int | None:
        """Requests it served: the client's count where known, else the server's."""
        return self.client_requests if self.client_requests is not None else self.server_requests


class InputLengthCheck(_Model):
    """The load sent against the load configured (load/input_check.py): the prompt lengths the workload asked
    for, in the served model's tokens, against the server's ``usage.prompt_tokens``, over the level's
    completed requests. ``within_tolerance`` is False when the means differ by more than ``tolerance``."""

    requests: int
    requested_mean: float
    served_mean: float
    relative_error: float  # served_mean / requested_mean - 1
    tolerance: float = 0.01
    within_tolerance: bool


class PrefixCacheView(_Model):
    """The server's prefix cache over one level (vLLM 0.32's ``vllm:prefix_cache_queries`` and
    ``vllm:prefix_cache_hits``, in tokens) beside the share of the prompt tokens the workload shared."""

    queries: float | None = None
    hits: float | None = None
    hit_rate: float | None = None  # hits / queries
    shared_fraction: float | None = None  # the shared-prefix tokens a cache could hold / the prompt tokens
    block_size: int | None = None  # the server's KV block size (vllm:cache_config_info), when it says


class TurnLatency(_Model):
    """Multi-turn workloads: the TTFT of every session's turn ``turn`` (1 = the first)."""

    turn: int
    prompt_tokens_mean: float | None = None
    ttft_ms: Distribution


class LevelMetrics(_Model):
    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2el_ms: Distribution
    schedule_lag_ms: Distribution = Field(default_factory=Distribution)
    requests: RequestCounts
    throughput: Throughput
    goodput_requests_per_s: float | None = None
    duration_s: float | None = None  # the measured window: first send to last completion
    input_tokens: int | None = None
    output_tokens: int | None = None
    # vLLM /metrics scraped before and after the level: counter deltas and gauge values after.
    server_metrics_delta: dict[str, float] | None = None
    client: ClientCheck | None = None  # the load generator's own health; None when not measured
    # The server's histograms and counters beside the client's figures (None: not scraped).
    server_view: ServerView | None = None
    # Through the loopback balancer: per LWS group, the requests it served (None: not recorded, e.g. an older
    # file or --endpoint), and the GPUs of the groups that served any; per-GPU figures divide by these.
    groups: list[GroupLoad] | None = None
    gpus_loaded: int | None = None
    input_lengths: InputLengthCheck | None = None  # lengths in tokens only (not with --length-unit words)
    prefix_cache: PrefixCacheView | None = None  # when the server reports vllm:prefix_cache_* counters
    ttft_by_turn: list[TurnLatency] = Field(default_factory=list)  # multi-turn workloads only


class TimelineSample(_Model):
    """One sample taken while a level ran, for the report's timeline (optional; added compatibly in v1).

    ``server`` holds values read from vLLM's /metrics at that moment: gauges as read, counters as their
    cumulative value (the report plots counters as the increase per second between samples).
    """

    t_s: float  # seconds since the level's started_at
    in_flight: int | None = None  # requests sent and not yet finished
    output_tokens_per_s: float | None = None  # client-side, over the interval since the previous sample
    server: dict[str, float] = Field(default_factory=dict)


class Predicted(_Model):
    """The engine model's prediction for one level's load (``Result.prediction`` says on what basis), in the
    modelled hardware's time: what the run's hardware allows."""

    ttft_p50_ms: float | None = None
    tpot_p50_ms: float | None = None
    itl_p50_ms: float | None = None
    e2el_p50_ms: float | None = None
    output_tokens_per_s: float | None = None
    requests_per_s: float | None = None


class PredictionBasis(_Model):
    """Which model predicted, for what, and how wrong it is known to be (docs/calibration.md)."""

    model_version: str  # e.g. perf-model-5e80b0acd093: a digest of the model's sources and calibration data
    model: str
    gpu: str
    interconnect: str
    assumed: list[str] = Field(default_factory=list)  # what the run did not say and was assumed
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpus_per_node: int
    vllm_profile: str
    calibration_scenario: str
    calibration_error_median_pct: float  # |predicted / measured - 1| over the validation anchors
    calibration_error_p90_pct: float
    calibration_error_max_pct: float


class LevelResult(_Model):
    load: LoadSpec
    metrics: LevelMetrics
    predicted: Predicted | None = None  # the engine model's prediction for this load (benchmark runs)
    started_at: str | None = None  # RFC 3339, wall clock, for timelines only
    timeline: list[TimelineSample] = Field(default_factory=list)  # optional samples during the level
    # With --repeats N: each repeat's metrics in run order; ``metrics`` is then their mean (counts summed)
    # and ``intervals`` holds, per metric key of reports/metrics.py, its interval over the repeats.
    repeats: list[LevelMetrics] = Field(default_factory=list)
    intervals: dict[str, Interval] = Field(default_factory=dict)

    @property
    def invalid(self) -> bool:
        """The client was the bottleneck in this level (or in any of its repeats)."""
        return self.metrics.client is not None and self.metrics.client.invalid


class RunMetadata(_Model):
    """What was measured: discovered from the live deployment where possible, else None."""

    label: str | None = None
    topology: str | None = None  # e.g. "tp8-pp2"
    model: str | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    lws_name: str | None = None
    lws_group_size: int | None = None
    lws_replicas: int | None = None
    nodes: int | None = None
    gpus: int | None = None  # total GPUs serving (all groups)
    gpu_product: str | None = None
    image: str | None = None
    vllm_version: str | None = None
    lws_version: str | None = None
    kubernetes_version: str | None = None
    endpoint: str | None = None
    suite_revision: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    testbed: bool | None = None  # True when measured on the embedded testbed (a simulated cluster)
    # What served the requests: "sim" (the suite's simulated vLLM, testbed/engine), "vllm-cpu" (real vLLM's
    # CPU build on the testbed), "vllm" (real vLLM deployed by the suite on a real cluster), "external" (an
    # --endpoint the suite did not deploy). None = not recorded (files written before the field existed).
    engine: str | None = None
    # Who said so (fixtures/served_by.py): the server's GET /version ("sim" when it named itself the simulator,
    # else "vllm") and the testbed at the run's API server ("sim", "vllm-cpu"; None on no testbed). None = not asked.
    engine_per_server: str | None = None
    engine_per_testbed: str | None = None
    # What the pods ran on: "gpu" (gpu_product names them) or "cpu" (cpu_cores_per_pod: the cores a pod's
    # processes may use, as the pod reports them; cpu_cores: summed over the pods). pods: pods serving, all groups.
    device: str | None = None
    pods: int | None = None
    cpu_cores_per_pod: int | None = None
    cpu_cores: int | None = None
    # Simulator only (absent from the file otherwise): the simulated engine's speed (1 = real time; 0.2 = five times faster than the modelled GPUs).
    # Latencies measured at a time scale s correspond to about latency / s on the modelled hardware.
    sim_time_scale: float | None = None


class RecoveryMeasurement(_Model):
    """One injected fault and how long serving took to come back (seconds from the injection)."""

    fault: str
    restart_policy: str | None = None
    group_recreated: bool | None = None
    pods_replaced_s: float | None = None
    available_s: float | None = None
    first_success_s: float | None = None
    requests_sent: int | None = None
    requests_failed: int | None = None
    errors_by_reason: dict[str, int] = Field(default_factory=dict)
    race_detected: bool | None = None  # LWS #998: only the worker came back
    # the failed requests by class against the Service's timeline (suite/conformance/checks/request_split.py):
    # going, taken-out, no-endpoint, other; and each class's causes ("<count> x <cause> (...)")
    failed_by_class: dict[str, int] | None = None
    failure_causes: dict[str, list[str]] = Field(default_factory=dict)


class CheckOutcome(_Model):
    """One conformance check of the run (a pytest test id) and how it ended."""

    name: str
    outcome: Literal["passed", "failed", "skipped", "error"]
    duration_s: float | None = None
    message: str | None = None  # the failure's first lines, redacted


class LogEvidence(_Model):
    """The start-up evidence of one LWS group read from its pods' logs (an excerpt, redacted)."""

    group: int
    ranks: int
    nodes: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    excerpt: list[str] = Field(default_factory=list)


class SaturationFinding(_Model):
    """A saturation sweep's finding (suite/benchmark/shapes.py): the request rate of its throughput level
    (max_concurrency in flight), that of its synchronous level, and the open-loop rates measured between."""

    saturation_requests_per_s: float
    synchronous_requests_per_s: float
    max_concurrency: int
    rates: list[float] = Field(default_factory=list)


class Result(_Model):
    schema_: str = Field(default=SCHEMA_VERSION, alias="schema")
    run: RunMetadata = Field(default_factory=RunMetadata)
    results: list[LevelResult] = Field(default_factory=list)
    recovery: list[RecoveryMeasurement] = Field(default_factory=list)
    checks: list[CheckOutcome] = Field(default_factory=list)
    evidence: list[LogEvidence] = Field(default_factory=list)
    prediction: PredictionBasis | None = None  # the basis of every level's ``predicted``
    # the benchmark's resolved config (fixtures/bench_config.py): `--config result.json` runs it again
    config: dict[str, Any] | None = None
    saturation: SaturationFinding | None = None  # set by a saturation sweep

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        # sim_time_scale is written only when the simulator served: a real engine's file never names it
        exclude = {"run": {"sim_time_scale"}} if self.run.sim_time_scale is None else None
        return self.model_dump_json(by_alias=True, indent=2, exclude=exclude)

    def write(self, path: Path) -> None:
        """Write atomically, so an interrupted run never leaves half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)


def parse_result(text: str, source: str = "<string>") -> Result:
    """Parse and validate one result document; SchemaError names the source and the first problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict) or "schema" not in raw:
        raise SchemaError(f"{source}: no 'schema' field; not a result file of this suite")
    if raw["schema"] != SCHEMA_VERSION:
        raise SchemaError(f"{source}: schema {raw['schema']!r} is not supported; expected {SCHEMA_VERSION!r}")
    try:
        return Result.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SchemaError(f"{source}: {where}: {first['msg']}") from None


def read_result(path: Path) -> Result:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_result(text, str(path))
