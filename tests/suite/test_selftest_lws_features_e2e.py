"""The LWS feature checks fail on deployments wrong in their way (each on the testbed, in a namespace of its own,
judged by the suite's own check functions):

- LWS's headless Service replaced by a plain ClusterIP Service of the same name (LWS then leaves it alone);
- a fault in group 1 that also reaches group 0 (what a controller recreating every group would do);
- startupPolicy LeaderCreated where LeaderReady is checked, with the check's own setup (no leader readiness
  probe): the worker StatefulSet created before the leader turned Ready, in the API's order of writes;
- two groups whose leader has no readiness probe (the Service sends to a new leader before vLLM listens, while
  the other leader serves: request split class (b)): a rollout, a leader deleted, a leader crashed in group 1
  each fail their check, the rollout's naming the probe;
- RecreateGroupOnPodRestart where RecreateGroupAfterStart is checked: a crash recreates a group with a Pending pod.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures import deploy, faults, namespace, serving, variants
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.plan import Plan, make_plan
from fixtures.settings import Settings
from fixtures.timeouts import Timeouts
from plumbing.wait import NotYet, wait_for
from suite.conformance import fault_run, group_isolation, pending_group, rollout_run
from suite.conformance.api_order import ApiWatch
from suite.conformance.checks import (
    headless_service,
    multi_group,
    recovery,
    restart_after_start,
    rollout,
    startup,
)
from testbed.bridge.pods import TIME_SCALE
from testbed.cluster import TestbedInfo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]

SETTINGS = Settings()
TIMEOUTS = Timeouts()
ONE_GROUP = make_plan(SETTINGS)
TWO_GROUPS = make_plan(Settings(topology="tp8-pp2-r2"))
LWS = ONE_GROUP.info.lws_name
# A leader without a readiness probe is Ready, and a ready endpoint, while the engine starts (30 simulated
# seconds): at the testbed's 0.02 that is under a second, and whether a request lands in it is luck; at 0.2 it
# is 6 s, in which the steady load (5 requests/s) always sends some there.
SLOW_START = {TIME_SCALE: "0.2"}
HOLD_GATE = "lws-vllm-suite.io/hold-for-the-test"


class Case:
    """One namespace of the testbed holding one deployment of `plan` (wrong in the way the case says)."""

    def __init__(self, kube: Kube, testbed: TestbedInfo, name: str, plan: Plan) -> None:
        self.kube, self.plan = kube, plan
        self.run_id = f"selftest{uuid.uuid4().hex[:6]}"
        variants.make_room(testbed, variants.nodes_needed(plan), lambda _m: None)
        self.ns = namespace.create(kube, f"selftest-{name}-{self.run_id[-6:]}", self.run_id, TIMEOUTS)
        self.deployed = Deployed(self.ns.name, plan.expectation(self.ns.name), plan)

    def apply(
        self, objects: list[dict[str, Any]] | None = None, leader_annotations: dict[str, str] | None = None
    ) -> None:
        objects = objects if objects is not None else self.plan.objects
        labelled = deploy.label_objects(objects, self.run_id, self.ns.name, leader_annotations)
        deploy.apply(self.kube, labelled, self.ns.name)

    def wait_ready(self) -> None:
        """Ready as the suite means it before its checks (fixtures/lifecycle.py): Available, then every group's
        leader answering through the Service. Without a readiness probe the pods are Ready before the engine
        listens; a fault injected then would count the still-loading group 0 as failing."""
        e = self.deployed.expect
        started = time.monotonic()
        deploy.wait_ready(
            self.kube, deploy.Deployment(self.ns.name, LWS, e.service_name, e.size, e.replicas), 180, None
        )
        serving.wait_serving(
            self.kube,
            self.ns.name,
            e.service_name,
            e.forward_port,
            started + 180,
            TIMEOUTS,
            leaders=e.replicas,
        )

    def delete(self) -> None:
        namespace.delete(self.kube, self.ns, TIMEOUTS)


@pytest.fixture
def case(kube: Kube, testbed: TestbedInfo, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Case] = []

    def make(plan: Plan) -> Case:
        made.append(
            Case(
                kube,
                testbed,
                request.node.name.removeprefix("test_")[:20].rstrip("_").replace("_", "-"),
                plan,
            )
        )
        return made[-1]

    yield make
    for c in made:
        c.delete()


def test_a_plain_service_in_place_of_the_headless_one_fails_the_headless_service_checks(case: Any) -> None:
    wrong = case(ONE_GROUP)
    plain = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": LWS},
        "spec": {
            "selector": {"leaderworkerset.sigs.k8s.io/name": LWS, "role": "leader"},
            "ports": [{"port": 8080}],
        },
    }
    wrong.apply([plain])  # before the LWS: LWS creates its headless Service only if none of that name exists
    wrong.apply()
    wrong.wait_ready()
    view = headless_service.observe(wrong.kube, wrong.deployed.expect)
    problems = "\n".join(
        headless_service.lws_creates_a_headless_service_publishing_not_ready_pods(view, wrong.deployed.expect)
    )
    for phrase in (
        "expected 'None' (headless)",
        "publishNotReadyAddresses None, expected true",
        "is not controlled by LeaderWorkerSet",
    ):
        assert phrase in problems, problems


def test_a_fault_in_group_1_that_reaches_group_0_fails_the_isolation_check(case: Any) -> None:
    wrong = case(TWO_GROUPS)
    wrong.apply()
    wrong.wait_ready()
    expect = wrong.deployed.expect

    def both_groups() -> None:
        faults.inject(wrong.kube, wrong.ns.name, faults.target("delete-worker", LWS, group=1))
        faults.inject(wrong.kube, wrong.ns.name, faults.target("delete-worker", LWS, group=0))

    run = group_isolation.run(wrong.kube, expect, SETTINGS, "delete-worker", both_groups, lambda _m: None)
    problems = "\n".join(multi_group.a_fault_in_one_group_leaves_the_others_untouched(run))
    assert "replaced pods of group 0: ['vllm-0', 'vllm-0-1']" in problems, problems
    # Whether a request was on group 0's leader when it went is timing (5 requests/s over two leaders, the
    # leader deleted within a second of its worker): the check names them exactly when the split placed some.
    on_group_0 = [f for f in run.split.failed if f.endpoint == run.watched_leader]
    print(f"failed on {run.watched_leader}: {len(on_group_0)}; {run.split.report()}")
    named = re.search(r"(\d+)/\d+ requests to group 0's leader \S+ failed", problems)
    assert (int(named.group(1)) if named else 0) == len(on_group_0), problems


def _leader_created_with_the_checks_setup(lws: dict[str, Any]) -> None:
    """The check's own deployment (no leader readiness probe), with the policy an LWS ignoring LeaderReady
    acts on: the worker StatefulSet as soon as the leader pod exists."""
    startup.leader_ready_variant(lws)
    lws["spec"]["startupPolicy"] = "LeaderCreated"


def _leader_created_and_held(lws: dict[str, Any]) -> None:
    """As above, with the leader pod held unscheduled by a scheduling gate the test removes once the worker
    StatefulSet exists: otherwise the leader can turn Ready (its container runs at once) before the LWS controller
    writes the StatefulSet, and the API's writes then read as LeaderReady's order. A LeaderReady controller
    would write nothing while the leader is held."""
    _leader_created_with_the_checks_setup(lws)
    variants.template(lws, "leader")["spec"]["schedulingGates"] = [{"name": HOLD_GATE}]


def test_a_worker_statefulset_before_the_leader_is_ready_fails_the_leader_ready_check(case: Any) -> None:
    """With the check's own setup the leader is Ready as soon as its container runs: only the order of the API's
    writes tells the two policies apart, so the leader is held until the worker StatefulSet is there."""
    wrong = case(variants.variant_plan(ONE_GROUP, _leader_created_and_held, "leader created"))
    lws = next(o for o in wrong.plan.objects if o["kind"] == "LeaderWorkerSet")
    assert "readinessProbe" not in variants.template(lws, "leader")["spec"]["containers"][0]
    ns = wrong.ns.name
    watched = ApiWatch(wrong.kube, ns, LWS).start()
    try:
        wrong.apply()

        def worker_statefulset() -> None:
            if wrong.kube.get_object("apps/v1", "statefulsets", f"{LWS}-0", ns) is None:
                pods = {
                    p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in wrong.kube.pods(ns)
                }
                raise NotYet(f"no worker StatefulSet {LWS}-0 yet; pods {pods}")

        wait_for(worker_statefulset, what="the worker StatefulSet of a LeaderCreated group", timeout=60)
        release = json.dumps([{"op": "remove", "path": "/spec/schedulingGates"}])
        wrong.kube.kubectl("patch", "pod", f"{LWS}-0", "-n", ns, "--type=json", "-p", release)
        wrong.wait_ready()
    finally:
        events = watched.stop()
    assert watched.problems == []
    problems = "\n".join(startup.workers_start_only_after_the_leader_is_ready(events, LWS, 1))
    assert "worker StatefulSet vllm-0 was created at resourceVersion " in problems, problems
    assert "before leader vllm-0 turned Ready (at resourceVersion " in problems, problems
    print(f"LeaderCreated with the check's setup: {startup.figure(events, LWS)}")


def _without_leader_probe(lws: dict[str, Any]) -> None:
    for container in variants.template(lws, "leader")["spec"]["containers"]:
        container.pop("readinessProbe", None)


def test_a_rollout_without_a_leader_readiness_probe_drops_requests_and_the_check_names_the_probe(
    case: Any,
) -> None:
    wrong = case(variants.variant_plan(TWO_GROUPS, _without_leader_probe, "no probe"))
    wrong.apply(leader_annotations=SLOW_START)
    wrong.wait_ready()
    # the load goes on 10 s after the last group is Ready: Ready is not serving without the probe
    run = rollout_run.roll(wrong.kube, wrong.deployed, SETTINGS, lambda _m: None, "INFO", hold_s=10.0)
    print(f"rollout without a leader readiness probe: {rollout.figure(run)}")
    assert run.split is not None
    print(run.split.report())
    assert rollout.groups_are_replaced_within_the_strategy(run) == []  # LWS itself rolls as it should
    problems = "\n".join(rollout.the_service_kept_serving(run))
    assert (
        "failed during the rollout on a leader the Service had taken out or that did not serve" in problems
    ), problems
    assert "a ready endpoint since" in problems and "that did not serve" in problems, problems
    assert "has no readinessProbe" in problems, problems


def test_a_leader_deleted_without_a_readiness_probe_fails_the_recovery_check_on_the_service(
    case: Any,
) -> None:
    """The new leader is Ready, and a ready endpoint, before vLLM listens; the other group's leader serves
    meanwhile, so the requests the Service sends to the new one fail for the Service's sake (class (b))."""
    wrong = case(variants.variant_plan(TWO_GROUPS, _without_leader_probe, "no probe"))
    wrong.apply(leader_annotations=SLOW_START)
    wrong.wait_ready()
    _rec, _tally, split = fault_run.run_fault(
        wrong.kube, wrong.deployed, SETTINGS, "delete-leader", lambda _m: None
    )
    print(f"delete-leader without a leader readiness probe: {split.report()}")
    problems = "\n".join(recovery.the_service_sent_nothing_to_a_leader_it_had_taken_out(split))
    assert "requests failed on a leader the Service had taken out or that did not serve" in problems, problems
    # the new vllm-0, or vllm-1 when the deployment was Ready (no probe) before it served
    assert "a ready endpoint since" in problems and "that did not serve" in problems, problems


def test_a_leader_crashed_in_group_1_without_a_readiness_probe_fails_the_isolation_check(case: Any) -> None:
    wrong = case(variants.variant_plan(TWO_GROUPS, _without_leader_probe, "no probe"))
    wrong.apply(leader_annotations=SLOW_START)
    wrong.wait_ready()
    expect = wrong.deployed.expect
    fault = faults.target("crash-leader", LWS, group=1)
    run = group_isolation.run(
        wrong.kube,
        expect,
        SETTINGS,
        "crash-leader",
        lambda: faults.inject(wrong.kube, wrong.ns.name, fault),
        lambda _m: None,
        fault_pod=fault.pod,
    )
    print(f"crash-leader in group 1 without a leader readiness probe: {run.split.report()}")
    problems = "\n".join(multi_group.a_fault_in_one_group_leaves_the_others_untouched(run))
    assert "failed on a leader the Service had taken out or that did not serve" in problems, problems
    assert "sent to vllm-1" in problems, problems


def test_recreating_a_group_whose_worker_is_pending_fails_the_recreate_after_start_check(case: Any) -> None:
    wrong = case(
        ONE_GROUP
    )  # restartPolicy RecreateGroupOnPodRestart, which recreates whatever the pods' phases
    wrong.apply()
    wrong.wait_ready()
    run = pending_group.crash_with_a_pending_worker(wrong.kube, wrong.deployed, SETTINGS, lambda _m: None)
    problems = "\n".join(restart_after_start.a_group_with_a_pending_pod_is_not_recreated(run))
    # The leader is always recreated; whether the still-Pending worker is seen recreated too depends on when the
    # group's recreation is observed, so the check's line names at least the leader.
    assert "with ['vllm-0-1'] Pending, LWS recreated ['vllm-0'" in problems, problems
    assert "RecreateGroupAfterStart must wait until every pod has started" in problems, problems
