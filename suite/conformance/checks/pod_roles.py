"""Pod roles: the objects LWS promises for each group (lws:pkg/webhooks/pod_webhook.go, pod_utils.go,
pkg/controllers/*; research/lws_vllm.md §2). Each function returns the problems it found; [] means conformant.
"""

from __future__ import annotations

import re

from fixtures.cluster_views import GPU
from fixtures.cluster_views import LWS_LABEL as P
from fixtures.snapshot import Expectation, Snapshot


def expected_pod_names(expect: Expectation) -> dict[str, tuple[int, int]]:
    """Pod name -> (group index, worker index): leaders <lws>-<g>, workers <lws>-<g>-<w> for w in 1..size-1."""
    names = {}
    for group in range(expect.replicas):
        names[f"{expect.lws_name}-{group}"] = (group, 0)
        for worker in range(1, expect.size):
            names[f"{expect.lws_name}-{group}-{worker}"] = (group, worker)
    return names


def pods_are_named_by_group_and_worker_index(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: one leader `<lws>-<group>` and size-1 workers `<lws>-<group>-<index>` per replica, nothing else."""
    want = set(expected_pod_names(expect))
    have = {p.name for p in snap.pods}
    problems = []
    if missing := sorted(want - have):
        problems.append(f"missing pods {missing} (expected {expect.replicas} group(s) of size {expect.size})")
    if extra := sorted(have - want):
        problems.append(f"unexpected pods {extra}")
    return problems


def leader_and_worker_labels_identify_their_group(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: name, group-index and worker-index labels match the pod name; group-key is the same 40-hex value
    within a group and differs between groups; the leader template's labels (e.g. role: leader) are on leaders
    only."""
    problems = []
    index = expected_pod_names(expect)
    keys: dict[int, set[str]] = {}
    for pod in snap.pods:
        name, labels = pod.name, pod.labels
        if name not in index:
            continue
        group, worker = index[name]
        for key, want in (
            (P + "name", expect.lws_name),
            (P + "group-index", str(group)),
            (P + "worker-index", str(worker)),
        ):
            if labels.get(key) != want:
                problems.append(f"{name}: label {key}={labels.get(key)!r}, expected {want!r}")
        key = labels.get(P + "group-key", "")
        if not re.fullmatch(r"[0-9a-f]{40}", key):
            problems.append(f"{name}: label {P}group-key={key!r} is not a 40-character sha1 hex")
        keys.setdefault(group, set()).add(key)
        for label, value in expect.leader_labels.items():
            if worker == 0 and labels.get(label) != value:
                problems.append(f"{name}: leader lacks its template label {label}={value}")
            if worker != 0 and labels.get(label) == value:
                problems.append(f"{name}: worker carries the leader label {label}={value}")
    for group, values in keys.items():
        if len(values) != 1:
            problems.append(f"group {group}: pods disagree on {P}group-key: {sorted(values)}")
    flat = [next(iter(v)) for v in keys.values() if len(v) == 1]
    if len(flat) != len(set(flat)):
        problems.append(f"two groups share a {P}group-key")
    return problems


def size_and_leader_name_annotations_are_set(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: every pod carries size=<group size>; every worker carries leader-name=<its leader>; leaders
    carry no leader-name (a leader with one is refused by the controller, lws#391)."""
    problems = []
    for pod in snap.pods:
        name, ann = pod.name, pod.annotations
        index = expected_pod_names(expect).get(name)
        if index is None:
            continue
        if ann.get(P + "size") != str(expect.size):
            problems.append(
                f"{name}: annotation {P}size={ann.get(P + 'size')!r}, expected {str(expect.size)!r}"
            )
        leader = f"{expect.lws_name}-{index[0]}"
        if index[1] == 0 and P + "leader-name" in ann:
            problems.append(f"{name}: leader carries {P}leader-name")
        if index[1] != 0 and ann.get(P + "leader-name") != leader:
            problems.append(
                f"{name}: annotation {P}leader-name={ann.get(P + 'leader-name')!r}, expected {leader!r}"
            )
    return problems


def lws_environment_is_injected_first_with_exact_values(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: LWS_LEADER_ADDRESS=<lws>-<group>.<subdomain>.<namespace>, LWS_GROUP_SIZE=<size> and
    LWS_WORKER_INDEX=<index> lead the container's env, in that order, so user env can refer to them."""
    problems = []
    for pod in snap.pods:
        name = pod.name
        index = expected_pod_names(expect).get(name)
        if index is None:
            continue
        subdomain = pod.subdomain or expect.lws_name
        want = [
            ("LWS_LEADER_ADDRESS", f"{expect.lws_name}-{index[0]}.{subdomain}.{expect.namespace}"),
            ("LWS_GROUP_SIZE", str(expect.size)),
            ("LWS_WORKER_INDEX", str(index[1])),
        ]
        env = [(e.name, e.value) for e in pod.containers[0].env]
        have = dict(env)
        for key, value in want:
            if have.get(key) != value:
                problems.append(f"{name}: env {key}={have.get(key)!r}, expected {value!r}")
        if [k for k, _ in env[:3]] != [k for k, _ in want] and all(k in have for k, _ in want):
            problems.append(f"{name}: LWS_* env vars are not first in order: {[k for k, _ in env[:3]]}")
    return problems


def leader_and_workers_run_on_different_nodes(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST (multi-node topology): each pod of a group holds a whole GPU node, so no two share a node."""
    problems = []
    by_group: dict[int, dict[str, str | None]] = {}
    for pod in snap.pods:
        index = expected_pod_names(expect).get(pod.name)
        if index is not None:
            by_group.setdefault(index[0], {})[pod.name] = pod.node
    for group, placement in sorted(by_group.items()):
        nodes = [n for n in placement.values() if n]
        if len(nodes) != len(set(nodes)):
            problems.append(f"group {group}: pods share a node: {placement}")
    return problems


def pods_request_and_limit_their_gpus(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: each vLLM container requests and limits exactly the topology's GPUs per pod, and the node it
    landed on has that many allocatable; a CPU topology's pods (0 GPUs per pod) ask for none at all."""
    problems = []
    want: str | None = str(expect.gpus_per_pod) if expect.gpus_per_pod > 0 else None
    for pod in snap.pods:
        name, container = pod.name, pod.containers[0]
        limit, request = container.gpu_limit, container.gpu_request
        if limit != want or request != want:
            expected = want if want is not None else "none (a CPU topology)"
            problems.append(f"{name}: {GPU} request {request!r} / limit {limit!r}, expected {expected}")
        node = snap.nodes.get(pod.node or "")
        if node is not None and node.allocatable_gpus < expect.gpus_per_pod:
            problems.append(f"{name}: node {node.name} has {node.allocatable_gpus} {GPU} allocatable")
    return problems


def worker_statefulsets_are_owned_by_their_leader_pod(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: the worker StatefulSet `<lws>-<group>` has the leader pod as its controller owner (so deleting
    the leader takes the workers with it), and the leader StatefulSet `<lws>` is owned by the LWS."""
    problems = []
    sts = {s.name: s for s in snap.statefulsets}
    lws_uid = snap.lws.uid if snap.lws is not None else None
    leader_sts = sts.get(expect.lws_name)
    if leader_sts is None:
        problems.append(f"leader StatefulSet {expect.lws_name} not found")
    elif not any(o.uid == lws_uid and o.controller for o in leader_sts.owners):
        problems.append(f"leader StatefulSet {expect.lws_name} is not controlled by LWS {expect.lws_name}")
    if expect.size < 2:
        return problems
    for group in range(expect.replicas):
        name = f"{expect.lws_name}-{group}"
        worker_sts, leader = sts.get(name), snap.pod(name)
        if worker_sts is None or leader is None:
            problems.append(f"group {group}: worker StatefulSet {name} or leader pod {name} not found")
            continue
        owners = worker_sts.owners
        if not any(o.kind == "Pod" and o.uid == leader.uid and o.controller for o in owners):
            problems.append(
                f"worker StatefulSet {name} is not controlled by leader pod {name} "
                f"(owners: {[(o.kind, o.name) for o in owners]})"
            )
        if worker_sts.replicas != expect.size - 1:
            problems.append(
                f"worker StatefulSet {name} has {worker_sts.replicas} replicas, expected {expect.size - 1}"
            )
    return problems


def lws_reports_available_with_all_replicas_ready(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: the LWS condition Available=True (reason AllGroupsReady) and readyReplicas == replicas."""
    if snap.lws is None:
        return [f"LWS {expect.lws_name} not found"]
    available = snap.lws.condition("Available")
    problems = []
    if available is None or available.status != "True":
        problems.append(f"LWS condition Available is {dict(available.raw) if available else 'missing'}")
    if snap.lws.ready_replicas != expect.replicas:
        problems.append(f"LWS readyReplicas={snap.lws.ready_replicas}, expected {expect.replicas}")
    return problems


CHECKS = [
    pods_are_named_by_group_and_worker_index,
    leader_and_worker_labels_identify_their_group,
    size_and_leader_name_annotations_are_set,
    lws_environment_is_injected_first_with_exact_values,
    leader_and_workers_run_on_different_nodes,
    pods_request_and_limit_their_gpus,
    worker_statefulsets_are_owned_by_their_leader_pod,
    lws_reports_available_with_all_replicas_ready,
]
