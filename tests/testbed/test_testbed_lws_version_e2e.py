"""A testbed with LWS v0.8.0 (`--lws-version v0.8.0`): that release's CRD is what the API server serves, its
controller is what runs, as its own ServiceAccount with that release's RBAC, and the feature inference reads
v0.8's forms from the live cluster."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.feature_support import LWS_CRD, Target, infer
from fixtures.lws_release import LwsRelease
from plumbing.wait import NotYet, wait_for
from testbed.cluster import Testbed, TestbedInfo
from testbed.versions import version_set

pytestmark = [pytest.mark.e2e, pytest.mark.long]


def _kubectl(info: TestbedInfo, *args: str, kubeconfig: Path | None = None, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(info.kubectl), "--kubeconfig", str(kubeconfig or info.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


def _schema(crd: dict[str, Any], *path: str) -> dict[str, Any]:
    node: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for name in path:
        node = node["properties"][name]
    return node


@pytest.fixture(scope="module")
def lws_v08() -> Any:
    testbed = Testbed(
        f"v08-{uuid.uuid4().hex[:6]}", progress=lambda _: None, versions=version_set(lws="v0.8.0")
    )
    try:
        yield testbed, testbed.up()
    finally:
        testbed.down()


def test_the_testbed_runs_lws_v0_8_0_as_that_release_installs_it(lws_v08: Any) -> None:
    testbed, info = lws_v08
    assert (info.lws_version, info.kubernetes_version) == ("v0.8.0", "v1.36.3")
    server = json.loads(_kubectl(info, "version", "-o", "json"))["serverVersion"]["gitVersion"]
    assert server == "v1.36.3"

    # the CRD the API server serves is v0.8.0's: no RecreateGroupAfterStart value, no status.observedGeneration
    crd = json.loads(_kubectl(info, "get", "crd", LWS_CRD, "-o", "json"))
    enum = _schema(crd, "spec", "leaderWorkerTemplate", "restartPolicy")["enum"]
    assert "RecreateGroupOnPodRestart" in enum and "RecreateGroupAfterStart" not in enum
    assert "observedGeneration" not in _schema(crd, "status")["properties"]
    assert "disaggregatedsets.disaggregatedset.x-k8s.io" not in _kubectl(info, "get", "crd", "-o", "name")

    # the controller that runs is v0.8.0's, and it runs as the release's ServiceAccount
    (pid,) = [c.pid for c in testbed.status() if c.name == "lws-manager"]
    exe = Path(f"/proc/{pid}/exe").resolve()
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert "Version: v0.8.0" in version.stdout
    kubeconfig = info.state_dir / "lws" / "kubeconfig.yaml"
    assert f"--kubeconfig={kubeconfig}" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    whoami = json.loads(_kubectl(info, "auth", "whoami", "-o", "json", kubeconfig=kubeconfig))
    assert (
        whoami["status"]["userInfo"]["username"] == "system:serviceaccount:lws-system:lws-controller-manager"
    )

    # with only that RBAC, the controller does its work: an LWS gets its leader StatefulSet
    name = "probe"
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": {"spec": {"containers": [{"name": "c", "image": "probe"}]}},
            },
        },
    }
    _kubectl(info, "apply", "--server-side", "-f", "-", stdin=json.dumps(lws))

    def leader_statefulset() -> None:
        out = subprocess.run(
            [str(info.kubectl), "--kubeconfig", str(info.kubeconfig), "-n", "default", "get", "sts", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if out.returncode != 0:
            raise NotYet(out.stderr.strip())

    wait_for(leader_statefulset, what="LWS v0.8.0 to create the leader StatefulSet", timeout=60)
    _kubectl(info, "delete", "lws", name, "-n", "default", "--wait=false")

    # inference on the live cluster: v0.8's RecreateGroupAfterStart is its annotation; no observedGeneration
    support = infer(Target(crd, None, info.lws_version, replicas=1))
    assert "RecreateGroupAfterStart" in support.supported
    assert "experimental-recreate-group-after-start" in support.reasons["RecreateGroupAfterStart"]
    release = LwsRelease(info.lws_version)
    assert release.recreate_after_start == "annotation" and not release.observed_generation
