"""The snapshot checks (pod roles, Service routing, the headless Service) judged offline on typed snapshots of
what LWS makes of the reference manifest (lws_objects_testkit.py): the right deployment passes every check, and
each deployment wrong in one way fails exactly the check about it, naming the defect. The e2e self-tests
(test_selftest_wrong_service.py, test_selftest_wrong_pods.py, test_selftest_wrong_engine_command.py,
test_selftest_lws_features_e2e.py) do the same on the testbed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from lws_objects_testkit import GPU, NS, Made, P, made

from fixtures.cluster_views import EndpointSliceView, LwsView, PodView, ServiceView
from fixtures.plan import make_plan
from fixtures.settings import Settings
from fixtures.snapshot import Expectation, Snapshot
from suite.conformance.checks import headless_service, pod_roles, service_routing

EXPECT = make_plan(Settings()).expectation(NS)  # what the suite expects of the reference topology
CHECKS: list[Callable[[Snapshot, Expectation], list[str]]] = [
    *pod_roles.CHECKS,
    service_routing.service_endpoints_hold_exactly_the_ready_leaders,
]


def snapshot(m: Made) -> Snapshot:
    return Snapshot.from_json(m.lws, m.pods, m.statefulsets, m.service, m.leader_slices, m.nodes)


def failing(m: Made, expect: Expectation = EXPECT) -> dict[str, list[str]]:
    results = {check.__name__: check(snapshot(m), expect) for check in CHECKS}
    return {name: problems for name, problems in results.items() if problems}


def test_the_reference_as_lws_makes_it_passes_every_check() -> None:
    assert EXPECT.size == 2 and EXPECT.gpus_per_pod == 8, "the reference topology changed; adapt the builder"
    assert failing(made()) == {}
    assert failing(made(replicas=2), dataclasses.replace(EXPECT, replicas=2)) == {}


def _worker_env_after_user_env(m: Made) -> None:
    env = m.pod("vllm-0-1")["spec"]["containers"][0]["env"]
    env.append(env.pop(0))


def _leader_loses_role(m: Made) -> None:
    del m.pod("vllm-0")["metadata"]["labels"]["role"]


def _half_node_gpus(m: Made) -> None:
    for pod in m.pods:
        pod["spec"]["containers"][0]["resources"] = {"limits": {GPU: "4"}}
        pod["spec"]["nodeName"] = "gpu-node-0"


def _worker_not_owned(m: Made) -> None:
    m.statefulsets[1]["metadata"]["ownerReferences"] = []


def _not_available(m: Made) -> None:
    del m.lws["status"]["readyReplicas"]  # the API omits a zero
    m.lws["status"]["conditions"][0] |= {"status": "False", "reason": "GroupsProgressing"}


def _service_selects_every_pod(m: Made) -> None:
    m.service["spec"]["selector"] = {P + "name": "vllm"}
    worker = m.pod("vllm-0-1")
    m.leader_slices[0]["endpoints"].append(
        {"addresses": [worker["status"]["podIP"]], "targetRef": {"kind": "Pod", "name": "vllm-0-1"}}
    )


def _wrong_target_port(m: Made) -> None:
    m.leader_slices[0]["ports"][0]["port"] = 8000


def _leader_not_ready(m: Made) -> None:
    m.leader_slices[0]["endpoints"][0]["conditions"]["ready"] = False


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _worker_env_after_user_env,
            {"lws_environment_is_injected_first_with_exact_values": ["not first in order"]},
        ),
        (
            _leader_loses_role,
            {
                "leader_and_worker_labels_identify_their_group": [
                    "leader lacks its template label role=leader"
                ]
            },
        ),
        (
            _half_node_gpus,
            {
                "leader_and_workers_run_on_different_nodes": ["group 0: pods share a node", "gpu-node-0"],
                "pods_request_and_limit_their_gpus": [f"vllm-0: {GPU} request '4' / limit '4', expected 8"],
            },
        ),
        (
            _worker_not_owned,
            {"worker_statefulsets_are_owned_by_their_leader_pod": ["not controlled by leader pod vllm-0"]},
        ),
        (
            _not_available,
            {
                "lws_reports_available_with_all_replicas_ready": [
                    "LWS condition Available is {",
                    "readyReplicas=0, expected 1",
                ]
            },
        ),
        (
            _service_selects_every_pod,
            {
                "service_endpoints_hold_exactly_the_ready_leaders": [
                    "routes to non-leader pods ['vllm-0-1']",
                    "must select leaders only",
                ]
            },
        ),
        (
            _wrong_target_port,
            {"service_endpoints_hold_exactly_the_ready_leaders": ["endpoint ports [8000], expected [8080]"]},
        ),
        (
            _leader_not_ready,
            {
                "service_endpoints_hold_exactly_the_ready_leaders": [
                    "no ready endpoint for leader(s) ['vllm-0']"
                ]
            },
        ),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_a_deployment_wrong_in_one_way_fails_the_check_about_it(
    change: Callable[[Made], None], expected: dict[str, list[str]]
) -> None:
    m = made()
    change(m)
    found = failing(m)
    assert set(found) == set(expected), found
    for name, phrases in expected.items():
        text = "\n".join(found[name])
        assert all(phrase in text for phrase in phrases), text


def headless_view(m: Made) -> headless_service.HeadlessView:
    return headless_service.HeadlessView(
        LwsView.from_json(m.lws),
        ServiceView.from_json(m.headless),
        tuple(EndpointSliceView.from_json(s) for s in m.headless_slices),
        tuple(PodView.from_json(p) for p in m.pods),
    )


def test_the_headless_service_checks() -> None:
    m = made()
    assert [check(headless_view(m), EXPECT) for check in headless_service.CHECKS] == [[], []]
    assert headless_service.subdomain_policy(headless_view(m).lws) == "Shared"
    m.headless["spec"] = {"selector": {P + "name": "vllm", "role": "leader"}, "ports": [{"port": 8080}]}
    m.headless["metadata"]["ownerReferences"] = []
    problems = "\n".join(
        headless_service.lws_creates_a_headless_service_publishing_not_ready_pods(headless_view(m), EXPECT)
    )
    for phrase in (
        "expected 'None' (headless)",
        "publishNotReadyAddresses None, expected true",
        "is not controlled by LeaderWorkerSet",
    ):
        assert phrase in problems, problems
    del m.headless_slices[0]["endpoints"][0]["hostname"]
    m.pod("vllm-0-1")["spec"]["containers"][0]["env"][0]["value"] = "vllm-0.other.ns"
    problems = "\n".join(
        headless_service.leader_address_resolves_through_the_headless_service(headless_view(m), EXPECT)
    )
    assert "the endpoint of vllm-0 has hostname None, expected vllm-0" in problems, problems
    assert "vllm-0-1 has LWS_LEADER_ADDRESS 'vllm-0.other.ns', expected vllm-0.vllm.ns" in problems, problems
