"""Rules on what the leader's command launches: a `vllm serve` the lint can read, TP x PP against the group's
GPUs (or CPU pods), Ray's cluster size, and vLLM's own multi-node launch (mp)."""

from __future__ import annotations

from collections.abc import Iterator

from manifests.launch_command import expand_kubelet_vars
from manifests.lint.findings import Finding, LintContext, error, warning


def check_command(ctx: LintContext) -> Iterator[Finding]:
    launch = ctx.info.leader.launch
    if launch is None or launch.serve is None:
        yield warning(
            "command-unreadable",
            "found no `vllm serve` (or vllm.entrypoints.openai.api_server) in the leader's command, so TP, PP, "
            "port and version drift were not checked; start vLLM from the leader's command or args",
            ctx.lws_ref,
        )


def check_parallelism(ctx: LintContext) -> Iterator[Finding]:
    info = ctx.info
    if info.world_size is not None and info.group_gpus == 0 and info.world_size != info.group_devices:
        yield error(
            "parallelism-mismatch",
            f"TP {info.tp} x PP {info.pp} = {info.world_size} ranks, but the group's {info.size} pod(s) ask for no "
            f"GPUs, and vLLM's CPU build runs one rank per pod; make TP x PP equal the group size",
            ctx.lws_ref,
        )
    elif info.world_size is not None and info.group_gpus > 0 and info.world_size != info.group_gpus:
        worker = f" + {info.size - 1} worker(s) x {info.worker_gpus_per_pod}" if info.size > 1 else ""
        yield error(
            "parallelism-mismatch",
            f"TP {info.tp} x PP {info.pp} = {info.world_size} GPUs, but the group has {info.group_gpus} "
            f"(leader {info.gpus_per_pod}{worker}, size {info.size}); make TP x PP equal size x GPUs per pod, "
            "or vLLM waits for GPUs that are not there (or leaves some idle)",
            ctx.lws_ref,
        )
    declared = info.ray_cluster_size
    if declared is not None and declared.isdigit() and int(declared) != info.size:
        yield error(
            "ray-cluster-size",
            f"the leader waits for --ray_cluster_size={declared} Ray nodes, but the group has {info.size} pods; "
            "use --ray_cluster_size=$(LWS_GROUP_SIZE)",
            ctx.lws_ref,
        )


def check_mp_launch(ctx: LintContext) -> Iterator[Finding]:
    """vLLM's own multi-node launch (--distributed-executor-backend mp --nnodes N): every pod runs
    `vllm serve` with the same node count, world and master address; the leader is node rank 0 and serves,
    each worker is node rank $(LWS_WORKER_INDEX) and runs --headless."""
    info = ctx.info
    if info.launch_profile != "mp":
        return
    env = {"LWS_GROUP_SIZE": str(info.size)}
    leader = info.leader.launch.serve if info.leader.launch else None
    worker = info.worker.launch.serve if info.worker.launch and info.size > 1 else None
    assert leader is not None  # launch_profile is only "mp" for a leader that runs vllm serve
    nnodes = expand_kubelet_vars(leader.value("nnodes") or "1", env)
    if nnodes != str(info.size):
        yield error(
            "mp-nnodes",
            f"the leader's vllm serve says --nnodes {leader.value('nnodes') or 1}, but the group has {info.size} "
            "pods; vLLM waits for nodes that never come (or leaves pods idle): use --nnodes $(LWS_GROUP_SIZE)",
            ctx.lws_ref,
        )
    elif info.world_size is not None and info.world_size % info.size == 0:
        ranks = info.world_size // info.size
        if ranks != info.devices_per_pod:
            yield error(
                "mp-ranks-per-pod",
                f"TP {info.tp} x PP {info.pp} over {info.size} nodes is {ranks} ranks per pod, but each pod has "
                f"{info.devices_per_pod} device(s); make ranks per pod equal GPUs per pod",
                ctx.lws_ref,
            )
    # $(LWS_WORKER_INDEX) is 0 in the leader pod: vLLM's LWS page gives every pod the same command that way.
    if (leader.value("node-rank") or "0") not in ("0", "$(LWS_WORKER_INDEX)") or leader.has("headless"):
        yield error(
            "mp-leader-rank",
            "the leader must be --node-rank 0 (or $(LWS_WORKER_INDEX), which is 0 in the leader) and not --headless",
            ctx.lws_ref,
        )
    if info.size == 1:
        return
    if worker is None:
        yield error("mp-worker", "the worker runs no `vllm serve`; with the mp backend it must run "
                     "`vllm serve ... --headless --node-rank $(LWS_WORKER_INDEX)`", ctx.lws_ref)  # fmt: skip
        return
    if not worker.has("headless"):
        yield error("mp-worker", "the worker's vllm serve lacks --headless; it would start a second API server",
                     ctx.lws_ref)  # fmt: skip
    if worker.value("node-rank") != "$(LWS_WORKER_INDEX)":
        yield error(
            "mp-worker",
            f"the worker's --node-rank is {worker.value('node-rank')!r}; use $(LWS_WORKER_INDEX) so each worker "
            "takes its own rank",
            ctx.lws_ref,
        )
    addresses = {leader.value("master-addr"), worker.value("master-addr")}
    if len(addresses) != 1 or None in addresses:
        yield error(
            "mp-master-addr",
            f"leader and worker must name one master address (--master-addr), got {sorted(map(str, addresses))}; "
            "use --master-addr $(LWS_LEADER_ADDRESS) on both",
            ctx.lws_ref,
        )
    for flag in ("nnodes", "tensor-parallel-size", "pipeline-parallel-size", "master-port"):
        if leader.value(flag) != worker.value(flag):
            yield error(
                "mp-worker",
                f"leader and worker disagree on --{flag} ({leader.value(flag)} vs {worker.value(flag)}); "
                "every node must start the same world",
                ctx.lws_ref,
            )
