"""Which workers join their leader on the simulator testbed, read from each worker's own command: the rendered
reference (Ray) and mp launches join; a worker naming another master address, port, rank or world does not."""

from __future__ import annotations

from typing import Any

import pytest

from manifests.render import Overrides, render
from testbed.bridge.engine_process import engine_argv
from testbed.bridge.group_join import worker_joins
from testbed.bridge.pods import Group, PodView, pod_view
from testbed.bridge.run import LogFiles

NS = "selftest"


def _pod(template: dict[str, Any], index: int, size: int, ip: str, command: str | None) -> PodView:
    """A pod as LWS makes it from the template: its DNS name under the headless Service and the LWS_* env."""
    container = dict(template["spec"]["containers"][0])
    if command is not None:
        container["command"] = ["sh", "-c", command]
    container["env"] = [
        *(container.get("env") or []),
        {"name": "LWS_LEADER_ADDRESS", "value": f"vllm-0.vllm.{NS}"},
        {"name": "LWS_GROUP_SIZE", "value": str(size)},
        {"name": "LWS_WORKER_INDEX", "value": str(index)},
    ]
    name = "vllm-0" if index == 0 else f"vllm-0-{index}"
    view = pod_view(
        {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{index}",
                "labels": {
                    "leaderworkerset.sigs.k8s.io/name": "vllm",
                    "leaderworkerset.sigs.k8s.io/group-key": "g0",
                    "leaderworkerset.sigs.k8s.io/worker-index": str(index),
                },
                "annotations": {"leaderworkerset.sigs.k8s.io/size": str(size)},
            },
            "spec": {"containers": [container], "hostname": name, "subdomain": "vllm"},
            "status": {"phase": "Running", "podIP": ip},
        }
    )
    assert view is not None
    return view


def _group(profile: str | None = None, worker_command: str | None = None, size: int = 2) -> Group:
    lws = render("tp8-pp2", Overrides(profile=profile))[0]
    template = lws["spec"]["leaderWorkerTemplate"]
    leader = _pod(template["leaderTemplate"], 0, size, "10.1.0.1", None)
    workers = []
    for index in range(1, size):
        command = worker_command
        if command is not None:
            command = command.replace("$(LWS_WORKER_INDEX)", str(index))
        workers.append(_pod(template["workerTemplate"], index, size, f"10.1.0.{index + 1}", command))
    return Group(leader, tuple(workers))


def _worker_command(profile: str | None) -> str:
    lws = render("tp8-pp2", Overrides(profile=profile))[0]
    return str(lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["command"][-1])


@pytest.mark.parametrize("profile", [None, "current", "mp"])
def test_the_rendered_workers_join_their_leader(profile: str | None) -> None:
    assert [j.problem for j in worker_joins(_group(profile))] == [None]


def test_a_ray_worker_dialling_another_address_does_not_join() -> None:
    wrong = _worker_command(None).replace("$(LWS_LEADER_ADDRESS)", "vllm-1.vllm.selftest")
    (join,) = worker_joins(_group(None, wrong))
    assert join.problem is not None and "dials vllm-1.vllm.selftest, which is not the leader" in join.problem


def test_a_ray_worker_naming_the_leader_by_another_of_its_names_joins() -> None:
    for name in ("10.1.0.1", "vllm-0.vllm", f"vllm-0.vllm.{NS}.svc.cluster.local"):
        command = _worker_command(None).replace("$(LWS_LEADER_ADDRESS)", name)
        assert [j.problem for j in worker_joins(_group(None, command))] == [None], name


def test_a_ray_worker_on_another_port_or_running_no_ray_does_not_join() -> None:
    other_port = _worker_command(None) + " --ray_port=6380"
    (join,) = worker_joins(_group(None, other_port))
    assert join.problem == "its Ray worker dials port 6380; the leader's Ray head listens on 6379"
    (idle,) = worker_joins(_group(None, "sleep infinity"))
    assert idle.problem is not None and "starts no Ray worker" in idle.problem


def test_a_plain_ray_start_is_read_as_a_ray_worker() -> None:
    good = "ray start --address=$(LWS_LEADER_ADDRESS):6379 --block"
    assert [j.problem for j in worker_joins(_group(None, good))] == [None]
    bad = "ray start --address=10.9.9.9:6379 --block"
    (join,) = worker_joins(_group(None, bad))
    assert join.problem is not None and "dials 10.9.9.9" in join.problem


def test_an_mp_worker_with_a_wrong_master_address_does_not_join() -> None:
    wrong = _worker_command("mp").replace("--master-addr $(LWS_LEADER_ADDRESS)", "--master-addr 10.9.9.9")
    (join,) = worker_joins(_group("mp", wrong))
    assert join.problem is not None and join.problem.startswith("its --master-addr is 10.9.9.9")


@pytest.mark.parametrize(
    ("rank", "why"),
    [
        ("0", "its --node-rank is 0; the group expects ranks 1..1 from its workers (rank 0 is the leader)"),
        ("2", "its --node-rank is 2; the group expects ranks 1..1 from its workers (rank 0 is the leader)"),
    ],
)
def test_an_mp_worker_with_a_rank_the_group_does_not_expect_does_not_join(rank: str, why: str) -> None:
    wrong = _worker_command("mp").replace("--node-rank $(LWS_WORKER_INDEX)", f"--node-rank {rank}")
    assert [j.problem for j in worker_joins(_group("mp", wrong))] == [why]


def test_two_mp_workers_with_the_same_rank_the_second_does_not_join() -> None:
    same = _worker_command("mp").replace("--node-rank $(LWS_WORKER_INDEX)", "--node-rank 1")
    same = same.replace("--nnodes $(LWS_GROUP_SIZE)", "--nnodes 3")
    problems = [j.problem for j in worker_joins(_group("mp", same, size=3))]
    assert problems == [None, "its --node-rank 1 is already taken by another worker of the group"]


def test_an_mp_worker_with_another_world_or_port_does_not_join() -> None:
    world = _worker_command("mp").replace("--nnodes $(LWS_GROUP_SIZE)", "--nnodes 4")
    (join,) = worker_joins(_group("mp", world))
    assert join.problem == ("its world (--nnodes 4, TP 8, PP 2) is not the leader's (--nnodes 2, TP 8, PP 2)")
    port = _worker_command("mp").replace("--master-port 29500", "--master-port 29511")
    (join,) = worker_joins(_group("mp", port))
    assert join.problem == "its --master-port is 29511; the leader's is 29500"


def test_the_engine_gets_only_the_workers_that_join(tmp_path: Any) -> None:
    """The engine's nodes and worker log files are those of the joining workers: a worker that does not join
    gets no lines from the leader's engine, and the engine waits for a node that never comes."""
    logs = LogFiles(tmp_path)
    good = engine_argv(_group(None), logs, 18000, 0.02)
    assert good.count("--node-ip") == 2 and good.count("--worker-log-file") == 1
    wrong = _worker_command(None).replace("$(LWS_LEADER_ADDRESS)", "vllm-1.vllm.selftest")
    argv = engine_argv(_group(None, wrong), logs, 18000, 0.02)
    assert argv.count("--node-ip") == 1 and "--worker-log-file" not in argv
    assert argv[argv.index("--ray-cluster-size") + 1] == "2"  # the leader still waits for two nodes
