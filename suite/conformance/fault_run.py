"""One fault injected into group 0 of a deployment under a steady load through its leader Service (the loopback
balancer), with the Service's EndpointSlices and pods watched, until the group has recovered: the Recovery
(fixtures/recovery.py), the load's tally, and the split of its failed requests (checks/request_split.py)."""

from __future__ import annotations

import time
from typing import Any

from fixtures import faults
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.recovery import Recovery, all_group_uids, event_occurrences, group_restart_counts, observe
from fixtures.settings import Settings
from suite.conformance.checks.request_split import RequestSplit
from suite.conformance.service_watch import service_under_load
from suite.conformance.steady_load import LoadTally


def run_fault(
    kube: Kube,
    deployed: Deployed,
    settings: Settings,
    fault_name: str,
    progress: Any,
    *,
    restart_policy: str | None = None,
    need_serving: bool = True,
) -> tuple[Recovery, LoadTally, RequestSplit]:
    expect = deployed.expect
    fault = faults.target(fault_name, expect.lws_name)  # type: ignore[arg-type]
    groups = all_group_uids(kube, expect)
    rec = Recovery(
        fault,
        restart_policy or expect.restart_policy or "RecreateGroupOnPodRestart",
        groups[0],
        {g: u for g, u in groups.items() if g != 0},
        restart_counts_before=group_restart_counts(kube, expect, 0),
        events_before=event_occurrences(kube, expect.namespace),
    )
    with service_under_load(kube, deployed.namespace, expect, settings, progress) as run:
        started = time.monotonic()
        progress(f"injecting {fault.name} on {fault.pod}")
        run.watch.mark_fault(fault.pod, fault.name)
        # a refused fault (FaultRefused) skips the test (fault_refusal_plugin)
        faults.inject(kube, deployed.namespace, fault)
        observe(
            kube,
            expect,
            rec,
            group=0,
            started=started,
            timeout=settings.timeouts.recovery,
            # the recovered group's own leader, not whichever leader the Service picks (with several groups
            # another one answers all along)
            probe=lambda: run.leader_answers(f"{expect.lws_name}-0", expect.model),
            progress=progress,
            need_serving=need_serving,
        )
    return rec, run.tally, run.split
