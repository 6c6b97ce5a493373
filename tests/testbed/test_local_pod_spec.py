"""What the bridge runs for a run-locally pod (testbed/bridge/local_pod_spec.py), read from the in-cluster
Locust manifests as load/locust/manifests.py renders them. No API server: the lookups are stand-ins."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from load.locust.manifests import LocustSpec, render
from testbed.bridge.local_pod_spec import (
    LOOPBACK,
    CannotRunLocally,
    LocalPod,
    NotResolvable,
    config_map_files,
    env_value,
    local_pod,
    mount_paths,
    port_for,
    ready_backends,
    require_command,
    service_backend_port,
    terminated_status,
    volume_kind,
    what_to_run,
)

FILES = {"locustfile.py": "# the locustfile", "locust_stream.py": "# its helper"}
MASTER_SELECTOR = "app.kubernetes.io/component=master,app.kubernetes.io/instance=locust-abc"


def rendered() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """ConfigMap, Service, master pod, worker pod template of one in-cluster Locust run."""
    spec = LocustSpec(
        namespace="bench",
        name="locust-abc",
        target_url="http://vllm-leader.bench.svc:8080",
        workers=2,
        users=8,
        spawn_rate=8,
        run_time="60s",
        locust_args=("--model", "m"),
        files=FILES,
    )
    config_map, service, master, workers = render(spec)
    return config_map, service, master, workers["spec"]["template"]


def as_pod(template: dict[str, Any], uid: str = "u-1", phase: str = "Running", ready: bool = True) -> dict:
    """What the API server returns for a pod made from a template (the fields the bridge reads)."""
    return {
        "metadata": {
            **copy.deepcopy(template["metadata"]),
            "name": f"p-{uid}",
            "namespace": "bench",
            "uid": uid,
        },
        "spec": {**copy.deepcopy(template["spec"]), "nodeName": "node-0"},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def view(template: dict[str, Any]) -> LocalPod:
    pod = local_pod(as_pod(template))
    assert pod is not None
    return pod


class Services:
    """A stand-in for the bridge's Service lookup: a local port per (namespace, Service, port)."""

    def __init__(self, ports: dict[tuple[str, str, int | None], int]) -> None:
        self.ports = ports
        self.asked: list[tuple[str, str, int | None]] = []

    def __call__(self, namespace: str, name: str, port: int | None) -> int:
        self.asked.append((namespace, name, port))
        if (namespace, name, port) not in self.ports:
            raise NotResolvable(f"Service {namespace}/{name} port {port} has no Ready backend")
        return self.ports[(namespace, name, port)]


def no_config_maps(name: str, optional: bool) -> None:
    raise AssertionError(f"ConfigMap {name} read; the Locust pods read none through env")


def test_the_master_runs_locust_with_its_files_services_and_ports_made_local(tmp_path: Path) -> None:
    _, _, master, _ = rendered()
    pod = view(master)
    mounts = mount_paths(pod, {"locustfile": tmp_path / "cm", "results": tmp_path / "results"})
    services = Services({("bench", "vllm-leader", 8080): 41000})
    launch = what_to_run(pod, mounts, {5557: 42001, 8089: 42002}, services, no_config_maps)
    argv = launch.argv
    assert argv[0] == "locust" and argv[argv.index("-f") + 1] == f"{tmp_path}/cm/locustfile.py"
    assert argv[argv.index("--host") + 1] == "http://127.0.0.1:41000"
    assert argv[argv.index("--raw-dir") + 1] == f"{tmp_path}/results"
    assert launch.env == {
        "LOCUST_MASTER_BIND_HOST": LOOPBACK,  # status.podIP: the pod's processes live on loopback
        "LOCUST_MASTER_BIND_PORT": "42001",  # the port-env annotation replaces the container's value
        "LOCUST_WEB_HOST": "127.0.0.1",
        "LOCUST_WEB_PORT": "42002",
    }
    assert services.asked == [("bench", "vllm-leader", 8080)] and launch.workdir is None


def test_a_worker_reaches_the_master_through_its_service(tmp_path: Path) -> None:
    _, _, _, worker = rendered()
    pod = view(worker)
    mounts = mount_paths(pod, {"locustfile": tmp_path / "cm", "results": tmp_path / "results"})
    services = Services({("bench", "locust-abc-master", 5557): 42001})
    launch = what_to_run(pod, mounts, {}, services, no_config_maps)
    assert launch.argv == ["locust", "-f", f"{tmp_path}/cm/locustfile.py", "--worker"]
    assert launch.env == {"LOCUST_MASTER_NODE_HOST": "127.0.0.1", "LOCUST_MASTER_NODE_PORT": "42001"}


def test_a_pod_waits_while_a_service_it_names_has_no_local_backend(tmp_path: Path) -> None:
    _, _, master, worker = rendered()
    for template in (master, worker):
        pod = view(template)
        mounts = mount_paths(pod, {"locustfile": tmp_path, "results": tmp_path})
        with pytest.raises(NotResolvable, match="no Ready backend"):
            what_to_run(pod, mounts, {5557: 1, 8089: 2}, Services({}), no_config_maps)


def test_env_values_expand_earlier_vars_and_read_config_maps_but_never_secrets(tmp_path: Path) -> None:
    _, _, master, _ = rendered()
    container = master["spec"]["containers"][0]
    container["workingDir"] = "/results/run"
    container["env"] = [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}},
        {
            "name": "OPTIONAL",
            "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}},
        },
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "BOTH", "value": "$(NAME)/$(FROM_CM)/$(TOKEN)"},
    ]
    maps = {"settings": {"k": "v"}}
    pod = view(master)
    services = Services({("bench", "vllm-leader", 8080): 3})
    launch = what_to_run(pod, {"/results": tmp_path}, {5557: 1, 8089: 2}, services, lambda n, _o: maps.get(n))
    assert {k: launch.env[k] for k in ("NAME", "FROM_CM", "BOTH")} == {
        "NAME": "p-u-1",
        "FROM_CM": "v",
        "BOTH": "p-u-1/v/$(TOKEN)",  # an unknown var stays as written, as a kubelet leaves it
    }
    assert "OPTIONAL" not in launch.env and "TOKEN" not in launch.env
    assert launch.workdir == f"{tmp_path}/run"


def test_env_a_kubelet_fills_but_the_testbed_cannot_stops_the_pod() -> None:
    _, _, master, _ = rendered()
    pod = view(master)
    item = {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
    with pytest.raises(CannotRunLocally, match=r"fieldRef 'status\.hostIP' is not supported"):
        env_value(pod, item, no_config_maps)
    node = {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert env_value(pod, node, no_config_maps) == "node-0"


def test_port_env_names_a_container_port_or_a_service_port() -> None:
    _, _, master, _ = rendered()
    pod = view(master)
    services = Services({("bench", "other", 9): 43000})
    assert port_for(pod, "8089", {5557: 1, 8089: 2}, services) == 2
    assert port_for(pod, "other:9", {}, services) == 43000 and services.asked == [("bench", "other", 9)]
    with pytest.raises(CannotRunLocally, match="7 is not a containerPort"):
        port_for(pod, "7", {5557: 1}, services)
    with pytest.raises(CannotRunLocally, match="does not end in a port number"):
        port_for(pod, "other:web", {}, services)


def test_volumes_and_mounts_of_the_rendered_pods(tmp_path: Path) -> None:
    config_map, _, master, _ = rendered()
    pod = view(master)
    assert [volume_kind(v) for v in pod.volumes] == ["configMap", "empty"]
    source = pod.volumes[0]["configMap"]
    assert source["name"] == config_map["metadata"]["name"]
    assert sorted(config_map_files(source, config_map["data"])) == sorted(FILES.items())
    picked = {
        **source,
        "items": [{"key": "locustfile.py", "path": "sub/lf.py"}, {"key": "absent", "path": "x"}],
    }
    assert config_map_files(picked, config_map["data"]) == [("sub/lf.py", "# the locustfile")]
    assert config_map_files(source, None) == []  # a missing optional ConfigMap: an empty directory
    assert volume_kind({"name": "token", "projected": {"sources": []}}) == "empty"
    with pytest.raises(CannotRunLocally, match=r"volume 'data' of kind \['hostPath'\] is not supported"):
        volume_kind({"name": "data", "hostPath": {"path": "/data"}})
    with pytest.raises(CannotRunLocally, match="volumeMount 'results' names no volume"):
        mount_paths(pod, {"locustfile": tmp_path})
    pod.container["volumeMounts"][0]["subPath"] = "sub"
    assert mount_paths(pod, {"locustfile": tmp_path / "cm", "results": tmp_path / "r"}) == {
        "/mnt/locust": tmp_path / "cm" / "sub",
        "/results": tmp_path / "r",
    }


def test_a_pod_without_a_command_cannot_run_locally() -> None:
    _, _, master, _ = rendered()
    require_command(view(master))  # the rendered pods name their command
    del master["spec"]["containers"][0]["command"]
    with pytest.raises(CannotRunLocally, match="no command"):
        require_command(view(master))


def test_the_master_service_selects_the_master_on_its_target_port() -> None:
    _, service, _, _ = rendered()
    assert service_backend_port(service, 5557) == ("5557", MASTER_SELECTOR)
    assert service_backend_port(service, None) == ("5557", MASTER_SELECTOR)  # no port named: the first
    named = copy.deepcopy(service)
    named["spec"]["ports"][1].pop("targetPort")
    named["spec"]["ports"][0]["targetPort"] = "master"
    assert service_backend_port(named, 5557)[0] == "master"
    assert service_backend_port(named, 8089)[0] == "8089"  # no targetPort: the port itself
    with pytest.raises(NotResolvable, match="Service bench/locust-abc-master has no port 1"):
        service_backend_port(service, 1)
    named["spec"]["selector"] = {}
    with pytest.raises(NotResolvable, match="has no selector"):
        service_backend_port(named, 5557)


def test_only_running_ready_pods_not_being_deleted_serve_a_service() -> None:
    _, _, master, _ = rendered()
    deleting = as_pod(master, uid="d")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    unready, pending = as_pod(master, uid="b", ready=False), as_pod(master, uid="c", phase="Pending")
    pods = [as_pod(master, uid="a"), unready, pending, deleting, as_pod(master, uid="e")]
    assert ready_backends(pods) == [("a", "p-a"), ("e", "p-e")]


def test_the_grace_period_is_capped_and_the_exit_reported_as_a_kubelet_does() -> None:
    _, _, master, worker = rendered()
    master_pod = view(master)
    assert master_pod.running and master_pod.ready and master_pod.grace_s == 10.0  # default 30 s, capped
    master["spec"]["terminationGracePeriodSeconds"] = 3
    assert view(master).grace_s == 3.0
    done = terminated_status(master_pod, 0, "2026-01-01T00:00:00Z")
    state = done["containerStatuses"][0]["state"]["terminated"]
    assert (done["phase"], state["exitCode"], state["reason"]) == ("Succeeded", 0, "Completed")
    assert done["containerStatuses"][0]["name"] == "locust"
    failed = terminated_status(view(worker), 1, "2026-01-01T00:00:00Z")  # restartPolicy Always: no phase
    assert (
        "phase" not in failed and failed["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    )
    assert {c["type"]: c["status"] for c in failed["conditions"]} == {
        "Ready": "False",
        "ContainersReady": "False",
    }
