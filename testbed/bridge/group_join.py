"""Which workers of a group join its leader, read from each worker pod's own command as the worker would run it.

On a cluster a worker joins the group only through its own command: a Ray worker runs
`multi-node-serving.sh worker --ray_address=...` (or `ray start --address=HOST:PORT --block`) and joins the
head it names; an `mp` worker runs `vllm serve --headless --nnodes N --node-rank R --master-addr A
--master-port P` and joins the master it names, as rank R of N. A worker that names another address, another
port, a rank the group does not expect or another world size never reaches the leader: the leader waits for it
(Ray: "Wait for all ray workers to be active. 1/2 is active"; mp: torch's store waits for its clients) and never
serves. The simulator engine is therefore given only the workers that join (engine_process.py), so its log
lines, ranks and readiness follow from the workers' commands and not from the group's shape alone.

Pure: pod views in, one verdict per worker out.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from manifests.launch_command import RAY_DEFAULT_PORT
from testbed.bridge.pods import Group, PodView
from testbed.engine.launch import LaunchSpec, parse_launch

MP_DEFAULT_MASTER_PORT = 29501  # vLLM's ParallelConfig.master_port default


@dataclass(frozen=True)
class WorkerJoin:
    worker: PodView
    problem: str | None  # None: the worker joins its leader; else why it never reaches it

    @property
    def joins(self) -> bool:
        return self.problem is None


def launch_of(pod: PodView) -> LaunchSpec:
    """The pod's first container command, args and env, read as its launch."""
    assert pod.container is not None
    c = pod.container
    return parse_launch(c.command, c.args, c.env, image=c.image or None)


def leader_names(leader: PodView) -> frozenset[str]:
    """Every name a worker may dial the leader by: its pod DNS names (and `<hostname>.<subdomain>`, which the
    pod's DNS search path completes in its own namespace), the address LWS injects, and its pod IP."""
    names = set(leader.dns_names)
    if leader.hostname and leader.subdomain:
        names.add(f"{leader.hostname}.{leader.subdomain}")
    if leader.container is not None and leader.container.env.get("LWS_LEADER_ADDRESS"):
        names.add(leader.container.env["LWS_LEADER_ADDRESS"])
    if leader.pod_ip:
        names.add(leader.pod_ip)
    return frozenset(names)


def _ray_start_address(spec: LaunchSpec) -> str | None:
    """`ray start --address=HOST:PORT` (or `--address HOST:PORT`) among the command's other statements."""
    for statement in spec.other:
        try:
            words = shlex.split(statement)
        except ValueError:
            continue
        if "start" not in words or not any(w.rsplit("/", 1)[-1] == "ray" for w in words):
            continue
        for i, word in enumerate(words):
            if word.startswith("--address="):
                return word.split("=", 1)[1]
            if word == "--address" and i + 1 < len(words):
                return words[i + 1]
    return None


def _ray_target(spec: LaunchSpec) -> tuple[str, int] | None:
    """(host, port) the worker's Ray node dials, or None when its command starts no Ray worker."""
    script = spec.script
    if script is not None and script.role == "worker" and script.ray_address:
        return script.ray_address, script.ray_port  # the script dials `$ray_address:$ray_port`
    address = _ray_start_address(spec)
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    if not host:
        return address, RAY_DEFAULT_PORT
    return host, int(port) if port.isdigit() else -1


def _ray_problem(leader: LaunchSpec, worker: LaunchSpec, names: frozenset[str]) -> str | None:
    target = _ray_target(worker)
    if target is None:
        return "its command starts no Ray worker (no `multi-node-serving.sh worker --ray_address=...`)"
    host, port = target
    if host not in names:
        return f"its Ray worker dials {host}, which is not the leader ({', '.join(sorted(names))})"
    head_port = leader.script.ray_port if leader.script is not None else RAY_DEFAULT_PORT
    if port != head_port:
        return f"its Ray worker dials port {port}; the leader's Ray head listens on {head_port}"
    return None


def _mp_world(spec: LaunchSpec) -> tuple[int | None, int, int]:
    """(nnodes, tensor-parallel size, pipeline-parallel size) as the command gives them."""
    nnodes = spec.serve.int_value("nnodes") if spec.serve is not None else None
    return nnodes, spec.tensor_parallel_size, spec.pipeline_parallel_size


def _mp_problem(leader: LaunchSpec, worker: LaunchSpec, names: frozenset[str], taken: set[int]) -> str | None:
    serve = worker.serve
    if serve is None or not serve.model:
        return "its command runs no `vllm serve` (the mp launch's worker runs `vllm serve --headless`)"
    leader_nnodes, leader_tp, leader_pp = _mp_world(leader)
    nnodes, tp, pp = _mp_world(worker)
    if (nnodes, tp, pp) != (leader_nnodes, leader_tp, leader_pp):
        return (
            f"its world (--nnodes {nnodes}, TP {tp}, PP {pp}) is not the leader's "
            f"(--nnodes {leader_nnodes}, TP {leader_tp}, PP {leader_pp})"
        )
    address = serve.value("master-addr")
    if address not in names:
        return f"its --master-addr is {address or 'not given'}, which is not the leader ({', '.join(sorted(names))})"
    assert leader.serve is not None
    leader_port = leader.serve.int_value("master-port") or MP_DEFAULT_MASTER_PORT
    port = serve.int_value("master-port") or MP_DEFAULT_MASTER_PORT
    if port != leader_port:
        return f"its --master-port is {port}; the leader's is {leader_port}"
    if leader_nnodes is None or leader_nnodes < 2:
        return f"the leader's --nnodes is {leader_nnodes or 'not given'}: it waits for no other node"
    rank = serve.int_value("node-rank")
    if rank is None or not 1 <= rank < leader_nnodes:
        return (
            f"its --node-rank is {serve.value('node-rank') or 'not given'}; the group expects ranks "
            f"1..{leader_nnodes - 1} from its workers (rank 0 is the leader)"
        )
    if rank in taken:
        return f"its --node-rank {rank} is already taken by another worker of the group"
    taken.add(rank)
    return None


def _is_mp(leader: LaunchSpec) -> bool:
    serve = leader.serve
    if serve is None or leader.script is not None:
        return False
    return serve.value("distributed-executor-backend") == "mp" or (serve.int_value("nnodes") or 1) > 1


def worker_joins(group: Group) -> list[WorkerJoin]:
    """For each worker of the group, in worker-index order: whether its own command joins the leader."""
    leader = group.leader
    if leader is None or leader.container is None:
        return [WorkerJoin(w, "the group has no leader to join") for w in group.workers]
    leader_spec = launch_of(leader)
    names = leader_names(leader)
    mp = _is_mp(leader_spec)
    ray = leader_spec.script is not None and leader_spec.script.role == "leader"
    if not (mp or ray):  # a launch the testbed cannot read (a custom Ray script): every worker is counted
        return [WorkerJoin(w, None) for w in group.workers]
    taken: set[int] = set()
    joins = []
    for worker in group.workers:
        if worker.container is None:
            joins.append(WorkerJoin(worker, "the pod has no container"))
            continue
        spec = launch_of(worker)
        problem = (
            _mp_problem(leader_spec, spec, names, taken) if mp else _ray_problem(leader_spec, spec, names)
        )
        joins.append(WorkerJoin(worker, problem))
    return joins
