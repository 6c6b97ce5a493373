"""Inject a fault into one group of a multi-group LWS and watch the other group: its pods (UIDs, container
restarts) and its serving, measured on its own leader (kubectl port-forward pod/<lws>-0) under a steady load,
so the faulted group's outage cannot leak into the figure through the Service."""

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
from plumbing.port_forward import port_forward
from plumbing.wait import NotYet, wait_for
from suite.conformance.steady_load import LoadTally, SteadyLoad

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
) -> IsolationRun:
    """Steady load on group `watched`'s leader, `inject()` the fault into group `faulted`, wait until that group
    has changed and the LWS is ready again, then read both groups."""
    deployment = deploy.Deployment(
        expect.namespace, expect.lws_name, expect.service_name, expect.size, expect.replicas
    )
    watched_before = group_state(kube, expect, watched)
    faulted_before = group_state(kube, expect, faulted)
    leader = f"{expect.lws_name}-{watched}"
    # the leader pod, not the Service: this forward dies with that leader, which is what the check wants to see
    kubectl, timeout = kube.target.kubectl_argv(), settings.timeouts.port_forward
    with port_forward(kubectl, expect.namespace, f"pod/{leader}", expect.port, timeout=timeout) as url:
        load = SteadyLoad(url, expect.model or "", rate_per_s=5.0).start()
        started = time.monotonic()
        progress(f"{fault} in group {faulted}; steady load on {leader}")
        recovered: float | None = None
        try:
            inject()  # inside: a refused fault (faults.FaultRefused) still stops the load

            def recovered_again() -> float:
                now = group_state(kube, expect, faulted)
                if now == faulted_before:
                    raise NotYet(f"group {faulted} unchanged so far: {sorted(now)}")
                done, seen = deploy.observe(kube, deployment)
                if not done:
                    raise NotYet(seen)
                return time.monotonic() - started

            recovered = wait_for(
                recovered_again,
                what=f"group {faulted} to recover",
                timeout=settings.timeouts.recovery,
                progress=progress,
            )
        finally:
            tally = load.stop()
    return IsolationRun(
        fault,
        watched,
        faulted,
        watched_before,
        group_state(kube, expect, watched),
        faulted_before,
        group_state(kube, expect, faulted),
        recovered,
        tally,
    )
