"""The real-engine kubelet's pure parts: what a pod's command becomes, and the per-pod addresses and users."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from testbed.bridge.kwok_rules import exec_object
from testbed.bridge.pod_uids import Addresses
from testbed.bridge.podnet import (
    kill_testbed_leftovers,
    netns_name,
    relay_pids,
    sandbox_prefix,
)
from testbed.bridge.real_pods import bind_host

SERVE = "vllm serve lws-suite/tiny-llama --port 8080 --nnodes 2 --node-rank 0 --master-addr vllm-0.vllm.ns"


def test_a_serving_vllm_binds_the_pod_address_and_nothing_else_changes() -> None:
    assert bind_host(["sh", "-c", SERVE], "127.42.0.1") == [
        "sh", "-c", SERVE.replace("tiny-llama", "tiny-llama --host 127.42.0.1", 1)
    ]  # fmt: skip
    given = SERVE + " --host 0.0.0.0"
    assert bind_host(["sh", "-c", given], "127.42.0.1")[2] == SERVE + " --host 127.42.0.1"
    argv = ["vllm", "serve", "m", "--host=0.0.0.0"]
    assert bind_host(argv, "127.42.0.7") == ["vllm", "serve", "m", "--host=127.42.0.7"]
    assert bind_host(["vllm", "serve", "m"], "127.42.0.7") == ["vllm", "serve", "m", "--host", "127.42.0.7"]


def test_headless_workers_and_other_commands_are_left_as_written() -> None:
    headless = ["sh", "-c", SERVE.replace("--node-rank 0", "--node-rank 1") + " --headless"]
    assert bind_host(headless, "127.42.0.2") == headless
    script = [
        "sh",
        "-c",
        "bash /vllm-workspace/examples/online_serving/multi-node-serving.sh worker --ray_address=x",
    ]
    assert bind_host(script, "127.42.0.2") == script
    # only the serving statement of a script changes
    mixed = ["sh", "-c", "bash setup.sh leader; " + SERVE]
    assert bind_host(mixed, "127.42.0.3")[2].startswith(
        "bash setup.sh leader; vllm serve lws-suite/tiny-llama --host"
    )


def test_pods_get_distinct_addresses_and_user_ids_within_the_testbeds_range() -> None:
    ids = range(301_000, 302_000)
    addresses = Addresses(ids)
    seen = {addresses.of(f"uid-{n}") for n in range(300)}
    assert len({a for a, _ in seen}) == 300 and len({u for _, u in seen}) == 300
    assert all(a.startswith("127.42.") and u in ids for a, u in seen)
    assert addresses.of("uid-5") == addresses.of("uid-5"), "a pod keeps its address"


def test_exec_runs_as_the_pods_user_with_no_privileges_but_reading() -> None:
    rule = exec_object("ns", "vllm-0", 300123)
    assert rule["spec"]["execs"][0]["local"]["securityContext"] == {"runAsUser": 300123, "runAsGroup": 300123}
    prefix = sandbox_prefix(300123)
    assert prefix[0] == "setpriv" and "--reuid=300123" in prefix and "--clear-groups" in prefix
    assert "--inh-caps=+dac_read_search" in prefix and prefix[-1] == "--"


def test_the_pod_view_carries_what_the_kubelet_needs() -> None:
    from testbed.bridge.pods import pod_view

    labels = {
        "leaderworkerset.sigs.k8s.io/name": "vllm",
        "leaderworkerset.sigs.k8s.io/group-key": "k",
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
    }
    pod = {
        "metadata": {"name": "vllm-0", "namespace": "ns", "uid": "u", "labels": labels},
        "spec": {
            "hostname": "vllm-0",
            "subdomain": "vllm",
            "containers": [{"name": "c", "readinessProbe": {}}],
        },
    }
    view = pod_view(pod)
    assert view is not None and view.has_readiness_probe
    assert view.dns_names == ("vllm-0.vllm.ns", "vllm-0.vllm.ns.svc", "vllm-0.vllm.ns.svc.cluster.local")
    del pod["spec"]["containers"][0]["readinessProbe"]
    assert not pod_view(pod).has_readiness_probe  # type: ignore[union-attr]


def test_a_relay_left_by_a_testbed_is_found_by_its_network_namespace_and_killed() -> None:
    """Relays run as root, outside the pods' user ids: a testbed's teardown finds them by `--netns` (a CI
    rehearsal left two behind after a failed real-engine test)."""
    if os.geteuid() != 0:
        pytest.skip("the leftover sweep runs as root, as the testbed's teardown does")

    name = f"relay-{uuid.uuid4().hex[:6]}"
    # A stand-in with a relay's command line (python -c takes the rest as its own argv), and one of another testbed.
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "testbed.bridge.relay", "--netns"]
    mine = subprocess.Popen([*argv, netns_name(name), "--listen-port", "1"])
    other = subprocess.Popen([*argv, netns_name(name + "-other"), "--listen-port", "1"])
    try:
        assert relay_pids(netns_name(name)) == [mine.pid]
        assert kill_testbed_leftovers(name, range(0)) == 1  # no user ids: only the relay
        assert mine.wait(timeout=10) == -9 and other.poll() is None
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait()
