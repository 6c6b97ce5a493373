"""vLLM's start-up, as the pods' logs show it: a timeline of lines for the leader and each worker pod.

`plan_startup(inputs)` is pure: it returns the lines with their simulated times and which pod log each goes
to, and how the start-up ends (serving, or exiting with a code). `app.py` paces and prints them.
Formats follow vLLM's own log calls, per vLLM version (`profiles.py` names the PR behind each change):
- the multi-node script (`ray start --head` / `--block` output, the leader's polling lines);
- vLLM's own lines: `INFO MM-DD HH:MM:SS file.py:NN] msg` (V0) or `... [file.py:NN] msg` (>= 0.8),
  with `(APIServer pid=N)` / `(EngineCore_DP0 pid=N)` prefixes (>= 0.10);
- one weight-loading line per rank: rank 0 without prefix in V0 (the driver runs in-process), every
  other rank as a Ray actor, `(RayWorkerWrapper pid=N)` on the leader's node and
  `(RayWorkerWrapper pid=N, ip=A)` on another node (Ray adds `ip=` only for remote actors);
- KV cache lines, the API server and uvicorn start lines.
Failures (all as vLLM and bash print them): the script missing from the image, the Ray cluster never
reaching its size (then vLLM waits for a placement group for 1800 s), the world size larger than a node
without `--distributed-executor-backend ray` (>= 0.11.1), a model that does not fit in memory.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from testbed.engine.hardware import GIB
from testbed.engine.perf_model import MemoryPlan
from testbed.engine.profiles import Profile

RAY_PORT = 6379
SCRIPT_POLL_S = 5.0
SCRIPT_TIMEOUT_S = 300.0
PG_WAIT_TIMEOUT_S = 1800.0
LEADER = 0
MODEL_INIT_S = 2.5  # building the model on each rank, outside reading its weights


@dataclass(frozen=True)
class LogEvent:
    """One line of one pod's log. `level`/`source` set: a vLLM logger line, rendered at emission time."""

    at_s: float  # simulated seconds since the container started
    pod: int  # 0 = leader pod, k = worker pod k
    message: str
    level: str | None = None
    source: str | None = None  # "file.py:NN"
    prefix: str = ""


@dataclass(frozen=True)
class StartupInputs:
    profile: Profile
    model: str  # as given to vllm serve
    served_model_name: str
    tp: int
    pp: int
    gpus_per_node: int
    node_ips: tuple[str, ...]  # leader first; one per node present
    memory: MemoryPlan
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    weight_bytes: float
    host: str = "0.0.0.0"
    port: int = 8000
    startup_seconds: float = 30.0
    seed: int = 0
    script: str | None = None  # the launch script the pod runs before vllm serve, if any
    ray_cluster_size: int | None = None
    executor_backend: str | None = None  # --distributed-executor-backend
    nnodes: int = 1  # --nnodes (multiprocessing across nodes; workers run `vllm serve --headless`)
    non_default_args: dict[str, object] = field(default_factory=dict)
    dedup_ray_logs: bool = False


@dataclass(frozen=True)
class StartupPlan:
    events: tuple[LogEvent, ...]
    ready_at_s: float | None  # the API server accepts requests from then on
    exit_at_s: float | None = None
    exit_code: int | None = None
    failure: str | None = None  # one line for the status / stderr

    @property
    def failed(self) -> bool:
        return self.exit_code is not None


class _Timeline:
    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def raw(self, at: float, text: str, pod: int = LEADER, prefix: str = "") -> None:
        for line in text.split("\n"):
            self.events.append(LogEvent(at_s=at, pod=pod, message=line, prefix=prefix))

    def log(
        self, at: float, level: str, source: str, message: str, prefix: str = "", pod: int = LEADER
    ) -> None:
        for i, line in enumerate(message.split("\n")):
            if i == 0:
                self.events.append(
                    LogEvent(at_s=at, pod=pod, message=line, level=level, source=source, prefix=prefix)
                )
            else:  # continuation lines of a multi-line message carry only the process prefix
                self.events.append(LogEvent(at_s=at, pod=pod, message=line, prefix=prefix))


def render(event: LogEvent, profile: Profile, wall: float | None = None) -> str:
    """The line as the pod prints it; vLLM lines get the time of emission in vLLM's date format."""
    if event.level is None:
        return event.prefix + event.message
    stamp = time.strftime("%m-%d %H:%M:%S", time.gmtime(wall if wall is not None else time.time()))
    if profile.has("bracket_log_format"):
        return f"{event.prefix}{event.level} {stamp} [{event.source}] {event.message}"
    return f"{event.prefix}{event.level} {stamp} {event.source}] {event.message}"


def _ray_head_lines(ip: str) -> str:
    return (
        f"Local node IP: {ip}\n\n--------------------\nRay runtime started.\n--------------------\n\n"
        "Next steps\n  To add another node to this Ray cluster, run\n"
        f"    ray start --address='{ip}:{RAY_PORT}'\n\n"
        "  To connect to this Ray cluster:\n    import ray\n    ray.init()\n\n"
        "  To terminate the Ray runtime, run\n    ray stop\n\n"
        "  To view the status of the cluster, use\n    ray status"
    )


def _ray_worker_lines(ip: str) -> str:
    return (
        f"Local node IP: {ip}\n\n--------------------\nRay runtime started.\n--------------------\n\n"
        "To terminate the Ray runtime, run\n  ray stop\n--block\n"
        "  This command will now block forever until terminated by a signal.\n"
        "  Running subprocesses are monitored and a message will be printed if any of them terminate "
        "unexpectedly. Subprocesses exit with SIGTERM will be treated as graceful, thus NOT reported."
    )


def _ray_connect(ip: str, at_wall: str) -> str:
    return (
        f"{at_wall} INFO worker.py:1654 -- Connecting to existing Ray cluster at address: {ip}:{RAY_PORT}...\n"
        f"{at_wall} INFO worker.py:1832 -- Connected to Ray cluster. View the dashboard at 127.0.0.1:8265 "
    )


def plan_startup(inp: StartupInputs) -> StartupPlan:
    """The whole start-up of one LWS group's leader (and its workers' Ray lines); see module docstring."""
    prof = inp.profile
    rng = random.Random(inp.seed)
    tl = _Timeline()
    world = inp.tp * inp.pp
    nodes_present = len(inp.node_ips)
    leader_ip = inp.node_ips[0]
    wall = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())
    t = 0.0
    uses_ray_script = inp.script is not None and "multi-node-serving.sh" in inp.script

    # --- the launch script ---------------------------------------------------------------------------
    if inp.script is not None:
        available = prof.multi_node_script
        if available is None or inp.script != available:
            # bash prints this and exits 127; the manifest joins with ";", so vllm serve still runs.
            tl.raw(t, f"bash: {inp.script}: No such file or directory")
            for k in range(1, nodes_present):
                tl.raw(t, f"bash: {inp.script}: No such file or directory", pod=k)
            uses_ray_script = False
            t += 0.5
    ray_up = False
    if uses_ray_script:
        tl.raw(t, _ray_head_lines(leader_ip))
        size = inp.ray_cluster_size or nodes_present  # the bridge may not pass it: the whole group
        join_at = t + 3.0
        for k in range(1, nodes_present):
            tl.raw(join_at + 0.2 * k, _ray_worker_lines(inp.node_ips[k]), pod=k)
        waited = 0.0
        t += 2.0
        while True:
            active = 1 + sum(1 for k in range(1, nodes_present) if join_at + 0.2 * k <= t)
            tl.raw(t, _ray_connect(leader_ip, wall))
            if active == size:
                tl.raw(t + 0.5, "All ray workers are active and the ray cluster is initialized successfully.")
                t += 1.0
                ray_up = True
                break
            tl.raw(t + 0.5, f"Wait for all ray workers to be active. {active}/{size} is active")
            waited += SCRIPT_POLL_S
            t += SCRIPT_POLL_S
            if waited >= SCRIPT_TIMEOUT_S:
                tl.raw(t, "Waiting for all ray workers to be active timed out.")
                t += 0.5
                ray_up = True  # the head is up, with fewer nodes than asked
                break
    gpus_reachable = inp.gpus_per_node * (nodes_present if ray_up else 1)

    # --- vllm serve: the API server process ---------------------------------------------------------
    api_pid = rng.randint(180, 420) if uses_ray_script else 1
    core_pid = api_pid + rng.randint(120, 260)
    v1 = prof.has("v1_engine")
    api = f"(APIServer pid={api_pid}) " if prof.has("process_prefixes") else ""
    core = f"({prof.engine_core_name} pid={core_pid}) " if (v1 and prof.has("process_prefixes")) else ""
    if not v1:
        core = api
    tl.log(
        t,
        "INFO",
        "api_server.py:1805" if v1 else "api_server.py:528",
        f"vLLM API server version {prof.version_text}",
        api,
    )
    if prof.has("process_prefixes"):
        tl.log(t, "INFO", "utils.py:326", f"non-default args: {inp.non_default_args!r}", api)
    else:
        args = ", ".join(f"{k}={v!r}" for k, v in inp.non_default_args.items())
        tl.log(t, "INFO", "api_server.py:529", f"args: Namespace({args})", api)
    t += 2.0
    tl.log(t, "INFO", "config.py:1604", f"Using max model len {inp.max_model_len}", api)

    backend = inp.executor_backend
    if backend is None and world <= inp.gpus_per_node:
        # the CPU build runs its worker in a process of its own even for one rank (multiproc executor)
        backend = "mp" if world > 1 or prof.cpu else "uni"
    mp_multi = backend == "mp" and inp.nnodes > 1 and prof.has("mp_multi_node")
    if world > inp.gpus_per_node and backend is None:
        error = prof.world_size_error(world, inp.gpus_per_node)
        if error is not None:
            return _fail_traceback(
                tl,
                t + 0.5,
                api,
                error,
                "pydantic_core._pydantic_core.ValidationError: 1 validation error for ParallelConfig",
            )
        backend = "ray"
        tl.log(
            t,
            "INFO",
            "config.py:2433" if v1 else "config.py:1003",
            "Defaulting to use ray for distributed inference",
            api,
        )
    elif (
        world > inp.gpus_per_node
        and backend == "mp"
        and not (mp_multi and inp.nnodes * inp.gpus_per_node >= world)
    ):
        error = prof.world_size_error(world, inp.gpus_per_node) or (
            f"please ensure that world_size ({world}) is less than than max local gpu count ({inp.gpus_per_node})"
        )
        return _fail_traceback(
            tl,
            t + 0.5,
            api,
            error,
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for ParallelConfig",
        )
    if inp.chunked_prefill:
        tl.log(
            t,
            "INFO",
            "config.py:2752",
            f"Chunked prefill is enabled with max_num_batched_tokens={inp.max_num_batched_tokens}.",
            api,
        )
    t += 3.0
    if v1 and core:
        tl.log(t, "INFO", "core.py:654", "Waiting for init message from front-end.", core)
    engine_line = "Initializing a V1 LLM engine" if v1 else "Initializing an LLM engine"
    tl.log(
        t,
        "INFO",
        "core.py:75" if v1 else "llm_engine.py:237",
        f"{engine_line} (v{prof.version_text}) with config: model={inp.model!r}, speculative_config=None, "
        f"tokenizer={inp.model!r}, skip_tokenizer_init=False, tokenizer_mode=auto, revision=None, "
        f"trust_remote_code=False, dtype=torch.bfloat16, max_seq_len={inp.max_model_len}, download_dir=None, "
        f"load_format=auto, tensor_parallel_size={inp.tp}, pipeline_parallel_size={inp.pp}, "
        f"disable_custom_all_reduce=False, quantization=None, enforce_eager=False, kv_cache_dtype=auto, "
        f"device_config={prof.device}, seed=0, served_model_name={inp.served_model_name}, "
        f"enable_prefix_caching={v1}, chunked_prefill_enabled={inp.chunked_prefill}",
        core,
    )
    if backend == "ray" and world > 1:
        if not ray_up:
            tl.log(t + 0.5, "INFO", "worker.py:1841", "Started a local Ray instance.", core)
            gpus_reachable = inp.gpus_per_node
        if gpus_reachable < world:
            return _fail_placement_group(tl, t + 1.0, core, world, leader_ip, inp)
    elif mp_multi and len(inp.node_ips) < inp.nnodes:
        # torch's TCPStore on the leader waits for every node's workers to connect, then gives up
        joined = len(inp.node_ips) * inp.gpus_per_node
        return _fail_traceback(
            tl,
            t + 600.0,
            core,
            f"Timed out after 601 seconds waiting for clients. {joined}/{world} clients joined.",
            "torch.distributed.DistStoreError",
        )

    # --- workers: one line group per rank -------------------------------------------------------------
    t += 5.0
    ranks = list(range(world))
    pids = {r: rng.randint(900, 3000) for r in ranks}
    gib = inp.weight_bytes / world / GIB

    on_ray = backend == "ray" and world > 1
    own_worker = v1 and backend == "mp"  # each rank in a worker process of its own
    unnested = own_worker and prof.has("worker_logs_v032")
    if unnested:
        local = min(world, inp.gpus_per_node)
        addr = str(inp.non_default_args.get("master_addr") or (leader_ip if mp_multi else "127.0.0.1"))
        tl.log(
            t - 4.0,
            "INFO",
            "multiproc_executor.py:153",
            f"DP group leader: node_rank=0, node_rank_within_dp=0, master_addr={addr}, mq_connect_ip={addr} "
            f"(local), world_size={world}, local_world_size={local}",
            core,
        )

    def rank_prefix(r: int, named: bool = True) -> str:
        node = r // inp.gpus_per_node
        pp_rank, tp_rank = divmod(r, inp.tp)
        if (world == 1 and not own_worker) or (not v1 and r == 0):
            return core  # the only worker, or V0's driver worker, runs inside the engine process
        if on_ray:
            ip = inp.node_ips[node] if node < len(inp.node_ips) else inp.node_ips[-1]
            wrapper = (
                f"(RayWorkerWrapper pid={pids[r]}, ip={ip}) "
                if node != 0
                else f"(RayWorkerWrapper pid={pids[r]}) "
            )
            return (core if v1 else "") + wrapper
        if not v1:
            return f"(VllmWorkerProcess pid={pids[r]}) "
        if not prof.has("process_prefixes"):
            return f"(VllmWorker rank={r} pid={pids[r]}) "
        # vLLM names a worker once its ranks are known: a suffix for each parallel size above 1
        name = "Worker" + (f"_PP{pp_rank}" if inp.pp > 1 else "") + (f"_TP{tp_rank}" if inp.tp > 1 else "")
        if unnested:
            return f"({name if named else 'Worker'} pid={pids[r]}) "
        # a headless node's workers print in their own pod, without the leader's engine-core prefix
        return (core if node == 0 else "") + f"({name} pid={pids[r]}) "

    def rank_pod(r: int) -> int:
        """Ray forwards every actor's output to the driver; multiprocessing workers print where they run."""
        return r // inp.gpus_per_node if mp_multi else LEADER

    src_runner = "gpu_model_runner.py:1892" if v1 else "model_runner.py:1067"
    if prof.cpu:
        src_runner = "cpu_model_runner.py:68"
    # Per rank, the loader reads the weights ("Loading weights took"); the model runner's "Model loading
    # took" is that plus building the model (MODEL_INIT_S): the part is computed first, never subtracted.
    weights_seconds = {r: inp.weight_bytes / world / 0.55e9 * rng.uniform(0.95, 1.05) for r in ranks}
    load_seconds = {r: weights_seconds[r] + MODEL_INIT_S for r in ranks}
    for r in ranks:
        pp_rank, tp_rank = divmod(r, inp.tp)
        if prof.has("worker_logs_v032"):
            tl.log(
                t,
                "INFO",
                "parallel_state.py:2350",
                f"rank {r} in world size {world} is assigned as DP rank 0, PP rank {pp_rank}, PCP rank 0, "
                f"TP rank {tp_rank}, ETP rank 0, EP rank N/A, EPLB rank N/A",
                rank_prefix(r, named=False),
                pod=rank_pod(r),
            )
        elif prof.has("bracket_log_format"):
            tl.log(
                t,
                "INFO",
                "parallel_state.py:1134",
                f"rank {r} in world size {world} is assigned as DP rank 0, PP rank {pp_rank}, TP rank {tp_rank}, EP rank {tp_rank}",
                rank_prefix(r),
                pod=rank_pod(r),
            )
        if not prof.cpu:  # the CPU build's ranks talk over gloo
            tl.log(
                t + 0.1,
                "INFO",
                "pynccl.py:70",
                "vLLM is using nccl==2.26.2" if v1 else "vLLM is using nccl==2.20.5",
                rank_prefix(r),
                pod=rank_pod(r),
            )
        tl.log(
            t + 0.2,
            "INFO",
            src_runner if prof.cpu else "gpu_model_runner.py:1843" if v1 else "model_runner.py:1056",
            f"Starting to load model {inp.model}...",
            rank_prefix(r),
            pod=rank_pod(r),
        )
    t_loaded = t + 0.5 + inp.startup_seconds * 0.5
    for r in ranks:
        seconds = load_seconds[r]
        if prof.has("model_loading_line"):
            tl.log(
                t_loaded,
                "INFO",
                "default_loader.py:501" if prof.cpu else "default_loader.py:262",
                f"Loading weights took {weights_seconds[r]:.2f} seconds",
                rank_prefix(r),
                pod=rank_pod(r),
            )
        if prof.logs_model_size:
            tl.log(
                t_loaded + 0.01 * r,
                "INFO",
                src_runner,
                prof.weights_line(gib, seconds),
                rank_prefix(r),
                pod=rank_pod(r),
            )
    if inp.dedup_ray_logs:
        _dedup(tl)

    t = t_loaded + 1.0
    if inp.memory.error:
        return _fail_traceback(
            tl,
            t,
            core,
            inp.memory.error,
            "torch.OutOfMemoryError" if "CUDA out of memory" in inp.memory.error else "ValueError",
        )
    kv_gib = inp.memory.kv_cache_bytes_per_gpu / GIB
    tokens = inp.memory.kv_tokens
    concurrency = tokens / inp.max_model_len
    if v1 and prof.cpu:  # VLLM_CPU_KVCACHE_SPACE decides the cache; one line says it all
        for r in ranks:
            tl.log(t, "INFO", "cpu_worker.py:260", f"Explicitly set {kv_gib:.1f} GiB for KV cache on node 0.", rank_prefix(r), pod=rank_pod(r))  # fmt: skip
        tl.log(
            t + 0.2,
            "INFO",
            "kv_cache_utils.py:2327",
            f"CPU KV cache size: {tokens:,} tokens, Maximum concurrency for {inp.max_model_len} tokens per "
            f"request: {concurrency:.2f}x",
            core,
        )
    elif v1:
        for r in ranks:
            tl.log(
                t,
                "INFO",
                "gpu_worker.py:276",
                f"Available KV cache memory: {kv_gib:.2f} GiB",
                rank_prefix(r),
                pod=rank_pod(r),
            )
        tl.log(t + 0.2, "INFO", "kv_cache_utils.py:849", f"GPU KV cache size: {tokens:,} tokens", core)
        tl.log(
            t + 0.2,
            "INFO",
            "kv_cache_utils.py:853",
            f"Maximum concurrency for {inp.max_model_len:,} tokens per request: {concurrency:.2f}x",
            core,
        )
    else:
        tl.log(
            t,
            "INFO",
            "distributed_gpu_executor.py:57",
            f"# GPU blocks: {inp.memory.num_gpu_blocks}, # CPU blocks: {int(4 * GIB // (inp.memory.block_size * inp.memory.kv_bytes_per_token_per_gpu))}",
            core,
        )
        tl.log(
            t,
            "INFO",
            "distributed_gpu_executor.py:61",
            f"Maximum concurrency for {inp.max_model_len} tokens per request: {concurrency:.2f}x",
            core,
        )
    t += inp.startup_seconds * 0.3
    for r in () if prof.cpu else ranks:  # the CPU build compiles; it captures no CUDA graphs
        graph = rng.randint(8, 20)
        msg = (
            f"Graph capturing finished in {graph} secs, took {rng.uniform(0.5, 1.5):.2f} GiB"
            if v1
            else f"Graph capturing finished in {graph} secs."
        )
        tl.log(
            t,
            "INFO",
            "gpu_model_runner.py:2567" if v1 else "model_runner.py:1525",
            msg,
            rank_prefix(r),
            pod=rank_pod(r),
        )
    if v1:
        total = sum(load_seconds.values()) / world + 40
        tl.log(
            t + 0.5,
            "INFO",
            "core.py:214",
            f"init engine (profile, create kv cache, warmup model) took {total:.2f} seconds",
            core,
        )

    # --- API server up -------------------------------------------------------------------------------
    t = max(t + 1.0, inp.startup_seconds - 0.5)
    line = prof.api_server_line(inp.host, inp.port)
    if line:
        tl.log(t, "INFO", "api_server.py:1880", line, api)
        tl.log(t, "INFO", "launcher.py:29", "Available routes are:", api)
        for route, methods in (
            ("/health", "GET"),
            ("/v1/models", "GET"),
            ("/version", "GET"),
            ("/v1/chat/completions", "POST"),
            ("/v1/completions", "POST"),
            ("/metrics", "GET"),
        ):
            tl.log(t, "INFO", "launcher.py:37", f"Route: {route}, Methods: {methods}", api)
    tl.raw(t + 0.2, f"INFO:     Started server process [{api_pid}]", prefix=api)
    tl.raw(t + 0.2, "INFO:     Waiting for application startup.", prefix=api)
    tl.raw(t + 0.3, "INFO:     Application startup complete.", prefix=api)
    if not prof.has("bracket_log_format"):
        tl.raw(
            t + 0.3,
            f"INFO:     Uvicorn running on socket ('{inp.host}', {inp.port}) (Press CTRL+C to quit)",
            prefix=api,
        )
    ready = t + 0.3
    return StartupPlan(events=tuple(sorted(tl.events, key=lambda e: e.at_s)), ready_at_s=ready)


def _dedup(tl: _Timeline) -> None:
    """Ray's log deduplication: identical lines from several actors collapse into one plus a count."""
    seen: dict[str, int] = {}
    kept: list[LogEvent] = []
    for e in tl.events:
        if "RayWorkerWrapper" not in e.prefix:
            kept.append(e)
            continue
        key = "".join(c for c in e.message if not c.isdigit())
        if key in seen:
            seen[key] += 1
            continue
        seen[key] = 0
        kept.append(e)
    for e in list(kept):
        key = "".join(c for c in e.message if not c.isdigit())
        if seen.get(key):
            kept.append(
                LogEvent(
                    at_s=e.at_s + 0.5,
                    pod=e.pod,
                    message=f"{e.message} [repeated {seen[key]}x across cluster]",
                    level=e.level,
                    source=e.source,
                    prefix=e.prefix,
                )
            )
            seen[key] = 0
    tl.events = kept


def _fail_traceback(tl: _Timeline, t: float, prefix: str, message: str, exc: str) -> StartupPlan:
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/usr/local/bin/vllm", line 10, in <module>\n    sys.exit(main())\n'
        '  File "/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/cli/main.py", line 54, in main\n'
        "    args.dispatch_function(args)\n"
        '  File "/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/cli/serve.py", line 57, in cmd\n'
        "    uvloop.run(run_server(args))\n"
    )
    if exc.startswith("pydantic"):
        body = f"{exc}\n  Value error, {message} [type=value_error, input_value=ArgsKwargs((), {{}}), input_type=ArgsKwargs]\n    For further information visit https://errors.pydantic.dev/2.11/v/value_error"
    else:
        body = f"{exc}: {message}"
    tl.raw(t, tb + body, prefix=prefix)
    first = message.split("\n")[0]
    return StartupPlan(
        events=tuple(sorted(tl.events, key=lambda e: e.at_s)),
        ready_at_s=None,
        exit_at_s=t + 0.5,
        exit_code=1,
        failure=first,
    )


def _fail_placement_group(
    tl: _Timeline, t: float, prefix: str, world: int, leader_ip: str, inp: StartupInputs
) -> StartupPlan:
    specs = [{"GPU": 1.0, f"node:{leader_ip}": 0.001}] + [{"GPU": 1.0}] * (world - 1)
    waited, interval = 0.0, 10.0
    while waited + interval <= PG_WAIT_TIMEOUT_S:
        waited += interval
        tl.log(
            t + waited,
            "INFO",
            "ray_utils.py:285",
            f"Waiting for creating a placement group of specs for {int(waited)} seconds. specs={specs}. Check `ray status` "
            "and `ray list nodes` to see if you have enough resources, and make sure the IP addresses used by ray "
            "cluster are the same as VLLM_HOST_IP environment variable specified in each node if you are running on a multi-node.",
            prefix,
        )
        interval *= 2
    message = (
        f"Cannot provide a placement group of placement_group_specs={specs} within {int(PG_WAIT_TIMEOUT_S)} seconds. "
        "See `ray status` and `ray list nodes` to make sure the cluster has enough resources."
    )
    return _fail_traceback(tl, t + PG_WAIT_TIMEOUT_S, prefix, message, "ValueError")
