"""Every conformance check can fail: deliberately wrong deployments on the testbed, judged by the suite's own
check functions against the REFERENCE plan's expectation (what `nox -s conformance` expects), must fail the
right check, with a message that names the defect, and leave the other checks passing.

Each case builds its wrong manifest from the reference (LWS's e2e style: a builder, then one change), deploys it
with the suite's fixtures into a namespace of its own, waits until the deployment has settled (ready, or its
engine's start-up has ended), takes a Snapshot with fixtures.snapshot.take, and runs the checks. Every case
holds GPUs of the testbed, so they share the `testbed-gpus` xdist group and delete their namespace (waiting
for its pods to go) before the next one starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fixtures import deploy, namespace
from fixtures.kube import ClusterTarget, Kube, KubectlError, connect
from fixtures.plan import make_plan
from fixtures.redact import redact_text
from fixtures.service_forward import ServicePortForward
from fixtures.settings import Settings
from fixtures.snapshot import Expectation, Snapshot, take
from fixtures.timeouts import Timeouts
from manifests.load import load_variant
from manifests.render import render
from plumbing.wait import NotYet, wait_for
from suite.conformance.checks import pod_roles, service_routing
from suite.conformance.checks.log_evidence import Evidence, gather
from testbed.cluster import TestbedInfo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]

TIMEOUTS = Timeouts()
SETTLE_S = 120.0  # a wrong deployment on the testbed settles in seconds; this only bounds a broken one
REFERENCE = make_plan(Settings())  # the reference topology tp8-pp2, as the suite plans it by default
LWS, SERVICE = REFERENCE.info.lws_name, str(REFERENCE.info.service_name)
TP, PP = int(REFERENCE.info.tp or 0), int(REFERENCE.info.pp or 0)
LEADER, WORKER = f"{LWS}-0", f"{LWS}-0-1"
GPU = "nvidia.com/gpu"
P = "leaderworkerset.sigs.k8s.io/"

SNAPSHOT_CHECKS: list[Callable[[Snapshot, Expectation], list[str]]] = [
    *pod_roles.CHECKS,
    service_routing.service_endpoints_hold_exactly_the_ready_leaders,
]


# builders -------------------------------------------------------------------------------------------------
def reference_objects() -> list[dict[str, Any]]:
    """The LWS and its leader Service exactly as the suite renders the reference topology."""
    return render(REFERENCE.topology or "tp8-pp2")


def lws_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "LeaderWorkerSet")


def service_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Service")


def template(objects: list[dict[str, Any]], role: str) -> Any:
    """The leader's or worker's pod template, to change in place."""
    return lws_of(objects)["spec"]["leaderWorkerTemplate"][f"{role}Template"]


def container(objects: list[dict[str, Any]], role: str) -> Any:
    return template(objects, role)["spec"]["containers"][0]


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or []
    )


def replace_in_leader_command(objects: list[dict[str, Any]], old: str, new: str) -> None:
    command = container(objects, "leader")["command"]
    assert old in command[-1], f"the reference leader command changed; {old!r} not in {command[-1]!r}"
    command[-1] = command[-1].replace(old, new)


# fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kube(testbed: TestbedInfo) -> Kube:
    return connect(ClusterTarget(testbed.kubeconfig, None, False, testbed.kubectl), TIMEOUTS.api)


class WrongDeployment:
    """One namespace of the testbed holding one deliberately wrong deployment."""

    def __init__(self, kube: Kube, case: str) -> None:
        self.kube = kube
        self.run_id = f"selftest{uuid.uuid4().hex[:6]}"
        self.ns = namespace.create(kube, f"selftest-{case}-{self.run_id[-6:]}"[:63], self.run_id, TIMEOUTS)
        self.expect = REFERENCE.expectation(self.ns.name)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        deploy.apply(self.kube, deploy.label_objects(objects, self.run_id, self.ns.name), self.ns.name)

    def wait_ready(self, size: int) -> None:
        """Settled: the wrong group as deployed (its own size) is Available and every pod Ready."""
        deploy.wait_ready(self.kube, deploy.Deployment(self.ns.name, LWS, SERVICE, size, 1), SETTLE_S, None)

    def wait_starved(self) -> Evidence:
        """Settled: the leader's engine logs that it waits for nodes or GPUs the group lacks."""

        def starved() -> Evidence:
            evidence = self.evidence_so_far()
            if evidence.starved is None:
                raise NotYet(
                    f"{LEADER} has not logged a wait for resources yet; errors so far: {evidence.errors[:2]}"
                )
            return evidence

        return wait_for(
            starved, what=f"the engine in {LEADER} to wait for resources", timeout=SETTLE_S, interval=0.5
        )

    def wait_startup_failed(self) -> Evidence:
        """Settled: the leader's engine ended its start-up with a traceback (it will never serve)."""

        def failed() -> Evidence:
            evidence = self.evidence_so_far()
            if not any("Traceback" in line for line in evidence.errors):
                raise NotYet(f"{LEADER} has logged no traceback yet; errors so far: {evidence.errors[:2]}")
            return evidence

        return wait_for(
            failed, what=f"the engine start-up in {LEADER} to fail", timeout=SETTLE_S, interval=0.5
        )

    def wait_endpoints_converged(self) -> None:
        """Settled: the EndpointSlices show what the Service's current selector and targetPort imply (the
        ready pods it selects, on its targetPort), whatever the check under test makes of that."""

        def converged() -> None:
            service = self.kube.get_object("v1", "services", SERVICE, self.ns.name)
            assert service is not None, f"Service {SERVICE} vanished"
            spec = service["spec"]
            selector = ",".join(f"{k}={v}" for k, v in spec["selector"].items())
            want = sorted(
                p["metadata"]["name"] for p in self.kube.pods(self.ns.name, selector) if is_ready(p)
            )
            slices = self.kube.endpoint_slices(self.ns.name, SERVICE)
            have = sorted(
                (ep.get("targetRef") or {}).get("name", "?")
                for s in slices
                for ep in s.get("endpoints") or []
                if (ep.get("conditions") or {}).get("ready", True)
            )
            ports = {p.get("port") for s in slices for p in s.get("ports") or []}
            target_port = spec["ports"][0]["targetPort"]
            if have != want or (want and ports != {target_port}):
                raise NotYet(
                    f"EndpointSlices list {have} on ports {sorted(ports)}; the selector {selector} "
                    f"matches ready pods {want}, targetPort {target_port}"
                )

        wait_for(
            converged, what=f"EndpointSlices of {SERVICE} to follow the Service", timeout=TIMEOUTS.endpoints
        )

    def snapshot(self) -> Snapshot:
        return take(self.kube, self.expect)

    def snapshot_of_a_whole_group(self) -> Snapshot:
        """A snapshot in which both pods of group 0 exist: a group whose leader keeps crashing is recreated
        by LWS again and again (as on a node, where the kubelet reports each exit), and a snapshot taken
        mid-recreation would judge a half-deleted group instead of the deployment."""

        def whole() -> Snapshot:
            snap = self.snapshot()
            names = {p.name for p in snap.pods if not p.deleting}
            if not {LEADER, WORKER} <= names:
                raise NotYet(f"group 0 is being recreated; pods now: {sorted(names)}")
            return snap

        return wait_for(whole, what=f"both pods of group 0 in {self.ns.name}", timeout=SETTLE_S, interval=0.2)

    def evidence(self) -> Evidence:
        """Log evidence as suite/conformance/test_log_evidence.py gathers it (group 0, every pod, redacted)."""
        logs = {}
        for pod in (LEADER, WORKER):
            if self.kube.pod(self.ns.name, pod) is not None:
                logs[pod] = redact_text(
                    self.kube.kubectl("logs", "-n", self.ns.name, pod, "--all-containers")
                )
        return gather(logs)

    def evidence_so_far(self) -> Evidence:
        """For a wait: logs that cannot be read yet (container not started, log rule not set) are not yet seen."""
        try:
            return self.evidence()
        except KubectlError as exc:
            raise NotYet(f"logs not readable yet: {exc}") from None

    def delete(self) -> None:
        namespace.delete(self.kube, self.ns, TIMEOUTS)  # waits for the pods: the next case needs the GPUs


@pytest.fixture
def wrong(kube: Kube, request: pytest.FixtureRequest) -> Iterator[WrongDeployment]:
    deployment = WrongDeployment(
        kube, request.node.name.removeprefix("test_")[:24].replace("_", "-").rstrip("-")
    )
    yield deployment
    deployment.delete()


# verdicts -------------------------------------------------------------------------------------------------
def failing_checks(snap: Snapshot, expect: Expectation) -> dict[str, list[str]]:
    results = {check.__name__: check(snap, expect) for check in SNAPSHOT_CHECKS}
    return {name: problems for name, problems in results.items() if problems}


def assert_fails_exactly(failing: dict[str, list[str]], expected: dict[str, list[str]]) -> None:
    """The checks in `expected` fail, each with every phrase among its problems; every other check passes."""
    shown = "\n".join(f"  {name}: {problems}" for name, problems in failing.items()) or "  (no check failed)"
    assert set(failing) == set(expected), f"expected exactly {sorted(expected)} to fail; got:\n{shown}"
    for name, phrases in expected.items():
        text = "\n".join(failing[name])
        missing = [phrase for phrase in phrases if phrase not in text]
        assert not missing, f"{name} failed without naming the defect {missing}; it said:\n{text}"


# Service routing ------------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def reference_group(kube: Kube) -> Iterator[WrongDeployment]:
    """The reference deployment, correct; each case of the class replaces only its Service. Class-scoped, so
    its GPUs are free again before the cases after the class deploy."""
    deployment = WrongDeployment(kube, "service")
    try:
        deployment.apply(reference_objects())
        deployment.wait_ready(REFERENCE.info.size)
        deployment.wait_endpoints_converged()
        assert failing_checks(deployment.snapshot(), deployment.expect) == {}, "the reference itself fails"
        yield deployment
    finally:
        deployment.delete()


def _select_every_pod(svc: dict[str, Any]) -> None:
    svc["spec"]["selector"] = {P + "name": LWS}


def _select_the_worker(svc: dict[str, Any]) -> None:
    svc["spec"]["selector"] = {P + "name": LWS, P + "worker-index": "1"}


def _target_vllm_default_port(svc: dict[str, Any]) -> None:
    svc["spec"]["ports"][0]["targetPort"] = 8000  # vllm serve's default port, not the manifest's --port 8080


class TestAWrongServiceFailsTheServiceEndpointCheck:
    @pytest.mark.parametrize(
        ("change", "phrases"),
        [
            pytest.param(
                _select_every_pod,
                [f"routes to non-leader pods ['{WORKER}']", "must select leaders only"],
                id="selector-without-role-selects-every-pod",
            ),
            pytest.param(
                _select_the_worker,
                [
                    f"routes to non-leader pods ['{WORKER}']",
                    f"has no ready endpoint for leader(s) ['{LEADER}']",
                ],
                id="selector-selects-the-worker-only",
            ),
            pytest.param(
                _target_vllm_default_port, ["endpoint ports [8000], expected [8080]"], id="target-port-8000"
            ),
        ],
    )
    def test_the_service_endpoint_check_names_the_defect(
        self, change: Callable[[dict[str, Any]], None], phrases: list[str], reference_group: WrongDeployment
    ) -> None:
        objects = reference_objects()
        change(service_of(objects))
        reference_group.apply([service_of(objects)])
        try:
            reference_group.wait_endpoints_converged()
            failing = failing_checks(reference_group.snapshot(), reference_group.expect)
            assert_fails_exactly(failing, {"service_endpoints_hold_exactly_the_ready_leaders": phrases})
        finally:
            reference_group.apply([service_of(reference_objects())])
            reference_group.wait_endpoints_converged()


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


# log evidence ---------------------------------------------------------------------------------------------
def test_tp_in_the_command_not_matching_the_topology_fails_the_log_evidence(wrong: WrongDeployment) -> None:
    """The command says TP 16 x PP 1 (same 16 GPUs, so the group starts and serves): every pod-level check
    passes, and only the engine config seen in the logs gives it away."""
    objects = reference_objects()
    replace_in_leader_command(
        objects,
        "--tensor-parallel-size 8 --pipeline_parallel_size 2",
        "--tensor-parallel-size 16 --pipeline_parallel_size 1",
    )
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    wrong.wait_endpoints_converged()
    assert failing_checks(wrong.snapshot(), wrong.expect) == {}
    assert (TP, PP) == (8, 2)
    problems = wrong.evidence().problems(tp=TP, pp=PP, size=wrong.expect.size)
    assert problems == [
        "engine config tensor_parallel_size [16], expected 8",
        "engine config pipeline_parallel_size [1], expected 2",
    ], problems


# the API through the Service --------------------------------------------------------------------------------
def test_a_different_served_model_name_fails_the_models_check(wrong: WrongDeployment) -> None:
    """`--served-model-name llama-405b`: the server answers, under a name other than the manifest's model, so
    a client asking for the model by its name gets nothing."""
    objects = reference_objects()
    replace_in_leader_command(objects, "--port 8080", "--port 8080 --served-model-name llama-405b")
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    assert failing_checks(wrong.snapshot(), wrong.expect) == {}
    forward = ServicePortForward(
        wrong.kube, wrong.ns.name, SERVICE, wrong.expect.forward_port, TIMEOUTS.port_forward
    )
    forward.start()
    try:
        problems = service_routing.models_lists_the_served_model(forward.url, wrong.expect, TIMEOUTS.request)
    finally:
        forward.stop()
    assert problems == [
        f"GET /v1/models lists ['llama-405b'], not the manifest's model {REFERENCE.info.model}"
    ]
