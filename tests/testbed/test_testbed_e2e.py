"""The embedded testbed behaves as a real cluster with two 8-GPU nodes and the real LWS controller.

Each test deploys the vLLM docs' manifest (its image pinned to v0.10.1, a release of its era) in a fresh
namespace. The testbed has 16 GPUs in all, so GPU-holding tests share one xdist group and run one at a time.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.faults import CRASH_COMMAND
from plumbing.ports import free_port
from plumbing.wait import NotYet, wait_for
from suite.conformance.checks.log_evidence import gather
from testbed.cluster import TestbedInfo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]

SEED = Path(__file__).parents[2] / "manifests" / "reference" / "seed.yaml"
PINNED_IMAGE = "docker.io/vllm/vllm-openai:v0.10.1"


class Kube:
    """kubectl against the testbed, scoped to one namespace; JSON in and out."""

    def __init__(self, info: TestbedInfo, namespace: str) -> None:
        self.base = [str(info.kubectl), "--kubeconfig", str(info.kubeconfig)]
        self.namespace = namespace

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [*self.base, "-n", self.namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json"))

    def apply(self, documents: list[dict[str, Any]]) -> None:
        self.run("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(documents))

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.get("pods")["items"]}


def seed_documents(
    image: str = PINNED_IMAGE, *, size: int | None = None, name: str = "vllm"
) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "LeaderWorkerSet":
            doc["metadata"]["name"] = name
            template = doc["spec"]["leaderWorkerTemplate"]
            for role in ("leaderTemplate", "workerTemplate"):
                for container in template[role]["spec"]["containers"]:
                    container["image"] = image
            if size is not None:
                template["size"] = size
    return docs


def is_ready(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def lws_available(kube: Kube, name: str = "vllm") -> bool:
    conditions = kube.get("lws", name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


@pytest.fixture
def kube(testbed: TestbedInfo) -> Iterator[Kube]:
    namespace = f"tb-{uuid.uuid4().hex[:6]}"
    kube = Kube(testbed, namespace)
    subprocess.run([*kube.base, "create", "namespace", namespace], check=True, capture_output=True)
    wait_for(lambda: kube.get("serviceaccount", "default") or None, what="ServiceAccount default", timeout=30)
    yield kube
    subprocess.run([*kube.base, "delete", "namespace", namespace, "--wait=false"], capture_output=True)

    def gone() -> None:  # the next test needs these GPUs back
        left = subprocess.run(
            [*kube.base, "get", "pods", "-n", namespace, "-o", "name"], capture_output=True, text=True
        ).stdout.split()
        if left:
            raise NotYet(f"pods still present: {left}")

    wait_for(gone, what=f"namespace {namespace} emptied", timeout=60)


def deploy_seed(kube: Kube, **kwargs: Any) -> dict[str, dict[str, Any]]:
    kube.apply(seed_documents(**kwargs))

    def group_ready() -> dict[str, dict[str, Any]]:
        pods = kube.pods()
        ready = sorted(n for n, p in pods.items() if is_ready(p))
        if ready != ["vllm-0", "vllm-0-1"] or not lws_available(kube):
            raise NotYet(f"ready pods {ready}, LWS Available={lws_available(kube)}")
        return pods

    return wait_for(group_ready, what="vllm-0 and vllm-0-1 Ready and the LWS Available", timeout=60)


def uids(kube: Kube) -> dict[str, str]:
    return {n: p["metadata"]["uid"] for n, p in kube.pods().items()}


def wait_group_recreated(kube: Kube, before: dict[str, str]) -> dict[str, str]:
    def recreated() -> dict[str, str]:
        pods = kube.pods()
        now = {n: p["metadata"]["uid"] for n, p in pods.items() if not p["metadata"].get("deletionTimestamp")}
        ready = sorted(
            n for n, p in pods.items() if is_ready(p) and not p["metadata"].get("deletionTimestamp")
        )
        common = set(now.values()) & set(before.values())
        if ready != ["vllm-0", "vllm-0-1"] or common or not lws_available(kube):
            raise NotYet(
                f"ready {ready}, UIDs in common with before: {len(common)}, Available={lws_available(kube)}"
            )
        return now

    return wait_for(recreated, what="the whole group recreated with new UIDs", timeout=90)


def test_seed_manifest_runs_leader_and_worker_on_two_nodes(kube: Kube) -> None:
    pods = deploy_seed(kube)
    nodes = {name: pods[name]["spec"]["nodeName"] for name in ("vllm-0", "vllm-0-1")}
    assert len(set(nodes.values())) == 2, f"leader and worker share a node: {nodes}"
    for name in nodes:
        limits = pods[name]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "8"


def test_lws_webhook_injects_labels_annotations_and_env(kube: Kube) -> None:
    pods = deploy_seed(kube)
    leader, worker = pods["vllm-0"], pods["vllm-0-1"]
    prefix = "leaderworkerset.sigs.k8s.io/"
    for pod, index in ((leader, "0"), (worker, "1")):
        labels = pod["metadata"]["labels"]
        assert labels[prefix + "name"] == "vllm"
        assert labels[prefix + "group-index"] == "0"
        assert labels[prefix + "worker-index"] == index
        assert len(labels[prefix + "group-key"]) == 40
        assert pod["metadata"]["annotations"][prefix + "size"] == "2"
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["LWS_LEADER_ADDRESS"] == f"vllm-0.vllm.{kube.namespace}"
        assert env["LWS_GROUP_SIZE"] == "2"
        assert env["LWS_WORKER_INDEX"] == index
    assert (
        leader["metadata"]["labels"][prefix + "group-key"]
        == worker["metadata"]["labels"][prefix + "group-key"]
    )
    assert worker["metadata"]["annotations"][prefix + "leader-name"] == "vllm-0"
    assert leader["metadata"]["labels"]["role"] == "leader"


def test_deleting_the_worker_recreates_the_whole_group(kube: Kube) -> None:
    deploy_seed(kube)
    before = uids(kube)
    kube.run("delete", "pod", "vllm-0-1", "--wait=false")
    wait_group_recreated(kube, before)


def test_worker_container_restart_recreates_the_whole_group(kube: Kube) -> None:
    pods = deploy_seed(kube)
    before = uids(kube)
    container = pods["vllm-0-1"]["spec"]["containers"][0]["name"]
    # A crash as on a node, with the suite's own command: `kubectl exec` kills the container's processes (KWOK's
    # Exec runs it as the pod's sandbox user), the testbed's kubelet reports restartCount 1, and LWS recreates
    # the group.
    kube.run("exec", "vllm-0-1", "-c", container, "--", "sh", "-c", CRASH_COMMAND)
    wait_group_recreated(kube, before)


def test_leader_service_endpoints_hold_the_leader_only(kube: Kube) -> None:
    pods = deploy_seed(kube)
    leader_ip = pods["vllm-0"]["status"]["podIP"]

    def endpoints() -> list[str]:
        slices = kube.get("endpointslices", "-l", "kubernetes.io/service-name=vllm-leader")["items"]
        names = sorted(ep["targetRef"]["name"] for s in slices for ep in s.get("endpoints") or [])
        if not names:
            raise NotYet("no endpoints yet")
        return names

    assert wait_for(endpoints, what="vllm-leader endpoints", timeout=30) == ["vllm-0"]
    slices = kube.get("endpointslices", "-l", "kubernetes.io/service-name=vllm-leader")["items"]
    assert [a for s in slices for ep in s["endpoints"] for a in ep["addresses"]] == [leader_ip]
    assert {p["port"] for s in slices for p in s["ports"]} == {8080}


def test_kubectl_logs_and_port_forward_reach_the_simulated_engine(kube: Kube, testbed: TestbedInfo) -> None:
    deploy_seed(kube)

    def all_ranks_loaded() -> None:
        text = kube.run("logs", "vllm-0", check=False)
        evidence = gather({"vllm-0": text})
        if evidence.ranks < 16 or len(evidence.nodes) < 2 or not evidence.server_started:
            raise NotYet(f"{evidence.ranks} ranks from {evidence.nodes}; log so far ends {text[-200:]!r}")

    wait_for(
        all_ranks_loaded,
        what="weight loading of all 16 ranks, from 2 nodes, in `kubectl logs vllm-0`",
        timeout=60,
    )
    port = free_port()
    forward = subprocess.Popen(
        [
            *kube.base,
            "-n",
            kube.namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            "svc/vllm-leader",
            f"{port}:8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()
        assert first.startswith(f"Forwarding from 127.0.0.1:{port} -> 8080"), first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as resp:
            models = json.load(resp)
        assert models["data"][0]["id"] == "meta-llama/Meta-Llama-3.1-405B-Instruct"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_gpus_are_accounted_for(kube: Kube) -> None:
    """Two 8-GPU pods more than the testbed has 8-GPU nodes (two, or more when an earlier test of the run needed
    more: testbed/nodes.py ensure_nodes) cannot fit: two stay Pending with a FailedScheduling event."""
    nodes = len(kube.get("nodes")["items"])
    kube.apply(seed_documents(size=nodes + 2))

    def pending_for_gpus() -> list[str]:
        events = kube.get("events", "--field-selector", "reason=FailedScheduling")["items"]
        messages = [e.get("message") or e.get("note") or "" for e in events]
        gpu = [m for m in messages if "nvidia.com/gpu" in m]
        if not gpu:
            raise NotYet(f"FailedScheduling events: {messages}")
        # a pod just bound may not be Running yet: settled is every bound pod Running, the unplaced Pending
        phases = sorted(p["status"].get("phase") for p in kube.pods().values())
        if any(p not in ("Pending", "Running") for p in phases) or phases.count("Running") < len(phases) - 2:
            raise NotYet(f"pod phases {phases}")
        return phases

    phases = wait_for(pending_for_gpus, what="a FailedScheduling event naming nvidia.com/gpu", timeout=60)
    assert phases.count("Pending") == 2, phases
    assert not lws_available(kube)


def test_the_seed_manifest_as_written_fails_as_current_vllm_fails(kube: Kube) -> None:
    """`:latest` is current vLLM: its image has no examples/online_serving/multi-node-serving.sh, and `vllm serve`
    without --distributed-executor-backend ray refuses a world size larger than the node's GPUs."""
    kube.apply(seed_documents(image="docker.io/vllm/vllm-openai:latest"))

    def leader_failed() -> str:
        text = kube.run("logs", "vllm-0", check=False)
        if "World size (16) is larger than the number of available GPUs (8)" not in text:
            raise NotYet(f"leader log so far ends {text[-300:]!r}")
        return text

    text = wait_for(leader_failed, what="vLLM's world-size error in `kubectl logs vllm-0`", timeout=60)
    assert "multi-node-serving.sh: No such file or directory" in text
    assert "--distributed-executor-backend ray" in text
    assert not is_ready(kube.pods()["vllm-0"]), "a leader whose vLLM failed must not be Ready"
