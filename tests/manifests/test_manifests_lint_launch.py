"""The lint's rules on the leader's launch command: TP x PP against the group, Ray's cluster size, a command it
cannot read, and vLLM's own multi-node launch (mp), each failing on a manifest wrong in its way."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lint_testkit import (
    Broken,
    Objects,
    assert_rule_fires,
    broken_cases,
    edit_leader_command,
    leader,
)

from manifests import lint, parse_manifest

BROKEN: list[Broken] = [
    # (id, how it is broken, code, severity, a phrase the message must hold)
    (
        "tp-not-matching-gpus",
        edit_leader_command("--tensor-parallel-size 8", "--tensor-parallel-size 4"),
        "parallelism-mismatch",
        "error",
        "TP 4 x PP 2 = 8 GPUs, but the group has 16",
    ),
    (
        "pp-underscore-spelling-read",
        edit_leader_command("--pipeline_parallel_size 2", "--pipeline_parallel_size 4"),
        "parallelism-mismatch",
        "error",
        "PP 4",
    ),
    (
        "ray-cluster-size-literal",
        edit_leader_command("$(LWS_GROUP_SIZE)", "3"),
        "ray-cluster-size",
        "error",
        "--ray_cluster_size=3",
    ),
    (
        "command-without-vllm-serve",
        lambda o: leader(o).__setitem__("command", ["sleep", "infinity"]),
        "command-unreadable",
        "warning",
        "found no `vllm serve`",
    ),
]


@pytest.mark.parametrize(("breakage", "code", "severity", "phrase"), broken_cases(BROKEN))
def test_each_rule_fails_on_a_manifest_wrong_in_its_way(
    breakage: Callable[[Objects], None], code: str, severity: str, phrase: str
) -> None:
    assert_rule_fires(breakage, code, severity, phrase)


DOCS_MP_MANIFEST = """
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: vllm}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    restartPolicy: RecreateGroupOnPodRestart
    leaderTemplate:
      metadata: {labels: {role: leader}}
      spec:
        containers:
          - name: vllm-leader
            image: docker.io/vllm/vllm-openai:v0.33.0
            command: [sh, -c, "vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct --tensor-parallel-size 8
              --pipeline-parallel-size $(LWS_GROUP_SIZE) --nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX)
              --master-addr $(LWS_LEADER_ADDRESS) --port 8080"]
            resources: {limits: {nvidia.com/gpu: "8"}}
            ports: [{containerPort: 8080}]
            readinessProbe: {tcpSocket: {port: 8080}}
            volumeMounts: [{mountPath: /dev/shm, name: dshm}]
        volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: 15Gi}}]
    workerTemplate:
      spec:
        containers:
          - name: vllm-worker
            image: docker.io/vllm/vllm-openai:v0.33.0
            command: [sh, -c, "vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct --tensor-parallel-size 8
              --pipeline-parallel-size $(LWS_GROUP_SIZE) --nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX)
              --master-addr $(LWS_LEADER_ADDRESS) --headless"]
            resources: {limits: {nvidia.com/gpu: "8"}}
            volumeMounts: [{mountPath: /dev/shm, name: dshm}]
        volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: 15Gi}}]
---
apiVersion: v1
kind: Service
metadata: {name: vllm-leader}
spec:
  ports: [{name: http, port: 8080, targetPort: 8080}]
  selector: {leaderworkerset.sigs.k8s.io/name: vllm, role: leader}
"""


def test_the_current_docs_multiprocessing_launch_needs_no_ray_flag() -> None:
    report = lint(parse_manifest(DOCS_MP_MANIFEST, source="docs-mp.yaml"))
    assert report.findings == (), [str(f) for f in report.findings]


# vLLM's own multi-node launch (mp) ------------------------------------------------------------------------
def _mp_codes(edit: str, replacement: str, role: str = "both") -> set[str]:
    from manifests.manifest import Manifest
    from manifests.render import render

    objects = render("cpu-tp1-pp2")
    templates = objects[0]["spec"]["leaderWorkerTemplate"]
    for key in ("leaderTemplate", "workerTemplate"):
        if role in ("both", key):
            container = templates[key]["spec"]["containers"][0]
            container["command"][-1] = container["command"][-1].replace(edit, replacement)
    return lint(Manifest.from_objects(objects)).codes()


def test_the_mp_launch_as_rendered_passes() -> None:
    assert _mp_codes("", "") == set()


def test_an_mp_node_count_other_than_the_group_size_is_an_error() -> None:
    assert "mp-nnodes" in _mp_codes("--nnodes $(LWS_GROUP_SIZE)", "--nnodes 3")


def test_an_mp_worker_that_is_not_headless_or_takes_the_leaders_rank_is_an_error() -> None:
    assert "mp-worker" in _mp_codes(" --headless", "", role="workerTemplate")
    assert "mp-worker" in _mp_codes("--node-rank $(LWS_WORKER_INDEX)", "--node-rank 0", role="workerTemplate")


def test_mp_pods_naming_different_master_addresses_is_an_error() -> None:
    assert "mp-master-addr" in _mp_codes(
        "--master-addr $(LWS_LEADER_ADDRESS)", "--master-addr 10.0.0.1", role="workerTemplate"
    )


def test_mp_ranks_per_pod_must_match_the_pods_devices() -> None:
    codes = _mp_codes("--tensor-parallel-size 1", "--tensor-parallel-size 2")  # 4 ranks over 2 CPU pods
    assert codes & {"mp-ranks-per-pod", "parallelism-mismatch"}
