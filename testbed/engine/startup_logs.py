"""vLLM's start-up, as the pods' logs show it: a timeline of lines for the leader and each worker pod.

`plan_startup(inputs)` is pure: it returns the lines with their simulated times and which pod log each goes
to, and how the start-up ends (serving, or exiting with a code). `app.py` paces and prints them. It runs the
phases of vLLM's start-up in order, one method each (`_Startup`): the launch script (`startup_script.py`),
the API server, the executor, the engine's configuration, the ranks loading their weights, the KV cache,
the warm-up, serving. A failing phase ends the plan (`startup_timeline.py` writes the traceback).
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

from testbed.engine.hardware import GIB
from testbed.engine.startup_script import run_script
from testbed.engine.startup_timeline import (
    LEADER,
    LogEvent,
    StartupInputs,
    StartupPlan,
    Timeline,
    fail_placement_group,
    fail_traceback,
    render,
)

__all__ = ["LogEvent", "StartupInputs", "StartupPlan", "plan_startup", "render"]


MODEL_INIT_S = 2.5  # building the model on each rank, outside reading its weights
PYDANTIC_ERROR = "pydantic_core._pydantic_core.ValidationError: 1 validation error for ParallelConfig"
ROUTES = (
    ("/health", "GET"),
    ("/v1/models", "GET"),
    ("/version", "GET"),
    ("/v1/chat/completions", "POST"),
    ("/v1/completions", "POST"),
    ("/metrics", "GET"),
)


def plan_startup(inp: StartupInputs) -> StartupPlan:
    """The whole start-up of one LWS group's leader (and its workers' lines); see module docstring."""
    start = _Startup(inp)
    start.launch_script()
    start.api_server()
    for phase in (start.executor, start.engine_config):
        failed = phase()
        if failed is not None:
            return failed
    start.ranks_load_weights()
    failed = start.kv_cache()
    if failed is not None:
        return failed
    start.warm_up()
    return start.serve()


class _Startup:
    """One start-up being written: the inputs, the timeline so far, the clock `t`, and what earlier phases
    decided (Ray up, the executor backend, process prefixes). Each phase appends its lines and moves `t`."""

    def __init__(self, inp: StartupInputs) -> None:
        self.inp = inp
        self.prof = inp.profile
        self.rng = random.Random(inp.seed)
        self.tl = Timeline()
        self.world = inp.tp * inp.pp
        self.leader_ip = inp.node_ips[0]
        self.t = 0.0
        self.v1 = self.prof.has("v1_engine")
        self.uses_ray_script = False
        self.ray_up = False
        self.gpus_reachable = inp.gpus_per_node
        self.backend: str | None = None
        self.mp_multi = False
        self.api = self.core = ""
        self.api_pid = 1
        self.pids: dict[int, int] = {}
        self.load_seconds: dict[int, float] = {}

    # --- the launch script ---------------------------------------------------------------------------
    def launch_script(self) -> None:
        outcome = run_script(self.tl, self.inp, time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime()))
        self.t, self.uses_ray_script, self.ray_up = outcome.t, outcome.uses_ray_script, outcome.ray_up
        self.gpus_reachable = self.inp.gpus_per_node * (len(self.inp.node_ips) if self.ray_up else 1)

    # --- vllm serve: the API server process ---------------------------------------------------------
    def api_server(self) -> None:
        inp, prof, tl = self.inp, self.prof, self.tl
        self.api_pid = self.rng.randint(180, 420) if self.uses_ray_script else 1
        core_pid = self.api_pid + self.rng.randint(120, 260)
        api = f"(APIServer pid={self.api_pid}) " if prof.has("process_prefixes") else ""
        core = (
            f"({prof.engine_core_name} pid={core_pid}) " if (self.v1 and prof.has("process_prefixes")) else ""
        )
        self.api, self.core = api, core if self.v1 else api
        source = "api_server.py:1805" if self.v1 else "api_server.py:528"
        tl.log(self.t, "INFO", source, f"vLLM API server version {prof.version_text}", api)
        if prof.has("process_prefixes"):
            tl.log(self.t, "INFO", "utils.py:326", f"non-default args: {inp.non_default_args!r}", api)
        else:
            args = ", ".join(f"{k}={v!r}" for k, v in inp.non_default_args.items())
            tl.log(self.t, "INFO", "api_server.py:529", f"args: Namespace({args})", api)
        self.t += 2.0
        tl.log(self.t, "INFO", "config.py:1604", f"Using max model len {inp.max_model_len}", api)

    # --- which executor runs the ranks, and whether the world fits it --------------------------------
    def executor(self) -> StartupPlan | None:
        inp, prof, world, t = self.inp, self.prof, self.world, self.t
        backend = inp.executor_backend
        if backend is None and world <= inp.gpus_per_node:
            # the CPU build runs its worker in a process of its own even for one rank (multiproc executor)
            backend = "mp" if world > 1 or prof.cpu else "uni"
        self.mp_multi = backend == "mp" and inp.nnodes > 1 and prof.has("mp_multi_node")
        if world > inp.gpus_per_node and backend is None:
            error = prof.world_size_error(world, inp.gpus_per_node)
            if error is not None:
                return fail_traceback(self.tl, t + 0.5, self.api, error, PYDANTIC_ERROR)
            backend = "ray"
            source = "config.py:2433" if self.v1 else "config.py:1003"
            self.tl.log(t, "INFO", source, "Defaulting to use ray for distributed inference", self.api)
        elif (
            world > inp.gpus_per_node
            and backend == "mp"
            and not (self.mp_multi and inp.nnodes * inp.gpus_per_node >= world)
        ):
            error = prof.world_size_error(world, inp.gpus_per_node) or (
                f"please ensure that world_size ({world}) is less than than max local gpu count ({inp.gpus_per_node})"
            )
            return fail_traceback(self.tl, t + 0.5, self.api, error, PYDANTIC_ERROR)
        self.backend = backend
        if inp.chunked_prefill:
            self.tl.log(
                t,
                "INFO",
                "config.py:2752",
                f"Chunked prefill is enabled with max_num_batched_tokens={inp.max_num_batched_tokens}.",
                self.api,
            )
        return None

    # --- the engine core: its configuration, and whether every rank has a place -----------------------
    def engine_config(self) -> StartupPlan | None:
        inp, prof, core, v1 = self.inp, self.prof, self.core, self.v1
        self.t += 3.0
        t = self.t
        if v1 and core:
            self.tl.log(t, "INFO", "core.py:654", "Waiting for init message from front-end.", core)
        engine_line = "Initializing a V1 LLM engine" if v1 else "Initializing an LLM engine"
        self.tl.log(
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
        if self.backend == "ray" and self.world > 1:
            if not self.ray_up:
                self.tl.log(t + 0.5, "INFO", "worker.py:1841", "Started a local Ray instance.", core)
                self.gpus_reachable = inp.gpus_per_node
            if self.gpus_reachable < self.world:
                return fail_placement_group(self.tl, t + 1.0, core, self.world, self.leader_ip)
        elif self.mp_multi and len(inp.node_ips) < inp.nnodes:
            # torch's TCPStore on the leader waits for every node's workers to connect, then gives up
            joined = len(inp.node_ips) * inp.gpus_per_node
            return fail_traceback(
                self.tl,
                t + 600.0,
                core,
                f"Timed out after 601 seconds waiting for clients. {joined}/{self.world} clients joined.",
                "torch.distributed.DistStoreError",
            )
        return None

    # --- the ranks: where each prints, and each loading its weights ------------------------------------
    @property
    def _own_worker(self) -> bool:
        return self.v1 and self.backend == "mp"  # each rank in a worker process of its own

    @property
    def _unnested(self) -> bool:
        return self._own_worker and self.prof.has("worker_logs_v032")

    def rank_prefix(self, r: int, named: bool = True) -> str:
        inp, v1, core = self.inp, self.v1, self.core
        node = r // inp.gpus_per_node
        pp_rank, tp_rank = divmod(r, inp.tp)
        if (self.world == 1 and not self._own_worker) or (not v1 and r == 0):
            return core  # the only worker, or V0's driver worker, runs inside the engine process
        if self.backend == "ray" and self.world > 1:
            ip = inp.node_ips[node] if node < len(inp.node_ips) else inp.node_ips[-1]
            pid = self.pids[r]
            wrapper = (
                f"(RayWorkerWrapper pid={pid}, ip={ip}) " if node != 0 else f"(RayWorkerWrapper pid={pid}) "
            )
            return (core if v1 else "") + wrapper
        if not v1:
            return f"(VllmWorkerProcess pid={self.pids[r]}) "
        if not self.prof.has("process_prefixes"):
            return f"(VllmWorker rank={r} pid={self.pids[r]}) "
        # vLLM names a worker once its ranks are known: a suffix for each parallel size above 1
        name = "Worker" + (f"_PP{pp_rank}" if inp.pp > 1 else "") + (f"_TP{tp_rank}" if inp.tp > 1 else "")
        if self._unnested:
            return f"({name if named else 'Worker'} pid={self.pids[r]}) "
        # a headless node's workers print in their own pod, without the leader's engine-core prefix
        return (core if node == 0 else "") + f"({name} pid={self.pids[r]}) "

    def rank_pod(self, r: int) -> int:
        """Ray forwards every actor's output to the driver; multiprocessing workers print where they run."""
        return r // self.inp.gpus_per_node if self.mp_multi else LEADER

    def _rank_log(self, at: float, source: str, message: str, r: int, named: bool = True) -> None:
        self.tl.log(at, "INFO", source, message, self.rank_prefix(r, named), pod=self.rank_pod(r))

    def ranks_load_weights(self) -> None:
        inp, prof, world = self.inp, self.prof, self.world
        self.t += 5.0
        t = self.t
        ranks = range(world)
        self.pids = {r: self.rng.randint(900, 3000) for r in ranks}
        if self._unnested:
            local = min(world, inp.gpus_per_node)
            addr = str(
                inp.non_default_args.get("master_addr") or (self.leader_ip if self.mp_multi else "127.0.0.1")
            )
            self.tl.log(
                t - 4.0,
                "INFO",
                "multiproc_executor.py:153",
                f"DP group leader: node_rank=0, node_rank_within_dp=0, master_addr={addr}, mq_connect_ip={addr} "
                f"(local), world_size={world}, local_world_size={local}",
                self.core,
            )
        runner = (
            "cpu_model_runner.py:68"
            if prof.cpu
            else "gpu_model_runner.py:1892"
            if self.v1
            else "model_runner.py:1067"
        )
        # Per rank, the loader reads the weights ("Loading weights took"); the model runner's "Model loading
        # took" is that plus building the model (MODEL_INIT_S): the part is computed first, never subtracted.
        weights_seconds = {r: inp.weight_bytes / world / 0.55e9 * self.rng.uniform(0.95, 1.05) for r in ranks}
        self.load_seconds = {r: weights_seconds[r] + MODEL_INIT_S for r in ranks}
        for r in ranks:
            self._rank_assignment(t, r)
            if not prof.cpu:  # the CPU build's ranks talk over gloo
                nccl = "vLLM is using nccl==2.26.2" if self.v1 else "vLLM is using nccl==2.20.5"
                self._rank_log(t + 0.1, "pynccl.py:70", nccl, r)
            source = runner if prof.cpu else "gpu_model_runner.py:1843" if self.v1 else "model_runner.py:1056"
            self._rank_log(t + 0.2, source, f"Starting to load model {inp.model}...", r)
        t_loaded = t + 0.5 + inp.startup_seconds * 0.5
        gib = inp.weight_bytes / world / GIB
        for r in ranks:
            if prof.has("model_loading_line"):
                loader = "default_loader.py:501" if prof.cpu else "default_loader.py:262"
                self._rank_log(t_loaded, loader, f"Loading weights took {weights_seconds[r]:.2f} seconds", r)
            if prof.logs_model_size:
                self._rank_log(t_loaded + 0.01 * r, runner, prof.weights_line(gib, self.load_seconds[r]), r)
        if inp.dedup_ray_logs:
            self.tl.dedup_ray()
        self.t = t_loaded + 1.0

    def _rank_assignment(self, t: float, r: int) -> None:
        world = self.world
        pp_rank, tp_rank = divmod(r, self.inp.tp)
        if self.prof.has("worker_logs_v032"):
            self._rank_log(
                t,
                "parallel_state.py:2350",
                f"rank {r} in world size {world} is assigned as DP rank 0, PP rank {pp_rank}, PCP rank 0, "
                f"TP rank {tp_rank}, ETP rank 0, EP rank N/A, EPLB rank N/A",
                r,
                named=False,
            )
        elif self.prof.has("bracket_log_format"):
            self._rank_log(
                t,
                "parallel_state.py:1134",
                f"rank {r} in world size {world} is assigned as DP rank 0, PP rank {pp_rank}, TP rank {tp_rank}, EP rank {tp_rank}",
                r,
            )

    # --- the KV cache, sized from what is left of memory ----------------------------------------------
    def kv_cache(self) -> StartupPlan | None:
        inp, t, core, memory = self.inp, self.t, self.core, self.inp.memory
        if memory.error:
            exc = "torch.OutOfMemoryError" if "CUDA out of memory" in memory.error else "ValueError"
            return fail_traceback(self.tl, t, core, memory.error, exc)
        kv_gib = memory.kv_cache_bytes_per_gpu / GIB
        tokens = memory.kv_tokens
        concurrency = tokens / inp.max_model_len
        if self.v1 and self.prof.cpu:  # VLLM_CPU_KVCACHE_SPACE decides the cache; one line says it all
            for r in range(self.world):
                self._rank_log(
                    t, "cpu_worker.py:260", f"Explicitly set {kv_gib:.1f} GiB for KV cache on node 0.", r
                )
            self.tl.log(
                t + 0.2,
                "INFO",
                "kv_cache_utils.py:2327",
                f"CPU KV cache size: {tokens:,} tokens, Maximum concurrency for {inp.max_model_len} tokens per "
                f"request: {concurrency:.2f}x",
                core,
            )
        elif self.v1:
            for r in range(self.world):
                self._rank_log(t, "gpu_worker.py:276", f"Available KV cache memory: {kv_gib:.2f} GiB", r)
            self.tl.log(
                t + 0.2, "INFO", "kv_cache_utils.py:849", f"GPU KV cache size: {tokens:,} tokens", core
            )
            self.tl.log(
                t + 0.2,
                "INFO",
                "kv_cache_utils.py:853",
                f"Maximum concurrency for {inp.max_model_len:,} tokens per request: {concurrency:.2f}x",
                core,
            )
        else:
            cpu_blocks = int(4 * GIB // (memory.block_size * memory.kv_bytes_per_token_per_gpu))
            blocks = f"# GPU blocks: {memory.num_gpu_blocks}, # CPU blocks: {cpu_blocks}"
            self.tl.log(t, "INFO", "distributed_gpu_executor.py:57", blocks, core)
            self.tl.log(
                t,
                "INFO",
                "distributed_gpu_executor.py:61",
                f"Maximum concurrency for {inp.max_model_len} tokens per request: {concurrency:.2f}x",
                core,
            )
        return None

    # --- warm-up: CUDA graphs (not on the CPU build), then the engine's init summary ------------------
    def warm_up(self) -> None:
        self.t += self.inp.startup_seconds * 0.3
        t = self.t
        for r in (
            () if self.prof.cpu else range(self.world)
        ):  # the CPU build compiles; it captures no CUDA graphs
            graph = self.rng.randint(8, 20)
            msg = (
                f"Graph capturing finished in {graph} secs, took {self.rng.uniform(0.5, 1.5):.2f} GiB"
                if self.v1
                else f"Graph capturing finished in {graph} secs."
            )
            self._rank_log(t, "gpu_model_runner.py:2567" if self.v1 else "model_runner.py:1525", msg, r)
        if self.v1:
            total = sum(self.load_seconds.values()) / self.world + 40
            self.tl.log(
                t + 0.5,
                "INFO",
                "core.py:214",
                f"init engine (profile, create kv cache, warmup model) took {total:.2f} seconds",
                self.core,
            )

    # --- the API server up: routes, uvicorn ----------------------------------------------------------
    def serve(self) -> StartupPlan:
        inp, tl, api = self.inp, self.tl, self.api
        t = max(self.t + 1.0, inp.startup_seconds - 0.5)
        line = self.prof.api_server_line(inp.host, inp.port)
        if line:
            tl.log(t, "INFO", "api_server.py:1880", line, api)
            tl.log(t, "INFO", "launcher.py:29", "Available routes are:", api)
            for route, methods in ROUTES:
                tl.log(t, "INFO", "launcher.py:37", f"Route: {route}, Methods: {methods}", api)
        tl.raw(t + 0.2, f"INFO:     Started server process [{self.api_pid}]", prefix=api)
        tl.raw(t + 0.2, "INFO:     Waiting for application startup.", prefix=api)
        tl.raw(t + 0.3, "INFO:     Application startup complete.", prefix=api)
        if not self.prof.has("bracket_log_format"):
            uvicorn = f"INFO:     Uvicorn running on socket ('{inp.host}', {inp.port}) (Press CTRL+C to quit)"
            tl.raw(t + 0.3, uvicorn, prefix=api)
        return tl.plan(ready_at_s=t + 0.3)
