"""vLLM behaviour by version: which log lines, metric names, launch scripts and failures an image has.

A pod's image tag picks the profile (`vllm/vllm-openai:v0.10.1` -> 0.10.1; `latest`, `nightly` or no tag
-> the current release), and `--profile` overrides it (a version, or `legacy` / `current`). The CPU build
is a device, not a version: `--profile 0.32.0+cpu` (what its `vllm --version` prints) or an image whose
name or tag says `cpu` (`vllm/vllm-openai-cpu:v0.32.0`, `.../vllm-cpu-release-repo:v0.32.0`).
Each behaviour is one row of `CHANGES`: the first version that has it and the change that made it, from
vLLM's pull requests (each row names its PR). The vLLM history read has no tags, so a change is dated
by its PR; releases up to 0.11.2 are dated from their release notes, later ones are estimated by
spreading 0.12.0 (2025-12) .. 0.33.0 (2026-11) evenly. Those boundaries are marked "est.".
Rows marked "seen in 0.32.0" were checked against the real vLLM 0.32.0 CPU build
(tests/testbed/engine/test_fidelity_real_vllm.py); the version that introduced them is not known here, so
they start at 0.32.0 and older profiles keep the earlier behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from testbed.engine.perf_model import EngineOverheads

Version = tuple[int, int, int]

CURRENT_VERSION: Version = (0, 33, 0)  # newest vllm on PyPI in the workplace package list (2026-11)
LEGACY_VERSION: Version = (0, 6, 3)  # V0 engine, "Loading model weights took ... GB": the docs' sample era
ALIASES: dict[str, Version] = {
    "current": CURRENT_VERSION,
    "latest": CURRENT_VERSION,
    "nightly": CURRENT_VERSION,
    "main": CURRENT_VERSION,
    "legacy": LEGACY_VERSION,
}


@dataclass(frozen=True)
class Change:
    since: Version
    what: str
    source: str


# Behaviour switches, oldest first. `Profile` reads them with `has(...)`.
CHANGES: dict[str, Change] = {
    "v1_engine": Change(
        (0, 8, 0), "V1 engine by default (one scheduler; Ray workers as actors)", "vLLM 0.8.0 release"
    ),
    "bracket_log_format": Change((0, 8, 0), "log prefix `[file.py:NN]`", "vllm#13011 (2025-02-24)"),
    "multi_node_script": Change(
        (0, 8, 0), "examples/online_serving/multi-node-serving.sh in the image", "vllm#12913 (2025-02-20)"
    ),
    "model_loading_line": Change(
        (0, 8, 0), "`Model loading took %.4f GB and %.6f seconds`", "vllm#14063 (2025-03-01)"
    ),
    "gib_units": Change((0, 8, 3), "`... GiB and ... seconds`", "vllm#15807 (2025-04-01)"),
    "api_server_index": Change((0, 9, 0), "`Starting vLLM API server %d on %s`", "vllm#17546 (2025-05)"),
    "kv_cache_usage_metric": Change((0, 9, 2), "vllm:kv_cache_usage_perc", "vllm#18354 (2025-06-14)"),
    "process_prefixes": Change(
        (0, 10, 0), "`(APIServer pid=N)` / `(EngineCore_DP0 pid=N)` prefixes", "vllm decorate_logs (~v0.10)"
    ),
    "inter_token_latency_metric": Change(
        (0, 10, 0), "vllm:inter_token_latency_seconds", "vllm V1 metrics (~v0.10)"
    ),
    "nested_error_json": Change(
        (0, 10, 0),
        'errors as {"error": {message, type, param, code}}',
        "vllm ErrorResponse/ErrorInfo (~v0.10)",
    ),
    "no_ray_fallback": Change(
        (0, 11, 1), "no automatic Ray backend when world size > local GPUs", "vllm#25775 (2025-10-30)"
    ),
    "memory_word": Change(
        (0, 11, 1), "`Model loading took %.4f GiB memory and %.6f seconds`", "vllm#28178 (2025-11-09)"
    ),
    "no_gpu_cache_metric": Change(
        (0, 12, 0), "vllm:gpu_cache_usage_perc and time_per_output_token removed", "vllm#29330 (2025-11-25)"
    ),
    "world_size_message": Change(
        (0, 13, 0),
        "`World size (N) is larger than the number of available GPUs (M) in this node...`",
        "vllm#30140 (2025-12-06)",
    ),
    "mp_multi_node": Change(
        (0, 13, 0),
        "multiprocessing across nodes: --nnodes/--node-rank/--master-addr/--headless",
        "vllm#30140 era, est.",
    ),
    "async_scheduling": Change(
        (0, 13, 0), "host work overlapped with the GPU step (async scheduling)", "est."
    ),
    "gib_as_str": Change(
        (0, 14, 0), "`Model loading took %s GiB memory ...`", "vllm#31865 (2026-01-08), est. 0.14"
    ),
    "engine_core_no_dp": Change(
        (0, 18, 0), "`(EngineCore pid=N)` when DP=1", "vllm#36822 (2026-03-11), est. 0.18"
    ),
    "server_line_v2": Change((0, 18, 0), "`Starting vLLM server on %s`", "vllm#34551 (2026-03), est. 0.18"),
    "ray_serving_script": Change(
        (0, 22, 0), "script moved to examples/ray_serving/", "vllm#41084 (2026-05-08), est. 0.22"
    ),
    "response_fields_v032": Change(
        (0, 32, 0),
        "responses and stream chunks carry token_ids / prompt_token_ids, routed_experts, service_tier, "
        "system_fingerprint `vllm-<version>-<hash>`, kv/ec_transfer_params, metrics; chat messages refusal, "
        "annotations, audio, function_call, reasoning",
        "seen in 0.32.0",
    ),
    "max_tokens_clamped": Change(
        (0, 32, 0),
        "max_tokens is cut to the context left (only max_tokens > max_model_len is refused); an over-long "
        "prompt is refused with param `input_tokens`",
        "vllm get_max_tokens / TokenizeParams, seen in 0.32.0",
    ),
    "validation_error_param": Change(
        (0, 32, 0),
        "request errors name the parameter (`param`, message suffix `(parameter=..., value=...)`); body "
        "type errors are pydantic's (`Bad Request`, param `body.<field>`); temperature at most 2",
        "vllm VLLMValidationError, seen in 0.32.0",
    ),
    "worker_logs_v032": Change(
        (0, 32, 0),
        "workers log under their own prefix, not nested in the engine core's: `(Worker pid=N)` until the "
        "ranks are assigned, then `(Worker_PP1 pid=N)`; the rank line names PCP, ETP and EPLB ranks; the "
        "multiprocessing executor logs `DP group leader: ...`",
        "vllm multiproc_executor.py / parallel_state.py, seen in 0.32.0",
    ),
    "metrics_v032": Change(
        (0, 32, 0),
        "the full V1 metric set: prefix-cache, per-phase and per-parameter histograms, cache_config_info, "
        "MFU counters, waiting by reason, sleep state, prompt tokens by source, admission rejections, "
        "finished_reason error and repetition",
        "vllm/v1/metrics/loggers.py, seen in 0.32.0",
    ),
}

DEVICES = ("cuda", "cpu")

SCRIPT_ONLINE = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
SCRIPT_RAY = "/vllm-workspace/examples/ray_serving/multi-node-serving.sh"


def parse_version(text: str) -> Version:
    """`v0.10.1`, `0.8.5.post1`, `v0.10.1.1`, `latest`, `legacy` -> a version; raises ValueError otherwise."""
    key = text.strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", key)
    if not m:
        raise ValueError(
            f"cannot read a vLLM version from {text!r}; give e.g. v0.10.1, 0.8.5, 0.32.0+cpu, latest, legacy "
            "or current"
        )
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def version_from_image(image: str) -> Version:
    """The vLLM version of an image reference; `latest`, `nightly`, a digest or no tag mean current vLLM."""
    ref = image.strip()
    if "@" in ref:
        return CURRENT_VERSION
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    try:
        return parse_version(tag)
    except ValueError:
        return CURRENT_VERSION  # e.g. a CI tag like "nightly-<sha>": built from main


_CPU = re.compile(r"(?:^|[^a-z0-9])cpu(?:$|[^a-z0-9])")


def device_from_text(text: str) -> str:
    """`cpu` for a CPU build (`0.32.0+cpu`, `v0.32.0-cpu`, `vllm/vllm-openai-cpu:...`), else `cuda`."""
    return "cpu" if _CPU.search(text.strip().lower().split("@", 1)[0]) else "cuda"


def format_version(v: Version) -> str:
    return f"{v[0]}.{v[1]}.{v[2]}"


@dataclass(frozen=True)
class Profile:
    """What a given vLLM version does, as far as the simulator shows it."""

    version: Version
    log_format: str = "auto"  # "auto" (the version's), "legacy" or "current": override the weight line only
    _features: frozenset[str] = field(default=frozenset(), repr=False)
    device: str = "cuda"  # "cpu": vLLM's CPU build (its own model runner, worker and log lines)

    @classmethod
    def for_version(cls, version: Version, log_format: str = "auto", device: str = "cuda") -> Profile:
        if log_format not in ("auto", "legacy", "current"):
            raise ValueError(f"unknown log format {log_format!r}; choose auto, legacy or current")
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose {' or '.join(DEVICES)}")
        feats = frozenset(name for name, ch in CHANGES.items() if version >= ch.since)
        return cls(version=version, log_format=log_format, _features=feats, device=device)

    @property
    def cpu(self) -> bool:
        return self.device == "cpu"

    def has(self, feature: str) -> bool:
        if feature not in CHANGES:
            raise KeyError(f"unknown profile feature {feature!r}")
        return feature in self._features

    @property
    def version_text(self) -> str:
        """The version as `/version` and the start-up lines show it (the CPU build too: no `+cpu`)."""
        return format_version(self.version)

    # --- launch -------------------------------------------------------------------------------------
    @property
    def multi_node_script(self) -> str | None:
        """The path of the Ray multi-node helper in this image, or None when the image has none."""
        if not self.has("multi_node_script"):
            return None
        return SCRIPT_RAY if self.has("ray_serving_script") else SCRIPT_ONLINE

    def world_size_error(self, world_size: int, local_gpus: int) -> str | None:
        """vLLM's refusal when the world does not fit one node and no Ray backend was asked for."""
        if not self.has("no_ray_fallback"):
            return None
        if self.has("world_size_message"):
            return (
                f"World size ({world_size}) is larger than the number of available GPUs ({local_gpus}) in this node. "
                "If this is intentional and you are using:\n- ray, set '--distributed-executor-backend ray'.\n"
                "- multiprocessing, set '--nnodes' appropriately."
            )
        return f"Tensor parallel size ({world_size}) cannot be larger than the number of available GPUs ({local_gpus})."

    # --- engine ---------------------------------------------------------------------------------------
    def overheads(self) -> EngineOverheads:
        """Host costs per step. V0: ~2 ms + 20 us per sequence, not overlapped, whole tensors across a
        pipeline hop; V1: leaner, sliced hops; async scheduling overlaps the host with the GPU."""
        if not self.has("v1_engine"):
            return EngineOverheads(step_s=2e-3, per_seq_s=20e-6, overlapped=False, pp_hop_sliced=False)
        return EngineOverheads(
            step_s=1.5e-3, per_seq_s=10e-6, overlapped=self.has("async_scheduling"), pp_hop_sliced=True
        )

    @property
    def per_stage_schedulers(self) -> bool:
        return not self.has("v1_engine")

    def chunked_prefill_default(self, max_model_len: int, pp: int) -> bool:
        """V1: always. V0's API server turned it on for contexts over 32K, except with pipeline
        parallelism, which its chunked-prefill scheduler did not support."""
        if self.has("v1_engine"):
            return True
        return max_model_len > 32_768 and pp == 1

    @property
    def chunked_prefill_budget(self) -> int:
        return 8192 if self.has("v1_engine") else 512

    # --- logs ----------------------------------------------------------------------------------------
    @property
    def weights_style(self) -> str:
        if self.log_format == "legacy":
            return "legacy"
        if self.log_format == "current":
            return "current"
        return "current" if self.has("model_loading_line") else "legacy"

    @property
    def logs_model_size(self) -> bool:
        """The GPU model runners log `Model loading took X GiB ...`; the CPU build's runner logs no size
        (unless a log format is forced with --log-format)."""
        return not self.cpu or self.log_format != "auto"

    def weights_line(self, gib: float, seconds: float) -> str:
        if self.weights_style == "legacy":
            return f"Loading model weights took {gib:.4f} GB"
        if self.log_format == "current":
            return f"Model loading took {gib:.4f} GiB memory and {seconds:.6f} seconds"
        if self.has("gib_as_str"):
            return f"Model loading took {round(gib, 2)} GiB memory and {seconds:.6f} seconds"
        if self.has("memory_word"):
            return f"Model loading took {gib:.4f} GiB memory and {seconds:.6f} seconds"
        unit = "GiB" if self.has("gib_units") else "GB"
        return f"Model loading took {gib:.4f} {unit} and {seconds:.6f} seconds"

    def api_server_line(self, host: str, port: int) -> str | None:
        if self.has("server_line_v2"):
            return f"Starting vLLM server on http://{host}:{port}"
        if self.has("api_server_index"):
            return f"Starting vLLM API server 0 on http://{host}:{port}"
        if self.has("bracket_log_format"):
            return f"Starting vLLM API server on http://{host}:{port}"
        return None

    @property
    def engine_core_name(self) -> str:
        return "EngineCore" if self.has("engine_core_no_dp") else "EngineCore_DP0"

    # --- API ----------------------------------------------------------------------------------------
    @property
    def stream_options_default_true(self) -> bool:
        """0.6.0-0.6.3: a supplied stream_options defaulted include_usage/continuous_usage_stats to True."""
        return (0, 6, 0) <= self.version < (0, 6, 4)


def resolve_profile(*, profile: str | None, image: str | None, log_format: str = "auto") -> Profile:
    """`--profile` wins; else the image tag; else current vLLM. Either may name the CPU build."""
    if profile:
        version, device = parse_version(profile), device_from_text(profile)
    elif image:
        version, device = version_from_image(image), device_from_text(image)
    else:
        version, device = CURRENT_VERSION, "cuda"
    return Profile.for_version(version, log_format, device)
