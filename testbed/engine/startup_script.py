"""The launch script's part of a start-up: `multi-node-serving.sh` starting Ray on the leader (`ray start
--head`) and on every worker (`ray start --block`), and the leader polling until the Ray cluster has its size.
A script the image does not have fails as bash fails, and `vllm serve` runs anyway (the manifest joins the
two commands with ";")."""

from __future__ import annotations

from dataclasses import dataclass

from testbed.engine.startup_timeline import StartupInputs, Timeline

RAY_PORT = 6379
SCRIPT_POLL_S = 5.0
SCRIPT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ScriptOutcome:
    t: float  # when the script is done and `vllm serve` starts
    uses_ray_script: bool
    ray_up: bool  # a Ray head is running (with all nodes, or fewer after the script's timeout)


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


def run_script(tl: Timeline, inp: StartupInputs, wall: str) -> ScriptOutcome:
    """The script's lines in the leader's and workers' logs, from t = 0."""
    t = 0.0
    nodes_present = len(inp.node_ips)
    uses_ray_script = inp.script is not None and "multi-node-serving.sh" in inp.script
    if inp.script is not None:
        available = inp.profile.multi_node_script
        if available is None or inp.script != available:
            # bash prints this and exits 127; the manifest joins with ";", so vllm serve still runs.
            for k in range(nodes_present):
                tl.raw(t, f"bash: {inp.script}: No such file or directory", pod=k)
            uses_ray_script = False
            t += 0.5
    if not uses_ray_script:
        return ScriptOutcome(t=t, uses_ray_script=False, ray_up=False)
    leader_ip = inp.node_ips[0]
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
            return ScriptOutcome(t=t + 1.0, uses_ray_script=True, ray_up=True)
        tl.raw(t + 0.5, f"Wait for all ray workers to be active. {active}/{size} is active")
        waited += SCRIPT_POLL_S
        t += SCRIPT_POLL_S
        if waited >= SCRIPT_TIMEOUT_S:
            tl.raw(t, "Waiting for all ray workers to be active timed out.")
            # the head is up, with fewer nodes than asked
            return ScriptOutcome(t=t + 0.5, uses_ray_script=True, ray_up=True)
