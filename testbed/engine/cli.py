"""The command line: `vllm serve`'s flags that the simulator models, plus its own.

`python -m testbed.engine MODEL --port P --tensor-parallel-size 8 --pipeline-parallel-size 2 ...` replays a
manifest's `vllm serve` line: flags are read in dash or underscore spelling (vLLM's FlexibleArgumentParser
does the same); vLLM flags the simulator does not model are ignored with one warning line on stderr.
Simulator flags (never passed to a real vLLM): --host (default 127.0.0.1: loopback only unless asked),
--time-scale, --gpu, --interconnect, --profile, --image, --log-format, --nodes, --gpus-per-node,
--log-file, --worker-log-file, --node-ip, --ray-cluster-size, --launch-script, --script-then,
--startup-seconds, --advertised-port, --advertised-host, --status-file, --enable-test-hooks,
--fail-after-requests, --break-answer, --execute-model-timeout, --ray-dedup-logs.
Bad input raises `UsageError` (one line; `__main__` prints it and exits 2).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plumbing import argtypes

BREAKABLE_ANSWERS = ("completion", "streaming", "health", "metrics")
EXECUTE_TIMEOUT_ENV = "VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS"
DEFAULT_EXECUTE_TIMEOUT_S = 300.0  # vLLM's default for EXECUTE_TIMEOUT_ENV (vllm/envs.py)


class UsageError(Exception):
    """A command line the simulator cannot run; the message says what to change."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass(frozen=True)
class EngineOptions:
    model: str
    served_model_names: tuple[str, ...]
    host: str
    port: int
    advertised_host: str
    advertised_port: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    executor_backend: str | None
    nnodes: int
    max_model_len: int | None
    max_num_seqs: int
    max_num_batched_tokens: int | None
    gpu_memory_utilization: float
    block_size: int | None  # None: vLLM's default for the device (app.py)
    enable_chunked_prefill: bool | None
    quantization: str | None
    seed: int
    api_key: str | None
    force_include_usage: bool
    disable_access_log: bool
    time_scale: float
    gpu: str
    interconnect: str
    profile: str | None
    image: str | None
    log_format: str
    nodes: int | None
    gpus_per_node: int
    log_file: Path | None
    worker_log_files: tuple[Path, ...]
    node_ips: tuple[str, ...]
    ray_cluster_size: int | None
    launch_script: str | None
    script_then: str
    startup_seconds: float
    status_file: Path | None
    enable_test_hooks: bool
    fail_after_requests: int | None
    break_answer: str | None
    execute_model_timeout_s: float
    ray_dedup_logs: bool
    quiet: bool
    non_default_args: dict[str, object] = field(default_factory=dict)
    ignored_flags: tuple[str, ...] = ()


# vLLM flags with a value that the simulator accepts but does not model (kept out of the warning).
_ACCEPTED_WITH_VALUE = (
    "dtype",
    "tokenizer",
    "revision",
    "download-dir",
    "load-format",
    "kv-cache-dtype",
    "swap-space",
    "max-logprobs",
    "tokenizer-mode",
    "chat-template",
    "uvicorn-log-level",
    "disable-log-stats-interval",
    "data-parallel-size",
    "node-rank",
    "master-addr",
    "master-port",
    "hf-token",
)
_ACCEPTED_SWITCHES = (
    "trust-remote-code",
    "disable-log-requests",
    "enforce-eager",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "disable-log-stats",
    "headless",
    "disable-custom-all-reduce",
)


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """`--pipeline_parallel_size 2` -> `--pipeline-parallel-size 2` (only the flag name, not values)."""
    out = []
    for a in argv:
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            a = "--" + name.replace("_", "-") + (eq + value if eq else "")
        out.append(a)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m testbed.engine",
        description="vLLM engine simulator (`vllm serve` flags + simulator flags)",
        allow_abbrev=False,
    )
    p.add_argument("model_tag", nargs="?", help="the model, as `vllm serve MODEL`")
    _add_vllm_flags(p.add_argument_group("vllm serve flags the simulator models"))
    _add_simulator_flags(p.add_argument_group("simulator flags"))
    return p


def _add_vllm_flags(v: argparse._ArgumentGroup) -> None:
    v.add_argument("--model")
    v.add_argument("--served-model-name", nargs="+")
    v.add_argument("--port", type=argtypes.port, default=8000)
    v.add_argument("--tensor-parallel-size", "-tp", type=argtypes.positive_int, default=1)
    v.add_argument("--pipeline-parallel-size", "-pp", type=argtypes.positive_int, default=1)
    v.add_argument("--distributed-executor-backend", choices=("ray", "mp", "uni", "external_launcher"))
    v.add_argument(
        "--nnodes",
        type=argtypes.positive_int,
        default=1,
        help="multiprocessing multi-node: nodes in the group",
    )
    v.add_argument("--max-model-len", type=argtypes.positive_int)
    v.add_argument("--max-num-seqs", type=argtypes.positive_int, default=256)
    v.add_argument("--max-num-batched-tokens", type=argtypes.positive_int)
    v.add_argument("--gpu-memory-utilization", type=argtypes.fraction, default=0.9)
    v.add_argument("--block-size", type=argtypes.positive_int, default=None)
    v.add_argument("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=None)
    v.add_argument("--quantization", "-q")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--api-key")
    v.add_argument("--enable-force-include-usage", action="store_true")
    v.add_argument("--disable-uvicorn-access-log", action="store_true")
    for name in _ACCEPTED_WITH_VALUE:
        v.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in _ACCEPTED_SWITCHES:
        v.add_argument(f"--{name}", action="store_true", help=argparse.SUPPRESS)


def _add_simulator_flags(s: argparse._ArgumentGroup) -> None:
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    s.add_argument(
        "--advertised-host", default="0.0.0.0", help="host shown in vLLM's start-up lines (the pod's view)"
    )
    s.add_argument(
        "--advertised-port", type=argtypes.port, help="port shown in the start-up lines (default: --port)"
    )
    s.add_argument(
        "--time-scale",
        type=argtypes.nonneg_finite_number,
        default=1.0,
        help="simulated seconds -> wall seconds; 0 = no pacing",
    )
    s.add_argument("--gpu", default="H100", help="H100, H200 or A100")
    s.add_argument("--interconnect", default="infiniband", help="between nodes: infiniband or ethernet")
    s.add_argument(
        "--profile",
        help="vLLM version to behave as (e.g. v0.10.1, 0.32.0+cpu for the CPU build, legacy, current); "
        "overrides --image",
    )
    s.add_argument("--image", help="the pod's image; its tag picks the vLLM version")
    s.add_argument("--log-format", choices=("auto", "legacy", "current"), default="auto")
    s.add_argument(
        "--nodes",
        type=argtypes.positive_int,
        help="nodes present in the group (default: enough for the world size)",
    )
    s.add_argument("--gpus-per-node", type=argtypes.positive_int, default=8)
    s.add_argument("--log-file", type=Path, help="also write the leader's log here, CRI format")
    s.add_argument(
        "--worker-log-file",
        type=Path,
        action="append",
        default=[],
        help="one per worker pod, in worker-index order",
    )
    s.add_argument(
        "--node-ip", action="append", default=[], help="node addresses for the log prefixes, leader first"
    )
    s.add_argument(
        "--ray-cluster-size", type=argtypes.positive_int, help="--ray_cluster_size of the multi-node script"
    )
    s.add_argument(
        "--launch-script", help="the script the pod runs before vllm serve (path as in the command)"
    )
    s.add_argument(
        "--script-then",
        choices=("always", "on-success"),
        default="always",
        help="';' or '&&' after the script",
    )
    s.add_argument(
        "--startup-seconds",
        type=argtypes.nonneg_finite_number,
        default=30.0,
        help="simulated start-up before the API serves",
    )
    s.add_argument(
        "--status-file", type=Path, help="JSON status (starting/ready/failed/stopped) written on each change"
    )
    s.add_argument("--enable-test-hooks", action="store_true", help="serve POST /_sim/crash")
    s.add_argument(
        "--fail-after-requests",
        type=argtypes.positive_int,
        help="the engine dies on this request (fault injection)",
    )
    s.add_argument(
        "--break-answer",
        choices=BREAKABLE_ANSWERS,
        help="answer this one route wrongly while serving the rest (an engine wrong in that way, to show a "
        "check failing): completion (no usage), streaming (no [DONE]), health (503), metrics (no vllm: series)",
    )
    s.add_argument(
        "--execute-model-timeout",
        type=argtypes.positive_finite_number,
        metavar="SECONDS",
        help="how long a model step waits for a node that went away before the engine core dies, as vLLM's "
        f"{EXECUTE_TIMEOUT_ENV} (default: that variable, else {DEFAULT_EXECUTE_TIMEOUT_S:.0f})",
    )
    s.add_argument(
        "--ray-dedup-logs",
        action="store_true",
        help="collapse identical Ray worker lines as Ray does by default",
    )
    s.add_argument("--quiet", action="store_true", help="do not echo the leader log on stdout")


def parse_args(argv: Sequence[str]) -> EngineOptions:
    parser = build_parser()
    args, unknown = parser.parse_known_args(normalize_argv(argv))
    ignored = tuple(a for a in unknown if a.startswith("-"))
    stray = [a for a in unknown if not a.startswith("-")]
    model = args.model or args.model_tag
    if not model:
        raise UsageError("no model given: `python -m testbed.engine MODEL ...` or --model MODEL")
    if args.model and args.model_tag and args.model != args.model_tag:
        raise UsageError(f"two different models given: {args.model_tag!r} and --model {args.model!r}")
    if stray and not ignored:
        raise UsageError(
            f"unexpected argument(s) {' '.join(stray)}; the model is given once, before the flags"
        )
    return EngineOptions(
        model=model,
        served_model_names=tuple(args.served_model_name or [model]),
        host=args.host,
        port=args.port,
        advertised_host=args.advertised_host,
        advertised_port=args.advertised_port if args.advertised_port is not None else args.port,
        tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        executor_backend=args.distributed_executor_backend,
        nnodes=args.nnodes,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        gpu_memory_utilization=args.gpu_memory_utilization,
        block_size=args.block_size,
        enable_chunked_prefill=args.enable_chunked_prefill,
        quantization=args.quantization,
        seed=args.seed,
        api_key=args.api_key,
        force_include_usage=args.enable_force_include_usage,
        disable_access_log=args.disable_uvicorn_access_log,
        time_scale=args.time_scale,
        gpu=args.gpu,
        interconnect=args.interconnect,
        profile=args.profile,
        image=args.image,
        log_format=args.log_format,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        log_file=args.log_file,
        worker_log_files=tuple(args.worker_log_file),
        node_ips=tuple(args.node_ip),
        ray_cluster_size=args.ray_cluster_size,
        launch_script=args.launch_script,
        script_then=args.script_then,
        startup_seconds=args.startup_seconds,
        status_file=args.status_file,
        enable_test_hooks=args.enable_test_hooks,
        fail_after_requests=args.fail_after_requests,
        break_answer=args.break_answer,
        execute_model_timeout_s=_execute_model_timeout(args.execute_model_timeout),
        ray_dedup_logs=args.ray_dedup_logs,
        quiet=args.quiet,
        non_default_args=_non_default_args(parser, args, model),
        ignored_flags=ignored,
    )


def _non_default_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, model: str
) -> dict[str, object]:
    """The modelled flags given other than their defaults, as vLLM logs them (`non-default args: {...}`)."""
    non_default: dict[str, object] = {"model": model}
    defaults = {a.dest: a.default for a in parser._actions}
    for dest in (
        "port",
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "distributed_executor_backend",
        "max_model_len",
        "max_num_seqs",
        "max_num_batched_tokens",
        "gpu_memory_utilization",
        "enable_chunked_prefill",
        "quantization",
        "served_model_name",
        "dtype",
        "nnodes",
        "master_addr",
    ):
        value = getattr(args, dest)
        if value != defaults.get(dest):
            non_default[dest] = args.advertised_port if dest == "port" and args.advertised_port else value
    if args.advertised_port and "port" not in non_default and args.advertised_port != 8000:
        non_default["port"] = args.advertised_port
    return non_default


def _execute_model_timeout(flag: float | None) -> float:
    """The flag, else the variable vLLM reads (from this process's environment, as vLLM reads it), else
    vLLM's default."""
    if flag is not None:
        return flag
    text = os.environ.get(EXECUTE_TIMEOUT_ENV)
    if text is None:
        return DEFAULT_EXECUTE_TIMEOUT_S
    try:
        return argtypes.positive_finite_number(text)
    except (argparse.ArgumentTypeError, ValueError):
        raise UsageError(f"{EXECUTE_TIMEOUT_ENV}={text!r} is not a positive number of seconds") from None
