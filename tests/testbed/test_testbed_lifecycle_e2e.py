"""The testbed's own lifecycle: idempotent up, a stale testbed detected and cleaned (not reused), two at once,
and down leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from plumbing.wait import NotYet, wait_for
from testbed import processes
from testbed.cluster import Testbed, TestbedInfo

pytestmark = pytest.mark.e2e


def _apiserver_pid(tb: Testbed) -> int:
    return next(c.pid for c in tb.status() if c.name == "kube-apiserver" and c.pid is not None)


def _nodes(info: TestbedInfo) -> list[str]:
    out = subprocess.run(
        [str(info.kubectl), "--kubeconfig", str(info.kubeconfig), "get", "nodes", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return sorted(out.split())


def test_up_is_idempotent_a_stale_testbed_is_cleaned_and_down_removes_everything(
    testbed: TestbedInfo,
) -> None:
    messages: list[str] = []
    tb = Testbed(f"lc-{uuid.uuid4().hex[:6]}", progress=messages.append)
    try:
        first = tb.up()
        # Two testbeds at once: the run's own and this one, on different ports, each with its own nodes (the
        # run's may have grown more: a deployment that needs more nodes adds them).
        assert first.server != testbed.server
        assert _nodes(first) == ["node/gpu-node-0", "node/gpu-node-1"]
        assert _nodes(testbed)[:2] == ["node/gpu-node-0", "node/gpu-node-1"]
        again = tb.up()
        assert again == first and messages[-1] == (
            f"testbed {tb.name!r} is already running (engine sim, Kubernetes v1.36.3, LWS v0.9.0)"
        )

        os.kill(_apiserver_pid(tb), signal.SIGKILL)

        def unhealthy() -> None:
            if tb.healthy():
                raise NotYet("still healthy")

        wait_for(unhealthy, what="the testbed to notice its API server is gone", timeout=30)

        def apiserver_named() -> list[str]:
            # What the suite stops on (fixtures/testbed_plugin.py), naming the part and its log. Its socket
            # closes a moment before the killed process has finished exiting, so healthy() may turn first.
            found = tb.broken()
            if not found:
                raise NotYet("no part reported broken yet")
            return found

        broken = wait_for(apiserver_named, what="broken() to name the killed API server", timeout=30)
        assert [b.split(" ")[0] for b in broken] == ["kube-apiserver"], broken
        assert "kube-apiserver.log ends: " in broken[0], broken
        restarted = tb.up()
        assert any("stale or half-started; cleaning it" in m for m in messages), messages
        assert _nodes(restarted) == ["node/gpu-node-0", "node/gpu-node-1"]
        pids = [c.pid for c in tb.status() if c.pid is not None]
        assert pids and all(c.running for c in tb.status()) and tb.broken() == []
    finally:
        assert tb.down()
    assert not tb.state_dir.exists()
    assert not any(processes.start_ticks(pid) for pid in pids), "a process outlived down"


def test_cli_status_and_usage_errors() -> None:
    usage = subprocess.run([sys.executable, "-m", "testbed", "sideways"], capture_output=True, text=True)
    assert (
        usage.returncode == 2
        and "invalid choice: 'sideways'" in usage.stderr
        and "Traceback" not in usage.stderr
    )
    absent = subprocess.run(
        [sys.executable, "-m", "testbed", "status", "--name", f"none-{uuid.uuid4().hex[:6]}"],
        capture_output=True,
        text=True,
    )
    assert absent.returncode == 1 and "not running" in absent.stdout
