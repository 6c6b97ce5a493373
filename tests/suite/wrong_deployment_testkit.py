"""Deliberately wrong deployments on the testbed, for the self-tests that show every conformance check can fail
(test_selftest_wrong_service.py, test_selftest_wrong_pods.py, test_selftest_wrong_engine_command.py): judged by
the suite's own check functions against the REFERENCE plan's expectation (what `nox -s conformance` expects),
each must fail the right check, with a message that names the defect, and leave the other checks passing.

Each case builds its wrong manifest from the reference (LWS's e2e style: a builder, then one change), deploys it
with the suite's fixtures into a namespace of its own, waits until the deployment has settled (ready, or its
engine's start-up has ended), takes a Snapshot with fixtures.snapshot.take, and runs the checks. Every case
holds GPUs of the testbed, so they share the `testbed-gpus` xdist group and delete their namespace (waiting
for its pods to go) before the next one starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fixtures import deploy, namespace
from fixtures.kube import Kube, KubectlError
from fixtures.plan import make_plan
from fixtures.redact import redact_text
from fixtures.settings import Settings
from fixtures.snapshot import Expectation, Snapshot, take
from fixtures.timeouts import Timeouts
from manifests.render import render
from plumbing.wait import NotYet, wait_for
from suite.conformance.checks import pod_roles, service_routing
from suite.conformance.checks.log_evidence import Evidence, gather

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


def replace_in_worker_command(objects: list[dict[str, Any]], old: str, new: str) -> None:
    command = container(objects, "worker")["command"]
    assert old in command[-1], f"the reference worker command changed; {old!r} not in {command[-1]!r}"
    command[-1] = command[-1].replace(old, new)


# a wrong deployment ---------------------------------------------------------------------------------------
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
