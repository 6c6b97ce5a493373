"""In-cluster Locust on the embedded testbed: the reference topology is deployed in a fresh namespace, then
``python -m load.locust --in-cluster`` runs a Locust master and two workers as pods against
``http://vllm-leader.<ns>.svc:8080``. The testbed's bridge runs those pods as local processes pointed at
the group's simulated engine (testbed/bridge/local_pods.py); the run's records come back through the
master's web port (a KWOK port-forward to the master process) and are written in the suite's schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import Overrides, render
from plumbing.wait import NotYet, wait_for
from reports.schema import read_result
from testbed.cluster import TestbedInfo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]

REPO = Path(__file__).resolve().parents[2]
LOCUST_SELECTOR = "app.kubernetes.io/name=locust"


@dataclass(frozen=True)
class Namespace:
    name: str
    kubectl: list[str]

    def run(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([*self.kubectl, "-n", self.name, *args], input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()}"
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json"))


@pytest.fixture
def namespace(testbed: TestbedInfo) -> Iterator[Namespace]:
    ns = Namespace(
        f"locust-{uuid.uuid4().hex[:6]}", [str(testbed.kubectl), "--kubeconfig", str(testbed.kubeconfig)]
    )
    subprocess.run([*ns.kubectl, "create", "namespace", ns.name], check=True, capture_output=True)
    yield ns
    subprocess.run([*ns.kubectl, "delete", "namespace", ns.name, "--wait=false"], capture_output=True)

    def emptied() -> None:  # the next test needs the GPUs back
        left = subprocess.run([*ns.kubectl, "get", "pods", "-n", ns.name, "-o", "name"], capture_output=True,
                              text=True).stdout.split()  # fmt: skip
        if left:
            raise NotYet(f"pods still present: {left}")

    wait_for(emptied, what=f"namespace {ns.name} emptied", timeout=60)


def deploy_reference(ns: Namespace) -> None:
    ns.run(
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(render("tp8-pp2", Overrides(namespace=ns.name))),
    )

    def leader_ready() -> None:
        pod = ns.get("pod", "vllm-0") if "vllm-0" in ns.run("get", "pods", "-o", "name") else {}
        conditions = pod.get("status", {}).get("conditions", [])
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            raise NotYet(f"vllm-0 conditions: {conditions}")

    wait_for(leader_ready, what="the vLLM leader vllm-0 Ready", timeout=90)


def test_in_cluster_locust_runs_on_the_testbed_and_writes_a_result(
    testbed: TestbedInfo, namespace: Namespace, tmp_path: Path
) -> None:
    deploy_reference(namespace)
    out, raw_dir = tmp_path / "result.json", tmp_path / "raw"
    proc = subprocess.run(
        [sys.executable, "-m", "load.locust", "--kubeconfig", str(testbed.kubeconfig),
         "--kubectl", str(testbed.kubectl), "--namespace", namespace.name, "--in-cluster", "--workers", "2",
         "--users", "4", "--spawn-rate", "100", "--run-time", "4", "--input-len", "64", "--output-len", "32",
         "--stop-timeout", "30", "--out", str(out), "--raw-dir", str(raw_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    result = read_result(out)
    level = result.results[0]
    assert result.run.endpoint == f"http://vllm-leader.{namespace.name}.svc:8080"
    assert result.run.model == "meta-llama/Meta-Llama-3.1-405B-Instruct"  # discovered from the Service
    assert level.load.generator == "locust" and level.load.concurrency == 4
    assert level.metrics.requests.completed > 0 and level.metrics.requests.failed == 0
    assert level.metrics.output_tokens == 32 * level.metrics.requests.completed

    collected = [json.loads(line) for line in (raw_dir / "collected.jsonl").read_text().splitlines()]
    workers = {line["worker"] for line in collected if line["type"] == "worker" and line["role"] == "worker"}
    senders = {line["worker"] for line in collected if line["type"] == "request"}
    assert len(workers) == 2 and senders == workers, f"anchors {workers}, requests from {senders}"
    assert "Starting Locust" in (raw_dir / "master.log").read_text()  # `kubectl logs` of the master pod

    def locust_gone() -> None:
        left = namespace.run(
            "get", "pods,services,deployments,configmaps", "-l", LOCUST_SELECTOR, "-o", "name"
        )
        if left.strip():
            raise NotYet(f"still present: {left.split()}")

    wait_for(locust_gone, what="the Locust objects deleted after the run", timeout=60)
