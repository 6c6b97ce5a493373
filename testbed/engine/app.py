"""One engine process: options -> start-up logs (paced) -> the API server, or vLLM's failure and exit code.

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 vLLM failed (start-up failure as vLLM reports it, or the
engine died while serving); 2 bad command line (one line on stderr, never a traceback).
The API port is bound only once the simulated start-up is over, as vLLM listens only after its engine
is up; the optional status file says what the process is doing meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from testbed.engine.cli import EngineOptions, UsageError, parse_args
from testbed.engine.hardware import gpu_by_name, interconnect_by_name
from testbed.engine.logsink import LogSink
from testbed.engine.metrics import EngineMetrics
from testbed.engine.model_specs import ModelSpec, model_by_name
from testbed.engine.perf_model import PerfModel, SchedulerConfig, Topology
from testbed.engine.prefix_cache import CPU_BLOCK_SIZE, DEFAULT_BLOCK_SIZE
from testbed.engine.profiles import Profile, resolve_profile
from testbed.engine.runner import EngineRunner
from testbed.engine.scheduler import EngineCore
from testbed.engine.server import ServeConfig, SimServer
from testbed.engine.signals import PEER_LOST_SIGNAL
from testbed.engine.startup_logs import LogEvent, StartupInputs, StartupPlan, plan_startup, render

EXIT_STOPPED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FATAL_GRACE_S = 1.0
# SIGTERM with streams in flight: how long new requests are still taken (and refused with 500) before the
# listener closes; measured on vLLM 0.32's CPU build, about 0.2 s (SimServer.shut_down)
SHUTDOWN_REFUSING_S = 0.2
STATS_INTERVAL_S = 10.0


@dataclass(frozen=True)
class EngineSetup:
    """Everything derived from the options before anything runs (so bad input fails fast)."""

    options: EngineOptions
    profile: Profile
    spec: ModelSpec
    perf: PerfModel
    node_ips: tuple[str, ...]
    startup: StartupInputs


def build_setup(opts: EngineOptions) -> EngineSetup:
    """Resolve names and tables; ValueError names what is wrong and the valid choices."""
    profile = resolve_profile(profile=opts.profile, image=opts.image, log_format=opts.log_format)
    spec = _model_spec(opts)
    topo = _topology(opts)
    node_ips = _node_ips(opts)
    max_len = opts.max_model_len or spec.max_model_len
    if max_len > spec.max_model_len:
        raise ValueError(
            f"--max-model-len {max_len} is larger than the model's maximum context length {spec.max_model_len}"
        )
    chunked = (
        profile.chunked_prefill_default(max_len, opts.pipeline_parallel_size)
        if opts.enable_chunked_prefill is None
        else opts.enable_chunked_prefill
    )
    sched = SchedulerConfig(
        max_num_seqs=opts.max_num_seqs,
        max_num_batched_tokens=opts.max_num_batched_tokens,
        enable_chunked_prefill=chunked,
        gpu_memory_utilization=opts.gpu_memory_utilization,
        max_model_len=max_len,
        block_size=block_size(opts, profile),
        per_stage_schedulers=profile.per_stage_schedulers,
        chunked_prefill_budget=profile.chunked_prefill_budget,
    )
    perf = PerfModel(model=spec, topology=topo, scheduler=sched, host=profile.overheads())
    if not chunked and perf.max_num_batched_tokens < max_len:
        raise ValueError(
            f"--max-num-batched-tokens ({perf.max_num_batched_tokens}) is smaller than --max-model-len ({max_len}) "
            "without chunked prefill; raise it or pass --enable-chunked-prefill"
        )
    startup = _startup_inputs(opts, profile, spec, perf, node_ips)
    return EngineSetup(
        options=opts, profile=profile, spec=spec, perf=perf, node_ips=node_ips, startup=startup
    )


def block_size(opts: EngineOptions, profile: Profile) -> int:
    """The KV block size the command gives, else vLLM's default: 16, and 128 on the CPU build when the
    command does not set one (vllm@v0.32.0:vllm/config/cache.py ``DEFAULT_BLOCK_SIZE``;
    vllm/platforms/cpu.py ``check_and_update_config``: ``cache_config.block_size = 128``). The prefix
    cache counts its hits in these blocks (prefix_cache.py)."""
    if opts.block_size is not None:
        return opts.block_size
    return CPU_BLOCK_SIZE if profile.cpu else DEFAULT_BLOCK_SIZE


def _model_spec(opts: EngineOptions) -> ModelSpec:
    """The model's shape; an FP8 quantization of a model published in 16 bits has one byte per weight."""
    spec = model_by_name(opts.model)
    if (
        opts.quantization
        and opts.quantization.lower() in ("fp8", "fbgemm_fp8", "modelopt")
        and not spec.is_fp8
    ):
        spec = dataclasses.replace(spec, weight_bytes_per_param=1)
    return spec


def _topology(opts: EngineOptions) -> Topology:
    return Topology(
        gpu=gpu_by_name(opts.gpu),
        tp=opts.tensor_parallel_size,
        pp=opts.pipeline_parallel_size,
        gpus_per_node=opts.gpus_per_node,
        interconnect=interconnect_by_name(opts.interconnect),
    )


def _node_ips(opts: EngineOptions) -> tuple[str, ...]:
    """One address per node of the group."""
    if opts.node_ips:
        # The nodes the group really has (the bridge passes one address per running pod): never more. With
        # fewer than the world needs, the start-up waits as vLLM waits (startup_logs.py) and never serves.
        ips = list(opts.node_ips)
        nodes = opts.nodes if opts.nodes is not None else len(ips)
        ips += [ips[-1]] * max(0, nodes - len(ips))  # --nodes N with fewer addresses: the last node's
    else:
        # Run alone (`python -m testbed.engine`), the simulator is a whole group on documentation addresses.
        world = opts.tensor_parallel_size * opts.pipeline_parallel_size
        needed = math.ceil(world / opts.gpus_per_node)
        nodes = opts.nodes if opts.nodes is not None else max(needed, opts.ray_cluster_size or 1)
        ips = [f"192.0.2.{k + 1}" for k in range(nodes)]
    return tuple(ips[:nodes])


def _startup_inputs(
    opts: EngineOptions, profile: Profile, spec: ModelSpec, perf: PerfModel, node_ips: tuple[str, ...]
) -> StartupInputs:
    """What the simulated start-up logs are made of."""
    return StartupInputs(
        profile=profile,
        model=opts.model,
        served_model_name=opts.served_model_names[0],
        tp=opts.tensor_parallel_size,
        pp=opts.pipeline_parallel_size,
        gpus_per_node=opts.gpus_per_node,
        node_ips=node_ips,
        memory=perf.memory_plan(),
        max_model_len=perf.max_model_len,
        max_num_seqs=opts.max_num_seqs,
        max_num_batched_tokens=perf.max_num_batched_tokens,
        chunked_prefill=perf.scheduler.enable_chunked_prefill,
        weight_bytes=spec.weight_bytes(),
        host=opts.advertised_host,
        port=opts.advertised_port,
        startup_seconds=opts.startup_seconds,
        seed=opts.seed,
        script=opts.launch_script,
        ray_cluster_size=opts.ray_cluster_size,
        executor_backend=opts.executor_backend,
        nnodes=opts.nnodes,
        non_default_args=opts.non_default_args,
        dedup_ray_logs=opts.ray_dedup_logs,
    )


def create_server(setup: EngineSetup, on_fatal: Callable[[str], None] | None = None) -> SimServer:
    """The engine (scheduler + pacing + metrics) behind the HTTP routes, for one process or one test."""
    o = setup.options
    core = EngineCore(setup.perf)
    metrics = EngineMetrics(
        setup.profile,
        o.served_model_names[0],
        lambda: (core.num_running, core.num_waiting, core.kv_usage, core.preemptions),
    )
    config = ServeConfig(
        served_model_names=o.served_model_names,
        model_path=o.model,
        max_model_len=setup.perf.max_model_len,
        seed=o.seed,
        profile=setup.profile,
        api_key=o.api_key,
        enable_test_hooks=o.enable_test_hooks,
        force_include_usage=o.force_include_usage,
        fail_after_requests=o.fail_after_requests,
        break_answer=o.break_answer,
        execute_model_timeout_s=o.execute_model_timeout_s,
    )
    return SimServer(
        config, lambda on_token: EngineRunner(core, o.time_scale, on_token), metrics, on_fatal=on_fatal
    )


class StatusFile:
    """Atomically rewritten JSON: {"state", "message", "pid", "port", "exit_code"} (for the bridge)."""

    def __init__(self, path: Path | None, port: int) -> None:
        self.path = path
        self.port = port

    def set(self, state: str, message: str = "", exit_code: int | None = None) -> None:
        if self.path is None:
            return
        body = {
            "state": state,
            "message": message,
            "pid": os.getpid(),
            "port": self.port,
            "exit_code": exit_code,
            "time": time.time(),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(body), encoding="utf-8")
        tmp.replace(self.path)


class EngineProcess:
    def __init__(self, setup: EngineSetup) -> None:
        self.setup = setup
        o = setup.options
        self.scale = o.time_scale
        self.sink = LogSink(leader_file=o.log_file, worker_files=list(o.worker_log_files), echo=not o.quiet)
        self.status = StatusFile(o.status_file, o.port)
        self.stop = asyncio.Event()
        self.exit_code = EXIT_STOPPED
        self.api_prefix = ""
        self.server: SimServer | None = None
        self.peer_lost: str | None = None
        self.signalled = False  # SIGTERM or SIGINT arrived (not the engine's own death)

    def log(self, e: LogEvent) -> None:
        self.sink.write(e.pod, render(e, self.setup.profile))

    def vllm_line(self, level: str, source: str, message: str, prefix: str | None = None) -> None:
        self.log(
            LogEvent(
                at_s=0,
                pod=0,
                message=message,
                level=level,
                source=source,
                prefix=self.api_prefix if prefix is None else prefix,
            )
        )

    async def _pace(self, plan: StartupPlan) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for e in plan.events:
            if self.scale > 0:
                delay = t0 + e.at_s * self.scale - loop.time()
                if delay > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), delay)
                    if self.stop.is_set():
                        return
            self.log(e)
        if plan.exit_at_s is not None and self.scale > 0:
            delay = t0 + plan.exit_at_s * self.scale - loop.time()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(PEER_LOST_SIGNAL, self._lose_peer)
        setup = self.setup
        for flag in setup.options.ignored_flags:
            print(f"warning: ignoring vLLM flag the simulator does not model: {flag}", file=sys.stderr)
        self.status.set("starting", "simulated vLLM start-up")
        plan = plan_startup(setup.startup)
        await self._pace(plan)
        if self.peer_lost is not None:  # a node went away during start-up: vLLM's start-up fails
            self.vllm_line("ERROR", "core.py:710", f"EngineCore failed to start: {self.peer_lost}")
            self.status.set("failed", f"start-up failed: {self.peer_lost}", EXIT_FAILED)
            return EXIT_FAILED
        if self.stop.is_set():
            self.status.set("stopped", "stopped during start-up", EXIT_STOPPED)
            return EXIT_STOPPED
        if plan.failed:
            self.status.set("failed", plan.failure or "vLLM start-up failed", plan.exit_code)
            return plan.exit_code or EXIT_FAILED
        if setup.profile.has("process_prefixes"):
            api_pid = next((e.prefix for e in plan.events if e.prefix.startswith("(APIServer")), "")
            self.api_prefix = api_pid
        return await self._serve()

    async def _serve(self) -> int:
        setup, o = self.setup, self.setup.options
        server = create_server(setup, on_fatal=self._on_fatal)
        self.server = server
        if self.peer_lost is not None:  # lost between the end of start-up and now
            server.lose_peer(self.peer_lost)
        core, metrics = server.runner.core, server.metrics
        app = server.app()
        if not o.disable_access_log:
            app.middlewares.append(self._access_log_middleware())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, o.host, o.port, reuse_address=True)
            await site.start()
        except OSError as exc:
            self.vllm_line(
                "ERROR",
                "api_server.py:1880",
                f"OSError: [Errno {exc.errno}] {exc.strerror}: could not bind {o.host}:{o.port}",
            )
            self.status.set("failed", f"could not bind {o.host}:{o.port}: {exc.strerror}", EXIT_FAILED)
            await runner.cleanup()
            return EXIT_FAILED
        bound = runner.addresses[0][1] if runner.addresses else o.port
        self.status.port = bound
        self.status.set("ready", f"serving {o.served_model_names[0]} on {o.host}:{bound}")
        stats = asyncio.get_running_loop().create_task(self._stats(core, metrics))
        await self.stop.wait()
        stats.cancel()
        if self.signalled and server.dead is None:
            await self._shut_down(server, site)
        for line in (
            "INFO:     Shutting down",
            "INFO:     Waiting for application shutdown.",
            "INFO:     Application shutdown complete.",
        ):
            self.sink.write(0, self.api_prefix + line)
        await runner.cleanup()
        pid = self.api_prefix.split("pid=")[-1].rstrip(") ") if self.api_prefix else "1"
        self.sink.write(0, f"{self.api_prefix}INFO:     Finished server process [{pid}]")
        died = self.exit_code or self.peer_lost is not None
        state = "failed" if died else "stopped"
        self.status.set(state, "engine died" if died else "stopped by signal", self.exit_code)
        return self.exit_code

    def _access_log_middleware(self):  # type: ignore[no-untyped-def]
        @web.middleware
        async def access_log(request: web.Request, handler):  # type: ignore[no-untyped-def]
            response = await handler(request)
            peer = request.transport.get_extra_info("peername") if request.transport else None
            who = f"{peer[0]}:{peer[1]}" if peer else "-"
            self.sink.write(
                0,
                f'{self.api_prefix}INFO:     {who} - "{request.method} {request.path_qs} HTTP/{request.version.major}.{request.version.minor}" {response.status} {response.reason}',
            )
            return response

        return access_log

    def _on_signal(self) -> None:
        self.signalled = True
        self.stop.set()

    async def _shut_down(self, server: SimServer, site: web.TCPSite) -> None:
        """SIGTERM while serving, as vLLM 0.32 takes it (SimServer.shut_down): with no stream in flight the
        server shuts down and exits 0; with streams in flight they never end, requests of the first moments get
        500, then the listener closes and the process waits, until SIGKILL (a kubelet's, after the pod's
        termination grace period)."""
        hanging = server.shut_down()
        self.vllm_line("INFO", "launcher.py:117", "Shutting down FastAPI HTTP server.")
        if not hanging:
            return
        # modelled duration (how long vLLM still takes requests), not a synchronisation
        await asyncio.sleep(SHUTDOWN_REFUSING_S)
        await site.stop()
        self.sink.write(
            0, f"{self.api_prefix}INFO:     Waiting for connections to close. (CTRL+C to force quit)"
        )
        self.status.set(
            "stopping", f"SIGTERM with {hanging} stream(s) in flight: they never end; until SIGKILL"
        )
        await asyncio.Event().wait()  # vLLM 0.32 waits for its in-flight streams, which never end

    def _lose_peer(self) -> None:
        """A node of the group went away (its pod deleted, its container crashed): the ranks there are gone.
        As vLLM's, the engine notices only when a model step needs them: that step waits until the
        execute-model timeout, then the engine core dies, every request fails and the server exits (vLLM's
        API server ends itself once its engine is dead, and the container with it); SimServer.lose_peer. The
        bridge signals it (PEER_LOST_SIGNAL); a single-node engine has no peer to lose."""
        reason = "a node of the group went away: its ranks are gone (their worker processes died)"
        if self.peer_lost is not None:
            return
        self.peer_lost = reason
        if self.server is not None:
            self.server.lose_peer(reason)
            # still serving as far as a client can tell; the status says the engine took the signal
            self.status.set("ready", f"serving, but {reason}; the next model step waits for it")
        else:
            self.stop.set()  # ends the paced start-up; run() reports the failure

    def _on_fatal(self, reason: str) -> None:
        core_prefix = (
            f"({self.setup.profile.engine_core_name} pid={os.getpid()}) "
            if self.setup.profile.has("process_prefixes")
            else ""
        )
        self.vllm_line("ERROR", "core.py:710", "EngineCore encountered a fatal error.", core_prefix)
        self.sink.write(0, f"{core_prefix}Traceback (most recent call last):")
        self.sink.write(0, f"{core_prefix}RuntimeError: {reason}")
        self.vllm_line("ERROR", "async_llm.py:485", "AsyncLLM output_handler failed.")
        self.vllm_line(
            "ERROR",
            "async_llm.py:485",
            "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
        )
        # vLLM's API server stops itself once its engine is dead; after a lost node that ends in exit 0
        # (measured on the CPU build, tests/testbed/engine/test_fidelity_peer_loss.py)
        code = EXIT_STOPPED if self.peer_lost is not None else EXIT_FAILED
        self.status.set("failed", f"engine died: {reason}", code)
        self.exit_code = code
        asyncio.get_running_loop().call_later(FATAL_GRACE_S, self.stop.set)

    async def _stats(self, core: EngineCore, metrics: EngineMetrics) -> None:
        """vLLM's periodic throughput line, every 10 s while there is traffic."""
        last_p, last_g = metrics.prompt_tokens, metrics.generation_tokens
        v1 = self.setup.profile.has("v1_engine")
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            p, g = metrics.prompt_tokens, metrics.generation_tokens
            if p == last_p and g == last_g and core.num_running == 0:
                continue
            pr, gr = (p - last_p) / STATS_INTERVAL_S, (g - last_g) / STATS_INTERVAL_S
            last_p, last_g = p, g
            kv = core.kv_usage * 100
            if v1:
                msg = (
                    f"Engine 000: Avg prompt throughput: {pr:.1f} tokens/s, Avg generation throughput: {gr:.1f} tokens/s, "
                    f"Running: {core.num_running} reqs, Waiting: {core.num_waiting} reqs, GPU KV cache usage: {kv:.1f}%, Prefix cache hit rate: 0.0%"
                )
                self.vllm_line("INFO", "loggers.py:123", msg)
            else:
                msg = (
                    f"Avg prompt throughput: {pr:.1f} tokens/s, Avg generation throughput: {gr:.1f} tokens/s, Running: {core.num_running} reqs, "
                    f"Swapped: 0 reqs, Pending: {core.num_waiting} reqs, GPU KV cache usage: {kv:.1f}%, CPU KV cache usage: 0.0%."
                )
                self.vllm_line("INFO", "metrics.py:351", msg)

    def close(self) -> None:
        self.sink.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
        setup = build_setup(opts)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        process = EngineProcess(setup)
    except OSError as exc:
        print(f"error: cannot open a log or status file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(process.run())
    except KeyboardInterrupt:
        return EXIT_STOPPED
    finally:
        process.close()
