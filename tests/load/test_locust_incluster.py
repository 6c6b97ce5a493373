"""In-cluster Locust without a cluster: the manifests (load/locust/manifests.py) and how the testbed's bridge
reads them to run the pods as local processes (testbed/bridge/local_pod_spec.py). The end-to-end run on the
testbed is tests/testbed/test_locust_incluster_e2e.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from load.locust.manifests import PORT_ENV, RUN_LOCALLY, LocustSpec, render
from testbed.bridge.local_pod_spec import (
    CannotRunLocally,
    local_pod,
    parse_port_env,
    rewrite_mounts,
    rewrite_services,
)

REPO = Path(__file__).resolve().parents[2]
FILES = {"locustfile.py": "# the locustfile", "locust_stream.py": "# its helper"}


def spec(**overrides: object) -> LocustSpec:
    values: dict[str, object] = {
        "namespace": "bench", "name": "locust-abc", "target_url": "http://vllm-leader.bench.svc:8080",
        "workers": 2, "users": 8, "spawn_rate": 8, "run_time": "60s", "locust_args": ("--model", "m"),
        "files": FILES,
    }  # fmt: skip
    values.update(overrides)
    return LocustSpec(**values)  # type: ignore[arg-type]


def as_pod(template: dict, name: str = "p", uid: str = "u-1", phase: str = "Running") -> dict:
    """What the API server returns for a pod made from a template (the fields the bridge reads)."""
    return {
        "metadata": {**template["metadata"], "name": name, "namespace": "bench", "uid": uid},
        "spec": {**template["spec"], "nodeName": "gpu-node-0"},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_the_manifests_run_a_master_its_service_and_workers_against_the_service_dns_name() -> None:
    config_map, service, master, workers = render(spec())
    assert {o["metadata"]["namespace"] for o in (config_map, service, master, workers)} == {"bench"}
    assert config_map["data"] == FILES
    assert {p["port"] for p in service["spec"]["ports"]} == {5557, 8089}
    assert service["spec"]["selector"] == {"app.kubernetes.io/instance": "locust-abc",
                                           "app.kubernetes.io/component": "master"}  # fmt: skip
    container = master["spec"]["containers"][0]
    args = container["args"]
    assert container["command"] == ["locust"] and args[:2] == ["-f", "/mnt/locust/locustfile.py"]
    for flag, value in (("--host", "http://vllm-leader.bench.svc:8080"), ("--users", "8"), ("--run-time", "60s"),
                        ("--expect-workers", "2"), ("--raw-dir", "/results"), ("--model", "m")):  # fmt: skip
        assert args[args.index(flag) + 1] == value
    assert {"--master", "--autostart", "--records-to-master"} <= set(args) and "--headless" not in args
    assert master["spec"]["restartPolicy"] == "Never"
    worker = workers["spec"]["template"]
    assert workers["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["LOCUST_MASTER_NODE_HOST"] == "locust-abc-master.bench.svc"
    for template in (master, worker):
        assert template["metadata"]["labels"][RUN_LOCALLY] == "true"
        assert template["spec"]["automountServiceAccountToken"] is False
    assert master["metadata"]["annotations"][PORT_ENV] == "LOCUST_MASTER_BIND_PORT=5557,LOCUST_WEB_PORT=8089"
    assert worker["metadata"]["annotations"][PORT_ENV] == "LOCUST_MASTER_NODE_PORT=locust-abc-master:5557"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": "Locust"}, "DNS-1035"),
        ({"namespace": "a_b"}, "DNS-1123"),
        ({"workers": 0}, "greater than or equal to 1"),
        ({"files": {"dir/locustfile.py": ""}}, "without '/'"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_spec_is_refused(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        spec(**overrides)


def test_the_locustfile_must_be_shipped() -> None:
    with pytest.raises(ValueError, match="must hold the locustfile"):
        render(spec(files={"locust_stream.py": ""}))


def test_the_locust_manifests_import_nothing_else_of_ours() -> None:
    """load may import only reports (docs/architecture.md); the manifests module needs nothing of ours at all."""
    source = REPO / "load" / "locust" / "manifests.py"
    for node in ast.walk(ast.parse(source.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in {
                "load",
                "reports",
                "fixtures",
                "suite",
                "testbed",
                "manifests",
            }, f"{source.name} imports {name}"


def test_the_bridge_reads_the_rendered_pods() -> None:
    _, _, master, workers = render(spec())
    view = local_pod(as_pod(master))
    assert view is not None and view.running and view.restart_policy == "Never"
    assert view.container_ports == {"5557": 5557, "master": 5557, "8089": 8089, "web": 8089}
    assert view.port_env == (("LOCUST_MASTER_BIND_PORT", "5557"), ("LOCUST_WEB_PORT", "8089"))
    worker = local_pod(as_pod(workers["spec"]["template"], uid="u-2"))
    assert worker is not None and worker.port_env == (("LOCUST_MASTER_NODE_PORT", "locust-abc-master:5557"),)
    unlabelled = as_pod(master)
    unlabelled["metadata"]["labels"] = {}
    assert local_pod(unlabelled) is None


def test_port_env_must_name_a_port() -> None:
    assert parse_port_env(" A=1 , B=svc:2 ") == (("A", "1"), ("B", "svc:2"))
    with pytest.raises(CannotRunLocally, match="expected NAME=PORT"):
        parse_port_env("A")


def test_service_names_become_loopback_addresses() -> None:
    asked: list[tuple[str, str, int | None]] = []

    def resolve(namespace: str, service: str, port: int | None) -> int:
        asked.append((namespace, service, port))
        return 40000 + len(asked)

    assert rewrite_services("http://vllm-leader.bench.svc:8080", resolve) == "http://127.0.0.1:40001"
    assert rewrite_services("locust-abc-master.bench.svc", resolve) == "127.0.0.1"
    assert rewrite_services("x.other.svc.cluster.local:9", resolve) == "127.0.0.1:40002"
    assert rewrite_services("--host=http://a.b.svc:1/v1", resolve) == "--host=http://127.0.0.1:40003/v1"
    assert rewrite_services("vllm-leader:8080 and svc/thing", resolve) == "vllm-leader:8080 and svc/thing"
    assert asked == [("bench", "vllm-leader", 8080), ("other", "x", 9), ("b", "a", 1)]


def test_mount_paths_become_local_directories(tmp_path: Path) -> None:
    mounts = {
        "/mnt/locust": tmp_path / "cm",
        "/results": tmp_path / "empty",
        "/mnt/locust/sub": tmp_path / "s",
    }
    assert rewrite_mounts("/mnt/locust/locustfile.py", mounts) == f"{tmp_path}/cm/locustfile.py"
    assert rewrite_mounts("--raw-dir=/results", mounts) == f"--raw-dir={tmp_path}/empty"
    assert rewrite_mounts("/mnt/locust/sub/x", mounts) == f"{tmp_path}/s/x"
    assert (
        rewrite_mounts("/mnt/locustfiles /resultsx /opt/results", mounts)
        == "/mnt/locustfiles /resultsx /opt/results"
    )
