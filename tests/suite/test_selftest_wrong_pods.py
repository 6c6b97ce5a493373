"""Wrong pods fail the pod-role, LWS status and routing checks, each naming the defect: a group without its
worker, a leader without its role label, both pods packed onto one node, and the vLLM docs' manifest on a
current image (tests/suite/wrong_deployment_testkit.py says how the cases run)."""

from __future__ import annotations

import pytest
from wrong_deployment_testkit import (
    GPU,
    LEADER,
    LWS,
    PP,
    REFERENCE,
    SERVICE,
    TP,
    WORKER,
    P,
    WrongDeployment,
    assert_fails_exactly,
    container,
    failing_checks,
    lws_of,
    reference_objects,
    template,
)

from fixtures import deploy
from manifests.load import load_variant

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]


# pod roles --------------------------------------------------------------------------------------------------
def test_a_group_without_its_worker_never_serves_and_the_suite_says_why(wrong: WrongDeployment) -> None:
    """LWS size 1 while the command still says TP 8 x PP 2: the group is the leader alone, with 8 of the 16
    GPUs the world needs. Real vLLM waits for a Ray placement group that never comes and never serves; so must
    the testbed's simulator (it never invents a node). The pod-role checks name the missing worker, the LWS
    status and routing checks the leader that is never ready, and the log evidence quotes the wait."""
    objects = reference_objects()
    lws_of(objects)["spec"]["leaderWorkerTemplate"]["size"] = 1
    wrong.apply(objects)
    evidence = wrong.wait_starved()
    ready, _ = deploy.observe(wrong.kube, deploy.Deployment(wrong.ns.name, LWS, SERVICE, 1, 1))
    assert not ready, "a group without the GPUs its world needs became ready: the testbed invented a node"
    problems = evidence.problems(tp=8, pp=2, size=2)
    assert any("waits for nodes or GPUs the group does not have" in p for p in problems), problems
    expected = {
        "pods_are_named_by_group_and_worker_index": [f"missing pods ['{WORKER}']", "group(s) of size 2"],
        "size_and_leader_name_annotations_are_set": [f"{LEADER}: annotation {P}size='1', expected '2'"],
        "lws_environment_is_injected_first_with_exact_values": [
            f"{LEADER}: env LWS_GROUP_SIZE='1', expected '2'"
        ],
        "worker_statefulsets_are_owned_by_their_leader_pod": [f"worker StatefulSet {LEADER}"],
        "lws_reports_available_with_all_replicas_ready": ["readyReplicas=0, expected 1"],
        "service_endpoints_hold_exactly_the_ready_leaders": [f"no ready endpoint for leader(s) ['{LEADER}']"],
    }
    assert_fails_exactly(failing_checks(wrong.snapshot(), wrong.expect), expected)


def test_a_leader_without_its_role_label_fails_labels_and_routing(wrong: WrongDeployment) -> None:
    """The leader template lost `role: leader`: the pod-role check names the label, and the Service (which
    selects on it) has no leader to route to."""
    objects = reference_objects()
    del template(objects, "leader")["metadata"]["labels"]["role"]
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    wrong.wait_endpoints_converged()
    assert_fails_exactly(
        failing_checks(wrong.snapshot(), wrong.expect),
        {
            "leader_and_worker_labels_identify_their_group": [
                f"{LEADER}: leader lacks its template label role=leader"
            ],
            "service_endpoints_hold_exactly_the_ready_leaders": [
                f"has no ready endpoint for leader(s) ['{LEADER}']"
            ],
        },
    )


def test_half_node_pods_packed_onto_one_node_fail_placement_and_gpu_checks(wrong: WrongDeployment) -> None:
    """Each pod asks for 4 GPUs (and little CPU and memory), pinned to one node: both pods of the group land
    there, so TP 8 x PP 2 would run on 8 GPUs of one node instead of 16 on two."""
    objects = reference_objects()
    for role in ("leader", "worker"):
        container(objects, role)["resources"] = {
            "limits": {GPU: "4", "memory": "64Gi"},
            "requests": {"cpu": "8"},
        }
        template(objects, role)["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "gpu-node-0"}
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    wrong.wait_endpoints_converged()
    assert_fails_exactly(
        failing_checks(wrong.snapshot(), wrong.expect),
        {
            "leader_and_workers_run_on_different_nodes": ["group 0: pods share a node", "gpu-node-0"],
            "pods_request_and_limit_their_gpus": [
                f"{LEADER}: {GPU} request '4' / limit '4', expected 8",
                f"{WORKER}: {GPU} request '4' / limit '4', expected 8",
            ],
        },
    )


def test_the_docs_manifest_on_a_current_image_never_becomes_available(wrong: WrongDeployment) -> None:
    """The vLLM docs' manifest verbatim (`:latest`, the legacy script path, no Ray backend flag): the script is
    gone from current images and vLLM refuses a world size larger than a node, so the group never serves: its
    leader's container exits and LWS recreates the group, again and again. The LWS status and routing checks
    fail, and the log evidence names why."""
    wrong.apply(load_variant("seed").to_objects())
    evidence = wrong.wait_startup_failed()
    assert_fails_exactly(
        failing_checks(wrong.snapshot_of_a_whole_group(), wrong.expect),
        {
            "lws_reports_available_with_all_replicas_ready": [
                "LWS condition Available",
                "readyReplicas=0, expected 1",
            ],
            "service_endpoints_hold_exactly_the_ready_leaders": [
                f"has no ready endpoint for leader(s) ['{LEADER}']"
            ],
        },
    )
    problems = "\n".join(evidence.problems(tp=TP, pp=PP, size=wrong.expect.size))
    for phrase in ("multi-node-serving.sh: No such file or directory", "no server-start line"):
        assert phrase in problems, f"log evidence does not name {phrase!r}:\n{problems}"
