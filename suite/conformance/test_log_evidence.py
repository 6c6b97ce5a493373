"""Log evidence: every rank of every group loaded its weights, on more than one node, with the topology's TP
and PP, the Ray cluster reached the group size, the server started, and nothing crashed. The excerpt that
supports (or fails) the verdict is saved under the run's artifacts (one file per group) and in its JSON result.

The logs are judged once every pod of every group has logged its start (within --timeout-ready): a deployment
is ready for the suite once it serves (fixtures/serving.py), and a pod whose container runs is not a pod whose
engine has written its start-up yet. In place (--lws) the deployment has served for as long as its owner ran it:
a start-up no longer in its logs (rotated, or a container restarted since) is not judged, and the check is
skipped saying so, rather than waiting --timeout-ready and failing a deployment for logs it no longer has."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.deployment_plugin import Deployed
from fixtures.kube import Kube, KubectlError
from fixtures.redact import redact_text
from fixtures.run_state import RunState
from fixtures.settings import Settings
from manifests.manifest import pod_dns_names
from plumbing.wait import NotYet, WaitTimeout, wait_for
from suite.conformance.checks.log_evidence import gather, not_started

pytestmark = pytest.mark.readonly


def _group_names(deployed: Deployed, group: int) -> list[str]:
    expect = deployed.expect
    return [f"{expect.lws_name}-{group}"] + [f"{expect.lws_name}-{group}-{w}" for w in range(1, expect.size)]


def _group_logs(kube: Kube, deployed: Deployed, group: int) -> dict[str, str]:
    names = _group_names(deployed, group)
    return {
        name: redact_text(kube.kubectl("logs", "-n", deployed.namespace, name, "--all-containers"))
        for name in names
    }


def _logs_once_started(
    kube: Kube, deployed: Deployed, timeout: float
) -> tuple[dict[int, dict[str, str]], str | None]:
    """Every group's logs, read once every pod has logged its start; on timeout, the logs as they are and what
    was still missing (the verdict then says what the logs lack)."""

    def started() -> dict[int, dict[str, str]]:
        logs, missing = {}, []
        for group in range(deployed.expect.replicas):
            try:
                logs[group] = _group_logs(kube, deployed, group)
            except KubectlError as exc:
                raise NotYet(f"group {group}: logs not readable yet: {exc}") from None
            missing += not_started(logs[group], f"{deployed.expect.lws_name}-{group}")
        if missing:
            raise NotYet("; ".join(missing))
        return logs

    try:
        return wait_for(started, what="every pod to log its start", timeout=timeout, interval=1.0), None
    except WaitTimeout as exc:
        return {g: _group_logs(kube, deployed, g) for g in range(deployed.expect.replicas)}, str(exc)


def group_addresses(kube: Kube, deployed: Deployed, group: int) -> dict[str, str]:
    """Every address a pod of the group answers to, mapped to the pod: its pod IP, its node's address (Ray
    reports the node's for host-network pods) and its DNS name under the headless Service."""
    found: dict[str, str] = {}
    for name in _group_names(deployed, group):
        pod = kube.pod(deployed.namespace, name) or {}
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        for ip in (status.get("podIP"), status.get("hostIP")):
            if ip:
                found[ip] = name
        if spec.get("hostname") and spec.get("subdomain"):
            for dns in pod_dns_names(spec["hostname"], spec["subdomain"], deployed.namespace):
                found[dns] = name
    return found


@pytest.mark.feature("VLLM-MULTINODE", "LogEvidence")
@pytest.mark.feature("VLLM-MULTINODE", "RanksAcrossNodes")
def test_every_rank_of_every_group_loaded_its_weights_across_nodes(
    kube: Kube, deployed: Deployed, settings: Settings, run_state: RunState, record_property: Any
) -> None:
    """MUST, for every group: every rank attributed to a pod of the group (an `ip=` or master address that is
    no pod of the group fails, named), TP x PP ranks (rank-assignment lines, else weight-loading lines with
    Ray's `[repeated Nx]` expanded) on at least two nodes, per-rank sizes within 10% of each other, engine
    config TP and PP equal to the topology's, the server started, the Ray cluster reached the group size (Ray
    launch), and no Traceback, NCCL error or RuntimeError."""
    expect = deployed.expect
    if expect.tp is None or expect.pp is None:
        pytest.skip("the manifest's command does not name TP and PP, so there is nothing to compare against")
    waited = settings.timeouts.in_place_logs if settings.in_place else settings.timeout_ready
    logs, unstarted = _logs_once_started(kube, deployed, waited)
    if unstarted and settings.in_place:
        # it serves (the ready wait saw it answer), so its engine did start: its start-up is gone from the
        # container logs (the kubelet rotates them; a container restarted since starts a new one)
        pytest.skip(
            f"not judged in place: the start-up log is no longer in the container logs (rotated, or the "
            f"container restarted since it started), so what it would show cannot be seen: {unstarted}"
        )
    failures, figures = [], []
    for group, group_logs in logs.items():
        evidence = gather(group_logs, group_addresses(kube, deployed, group))
        excerpt_path = settings.artifacts / run_state.run_id / "evidence" / f"group-{group}.log"
        excerpt_path.parent.mkdir(parents=True, exist_ok=True)
        excerpt_path.write_text("\n".join(evidence.excerpt) + "\n")
        problems = evidence.problems(tp=expect.tp, pp=expect.pp, size=expect.size)
        figures.append(f"{evidence.ranks}/{expect.tp * expect.pp} ranks seen on {len(evidence.nodes)} nodes")
        run_state.write(
            f"evidence-group-{group}",
            {
                "group": group,
                "ranks": evidence.ranks,
                "nodes": evidence.nodes,
                "problems": problems,
                "excerpt": evidence.excerpt[:40],
            },
        )
        if problems:
            failures.append(
                f"group {group}:\n"
                + "\n".join(f"  - {p}" for p in problems)
                + f"\n  (evidence excerpt: {excerpt_path})"
            )
    record_property(
        "figure",
        figures[0] if len(figures) == 1 else "; ".join(f"group {g}: {f}" for g, f in enumerate(figures)),
    )
    if failures and unstarted:
        failures.append(f"judged after waiting {waited:g} s (--timeout-ready): {unstarted}")
    assert not failures, "\n".join(failures)
