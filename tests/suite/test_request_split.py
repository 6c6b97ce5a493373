"""The request split (suite/conformance/checks/request_split.py) places each failed request against the
Service's timeline as the watch records it: in flight on a pod going (a), sent to a pod the Service had taken out
or to a ready endpoint that did not serve (b), with no ready endpoint (c), other (d)."""

from __future__ import annotations

from load.records import RequestRecord
from suite.conformance.checks import request_split
from suite.conformance.checks.request_split import PROPAGATION_S
from suite.conformance.checks.service_timeline import Kind, ServiceEvent, ServiceTimeline

GROUPS = {"vllm-0": 0, "vllm-1": 1, "vllm-0-1": 0, "vllm-1-1": 1}


def ev(t: float, kind: Kind, pod: str, uid: str | None, detail: str = "") -> ServiceEvent:
    group = GROUPS[pod]
    return ServiceEvent(t, kind, pod, uid, group, 0 if pod.count("-") == 1 else 1, detail)


def timeline(*events: ServiceEvent) -> ServiceTimeline:
    return ServiceTimeline(
        "vllm-leader", 0.0, {"a": "vllm-0", "b": "vllm-1"}, tuple(events), groups=dict(GROUPS)
    )


def failed(index: int, sent: float, finished: float, error: str, status: int | None = None) -> RequestRecord:
    record = RequestRecord(index=index, scheduled=sent, sent=sent, status=status)
    record.fail(error, None, finished)
    return record


def ok(index: int, sent: float) -> RequestRecord:
    return RequestRecord(index=index, scheduled=sent, sent=sent, finished=sent + 0.1)


# vllm-1 (uid b) is deleted by a rollout at +10 s, taken out at +10.05 s, gone at +12 s; its successor (uid c)
# turns a ready endpoint at +15 s.
ROLLOUT = timeline(
    ev(10.0, "deleting", "vllm-1", "b"),
    ev(10.05, "not-ready", "vllm-1", "b"),
    ev(12.0, "left", "vllm-1", "b"),
    ev(12.0, "deleted", "vllm-1", "b"),
    ev(15.0, "ready", "vllm-1", "c"),
)


def test_a_rollout_splits_in_flight_propagation_taken_out_and_other() -> None:
    records = [
        ok(0, 1.0),
        failed(1, 9.0, 10.02, "connection_reset"),  # in flight on vllm-1 when it was deleted
        failed(2, 10.03, 10.04, "http_500"),  # after the deletion, before the Service took it out
        failed(3, 10.5, 10.5, "http_500"),  # 0.45 s after it was taken out: the Service's propagation
        failed(4, 12.5, 12.5, "http_502"),  # 2.45 s after: the client kept sending there
        failed(5, 14.0, 44.0, "timeout"),  # on vllm-0, which never went
    ]
    endpoints = {0: "vllm-0", 1: "vllm-1", 2: "vllm-1", 3: "vllm-1", 4: "vllm-1", 5: "vllm-0"}
    split = request_split.split(records, endpoints, ROLLOUT)
    klass = {f.index: f.klass for f in split.failed}
    assert klass == {1: "going", 2: "going", 3: "going", 4: "taken-out", 5: "other"}
    causes = {f.index: f.cause for f in split.failed}
    assert causes[1] == "in flight on vllm-1 when vllm-1 was deleted at +10.00 s"
    assert causes[2] == (
        "sent to vllm-1 after it was deleted at +10.00 s, before the Service took it out (endpoint propagation)"
    )
    assert "within 1 s after it was listed not ready" in causes[3]
    assert causes[4] == (
        "sent to vllm-1 after it was listed not ready in the Service's endpoints at +10.05 s, while ['vllm-0'] "
        "were ready"
    )
    assert split.counts() == {"going": 3, "taken-out": 1, "no-endpoint": 0, "other": 1}
    assert split.served_by == {"vllm-0": 1}
    assert split.causes("taken-out") == [f"1 x {causes[4]} (http_502: 1, up to 2.45 s after)"]
    assert split.figure().startswith("5/6 requests failed: 3 (a) on a pod going, 1 (b) ")
    assert PROPAGATION_S < 12.5 - 10.05


def test_a_ready_endpoint_that_does_not_serve_while_another_does_is_taken_out() -> None:
    """No readiness probe: the new vllm-1 is a ready endpoint before vLLM listens."""
    records = [failed(0, 16.0, 16.01, "http_502"), failed(1, 16.2, 16.2, "http_500")]
    split = request_split.split(records, {0: "vllm-1", 1: "vllm-1"}, ROLLOUT)
    (bad, other) = split.failed
    assert bad.klass == "taken-out"
    assert bad.cause == (
        "sent to vllm-1, a ready endpoint since +15.00 s that did not serve, while ['vllm-0'] were ready"
    )
    assert other.klass == "other"  # an answer of the engine itself (500), not a Service that sent it wrong


def test_the_replaced_groups_old_worker_going_late_does_not_excuse_the_new_leader() -> None:
    """delete-leader without a probe: the new vllm-1 (uid c) is a ready endpoint at +15 s before vLLM listens;
    the old group's worker (uid w0, created before c) is gone from the API only at +16 s. A request the new leader
    did not serve at +16.5 s is the Service's (b), not a pod going (a); a worker of c's own group going is (a)."""

    def worker_gone_at_16(created_at: str) -> ServiceTimeline:
        """ROLLOUT, then vllm-1's worker (uid w) gone from the API at +16 s, created at `created_at`."""
        return ServiceTimeline(
            "vllm-leader",
            0.0,
            {"a": "vllm-0", "b": "vllm-1"},
            (*ROLLOUT.events, ev(16.0, "deleted", "vllm-1-1", "w")),
            groups=dict(GROUPS),
            created={"b": "2026-12-07T16:00:00Z", "w": created_at, "c": "2026-12-07T16:00:14Z"},
        )

    records = [failed(0, 16.5, 16.5, "http_502")]
    (late,) = request_split.split(records, {0: "vllm-1"}, worker_gone_at_16("2026-12-07T16:00:01Z")).failed
    assert late.klass == "taken-out", late
    assert late.cause.startswith("sent to vllm-1, a ready endpoint since +15.00 s that did not serve"), late
    own = worker_gone_at_16("2026-12-07T16:00:14Z")  # the new group's own worker, created with c
    (going,) = request_split.split(records, {0: "vllm-1"}, own).failed
    assert going.klass == "going", going
    assert "its group's vllm-1-1 was gone from the API at +16.00 s" in going.cause, going


def test_a_request_to_a_pod_before_it_was_an_endpoint_is_taken_out() -> None:
    records = [failed(0, 14.0, 14.0, "connect_error")]
    (only,) = request_split.split(records, {0: "vllm-1"}, ROLLOUT).failed
    # vllm-1's incarnation known by then is the old one (b), taken out at +10.05 s
    assert only.klass == "taken-out"


def test_with_no_ready_endpoint_a_request_is_an_outage() -> None:
    down = timeline(
        ev(20.0, "fault", "vllm-0", "a", "crash-leader"),
        ev(20.3, "killed", "vllm-0", "a", "restart count 0 -> 1"),
        ev(20.4, "not-ready", "vllm-0", "a"),
        ev(20.5, "deleting", "vllm-1", "b"),
        ev(20.6, "not-ready", "vllm-1", "b"),
        ev(25.0, "ready", "vllm-0", "a"),
    )
    records = [
        failed(0, 19.9, 20.1, "connection_reset"),  # in flight at the fault
        failed(1, 20.1, 20.1, "connect_error"),  # after the fault, before the kill was seen
        failed(2, 21.0, 21.0, "http_503", status=503),  # the balancer had none: no header
        failed(3, 22.0, 22.0, "http_502"),
    ]
    split = request_split.split(records, {0: "vllm-0", 1: "vllm-0", 3: "vllm-0"}, down)
    klass = {f.index: f.klass for f in split.failed}
    assert klass == {0: "going", 1: "going", 2: "no-endpoint", 3: "no-endpoint"}
    assert (
        split.failed[0].cause
        == "in flight on vllm-0 when vllm-0 had a fault injected (crash-leader) at +20.00 s"
    )
    assert split.no_endpoint_s == 4.4


def test_a_worker_lost_takes_its_leader_down_in_flight_and_after() -> None:
    """delete-worker: the leader stays a ready endpoint (vLLM's /health still answers) but fails every request
    after the execute-model timeout, as real vLLM does."""
    lost = timeline(ev(30.0, "deleting", "vllm-1-1", "w"), ev(36.0, "not-ready", "vllm-1", "b"))
    records = [failed(0, 29.5, 36.0, "http_500"), failed(1, 31.0, 36.0, "http_500")]
    split = request_split.split(records, {0: "vllm-1", 1: "vllm-1"}, lost)
    assert [f.klass for f in split.failed] == ["going", "going"]
    assert split.failed[0].cause == "in flight on vllm-1 when vllm-1-1 was deleted at +30.00 s"
    assert split.failed[1].cause == (
        "sent to vllm-1 after its group's vllm-1-1 was deleted at +30.00 s, before the Service took it out "
        "(endpoint propagation)"
    )


def test_without_the_balancers_header_the_only_ready_endpoint_carries_it() -> None:
    one = ServiceTimeline("vllm-leader", 0.0, {"a": "vllm-0"}, (), groups=dict(GROUPS))
    split = request_split.split([failed(0, 1.0, 1.0, "timeout")], {}, one)
    assert split.failed[0].endpoint is None
    assert split.failed[0].cause == "failed on vllm-0, a ready endpoint that was not going"
    two = request_split.split([failed(0, 1.0, 1.0, "timeout")], {}, timeline())
    assert two.failed[0].cause == "the pod that carried it is unknown (no endpoint header)"


def isolation(split: request_split.RequestSplit) -> list[str]:
    from suite.conformance.checks import multi_group
    from suite.conformance.group_isolation import IsolationRun
    from suite.conformance.steady_load import LoadTally

    kept = {"vllm-0": ("a", 0), "vllm-0-1": ("a1", 0)}
    run = IsolationRun(
        "crash-leader", 0, 1, kept, kept, {"vllm-1": ("b", 0)}, {"vllm-1": ("c", 0)}, 9.0,
        LoadTally(split.sent, 0, 0, {}, ()), split, "vllm-0",
    )  # fmt: skip
    return multi_group.a_fault_in_one_group_leaves_the_others_untouched(run)


def test_isolation_fails_on_group_0s_failures_and_on_taken_out_requests_not_on_group_1_going() -> None:
    served = [ok(i, 1.0 + i * 0.1) for i in range(3)]
    endpoints = {0: "vllm-0", 1: "vllm-0", 2: "vllm-1"}
    going = request_split.split(
        [*served, failed(3, 9.0, 10.02, "connection_reset")], {**endpoints, 3: "vllm-1"}, ROLLOUT
    )
    assert isolation(going) == []
    on_group_0 = request_split.split(
        [*served, failed(3, 14.0, 14.1, "http_500")], {**endpoints, 3: "vllm-0"}, ROLLOUT
    )
    assert isolation(on_group_0) == [
        "1/4 requests to group 0's leader vllm-0 failed during the fault in group 1 (http_500: 1)"
    ]
    late = request_split.split(
        [*served, failed(3, 12.5, 12.5, "http_502")], {**endpoints, 3: "vllm-1"}, ROLLOUT
    )
    (problem,) = isolation(late)
    assert problem.startswith(
        "1/4 requests failed on a leader the Service had taken out or that did not serve"
    )
