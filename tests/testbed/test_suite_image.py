"""The testbed's view of the suite's image (testbed/bridge/suite_image.py) against the Containerfile, and what
it makes of a pod: its user, command, volumes, /etc/hosts and Service listeners."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from testbed.bridge import suite_image

CONTAINERFILE = (Path(__file__).resolve().parents[2] / "Containerfile").read_text()


def test_the_testbed_runs_the_image_the_containerfile_builds() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", CONTAINERFILE, re.M)
    assert user is not None and int(user.group(1)) == suite_image.USER
    assert f"ENTRYPOINT {json.dumps(list(suite_image.ENTRYPOINT))}" in CONTAINERFILE
    assert f"CMD {json.dumps(list(suite_image.CMD))}" in CONTAINERFILE
    assert f"nox --install-only -s {' '.join(suite_image.SESSIONS)}" in CONTAINERFILE
    for name, value in suite_image.IMAGE_ENV.items():
        assert re.search(rf"\b{name}={re.escape(value)}\b", CONTAINERFILE), name
    assert (
        "ARG LWS_SUITE_REVISION" in CONTAINERFILE
        and "LWS_SUITE_REVISION=${LWS_SUITE_REVISION}" in CONTAINERFILE
    )


@pytest.mark.parametrize(
    ("image", "mine"),
    [
        ("registry.example.com/lws-vllm-suite:main", True),
        ("localhost:5000/team/lws-vllm-suite:v1", True),
        ("lws-vllm-suite:dev", True),
        ("docker.io/vllm/vllm-openai:v0.10.1", False),
        ("registry.example.com/lws-vllm-suite-fork:main", False),
    ],
)
def test_which_images_are_the_suites(image: str, mine: bool) -> None:
    assert suite_image.is_suite_image(image) is mine


def test_the_user_comes_from_the_pod_else_the_image() -> None:
    assert suite_image.identity({"spec": {}}, {}).uid == 65532
    pod = {"spec": {"securityContext": {"runAsUser": 1234, "runAsGroup": 99}}}
    assert (suite_image.identity(pod, {}).uid, suite_image.identity(pod, {}).gid) == (1234, 99)
    container = {"securityContext": {"runAsUser": 42, "readOnlyRootFilesystem": True}}
    who = suite_image.identity(pod, container)
    assert (who.uid, who.read_only_root) == (42, True)


def test_run_as_non_root_refuses_user_0() -> None:
    pod = {"spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 0}}}
    with pytest.raises(suite_image.NotRunnable, match="runAsNonRoot"):
        suite_image.identity(pod, {})


def test_command_and_args_compose_with_the_entrypoint_as_a_runtime_does() -> None:
    env = {"NS": "prod"}
    assert suite_image.argv_of({}, env) == ["nox", "-R", *suite_image.CMD]
    assert suite_image.argv_of({"args": ["-s", "report"]}, env) == ["nox", "-R", "-s", "report"]
    assert suite_image.argv_of({"command": ["sh", "-c"], "args": ["echo $(NS)"]}, env) == [
        "sh",
        "-c",
        "echo prod",
    ]


def test_only_empty_dirs_are_mounted() -> None:
    pod: dict[str, Any] = {
        "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "r", "persistentVolumeClaim": {}}]}
    }
    assert suite_image.volume_mounts(pod, {"volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}) == [
        ("tmp", "/tmp", False)
    ]
    with pytest.raises(suite_image.NotRunnable, match="persistentVolumeClaim"):
        suite_image.volume_mounts(pod, {"volumeMounts": [{"name": "r", "mountPath": "/results"}]})


def test_hosts_name_services_as_cluster_dns_does() -> None:
    text = suite_image.hosts_file({("ns1", "vllm-leader"): "127.96.0.1", ("other", "x"): "127.96.0.2"}, "ns1")
    lines = text.splitlines()
    assert (
        "127.96.0.1 vllm-leader.ns1.svc.cluster.local vllm-leader.ns1.svc vllm-leader.ns1 vllm-leader"
        in lines
    )
    assert (
        "127.96.0.2 x.other.svc.cluster.local x.other.svc x.other" in lines
    )  # no bare name across namespaces


def test_listeners_balance_over_ready_endpoints_only() -> None:
    service = {
        "metadata": {"namespace": "n", "name": "s"},
        "spec": {"ports": [{"port": 8080, "name": "http"}]},
    }
    endpoint_slice = {
        "metadata": {"namespace": "n", "labels": {"kubernetes.io/service-name": "s"}},
        "ports": [{"name": "http", "port": 8000}],
        "endpoints": [
            {"targetRef": {"kind": "Pod", "name": "a"}, "conditions": {"ready": True}},
            {"targetRef": {"kind": "Pod", "name": "b"}, "conditions": {"ready": False}},
            {"targetRef": {"kind": "Pod", "name": "c"}, "conditions": {"ready": True}},
        ],
    }
    ports = {("a", 8000): 41000, ("b", 8000): 41001, ("c", 8000): 41002}
    table = suite_image.listeners(
        [service], [endpoint_slice], {("n", "s"): "127.96.0.1"}, lambda ns, pod, port: ports.get((pod, port))
    )
    assert table == [
        {"address": "127.96.0.1", "port": 8080, "backends": [["127.0.0.1", 41000], ["127.0.0.1", 41002]]}
    ]
