"""Inject a fault into one group of a multi-group LWS and watch the other group: its pods (UIDs, container
restarts) and its serving, under a steady load through the leader Service, with the Service's EndpointSlices
and the pods watched (service_watch.py), so each failed request is placed (checks/request_split.py): on the
faulted group's leader as it went (expected), on a leader the Service had taken out (the Service's fault), or on
the watched group's leader (the isolation's fault)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fixtures import deploy
from fixtures.kube import Kube
from fixtures.recovery import group_pod_names
from fixtures.settings import Settings
from fixtures.snapshot import Expectation
from plumbing.wait import NotYet, wait_for
from suite.conformance.checks.request_split import RequestSplit
from suite.conformance.service_watch import service_under_load
from suite.conformance.steady_load import LoadTally

PodState = dict[str, tuple[str, int]]  # pod name -> (uid, container restarts)


@dataclass(frozen=True)
class IsolationRun:
    fault: str
    watched: int  # the group that must stay untouched
    faulted: int
    watched_before: PodState
    watched_after: PodState
    faulted_before: PodState
    faulted_after: PodState
    recovered_s: float | None  # faulted group changed and the whole LWS ready again
    tally: LoadTally
    split: RequestSplit
    watched_leader: str


def group_state(kube: Kube, expect: Expectation, group: int) -> PodState:
    wanted = set(group_pod_names(expect, group))
    state = {}
    for pod in kube.pods(expect.namespace):
        name = pod["metadata"]["name"]
        if name in wanted and not pod["metadata"].get("deletionTimestamp"):
            restarts = sum(
                int(c.get("restartCount") or 0)
                for c in (pod.get("status") or {}).get("containerStatuses") or []
            )
            state[name] = (pod["metadata"]["uid"], restarts)
    return state


def run(
    kube: Kube,
    expect: Expectation,
    settings: Settings,
    fault: str,
    inject: Callable[[], None],
    progress: Any,
    *,
    watched: int = 0,
    faulted: int = 1,
    fault_pod: str | None = None,
) -> IsolationRun:
    """Steady load through the Service, `inject()` the fault into group `faulted` (into pod `fault_pod`, marked
    on the Service's timeline), wait until that group has changed, the LWS is ready again and the group's leader
    answers a completion, then read both groups and split the failed requests."""
    deployment = deploy.Deployment(
        expect.namespace, expect.lws_name, expect.service_name, expect.size, expect.replicas
    )
    watched_before = group_state(kube, expect, watched)
    faulted_before = group_state(kube, expect, faulted)
    leader = f"{expect.lws_name}-{watched}"
    faulted_leader = f"{expect.lws_name}-{faulted}"
    with service_under_load(kube, expect.namespace, expect, settings, progress) as run:
        started = time.monotonic()
        progress(f"{fault} in group {faulted}; steady load through svc/{expect.service_name}")
        if fault_pod is not None:
            run.watch.mark_fault(fault_pod, fault)
        inject()  # inside: a refused fault (faults.FaultRefused) still stops the load

        def recovered_again() -> float:
            now = group_state(kube, expect, faulted)
            if now == faulted_before:
                raise NotYet(f"group {faulted} unchanged so far: {sorted(now)}")
            done, seen = deploy.observe(kube, deployment)
            if not done:
                raise NotYet(seen)
            # Ready is not serving (a leader without a readiness probe is Ready while vLLM loads): the load
            # goes on until the faulted group's leader answers, so the Service's sends to it are all measured
            if not run.leader_answers(faulted_leader, expect.model):
                raise NotYet(
                    f"{seen}; group {faulted}'s leader {faulted_leader} does not answer a completion yet"
                )
            return time.monotonic() - started

        recovered = wait_for(
            recovered_again,
            what=f"group {faulted} to recover",
            timeout=settings.timeouts.recovery,
            progress=progress,
        )
    return IsolationRun(
        fault,
        watched,
        faulted,
        watched_before,
        group_state(kube, expect, watched),
        faulted_before,
        group_state(kube, expect, faulted),
        recovered,
        run.tally,
        run.split,
        leader,
    )
