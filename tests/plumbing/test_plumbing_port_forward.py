"""`kubectl port-forward` as plumbing/port_forward.py runs it, against a stand-in kubectl (a shell script) that
says what a real one says: ready only on "Forwarding from 127.0.0.1:<port>", kubectl's own last line when it
fails, a bounded wait when it says nothing, started again while it fails, and no process left behind."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from plumbing.port_forward import PortForward, PortForwardError, port_forward

FORWARDS = """#!/bin/sh
echo "$@" > "$(dirname "$0")/argv"
echo "$$" > "$(dirname "$0")/pid"
echo "Forwarding from 127.0.0.1:4242 -> 8080"
exec sleep 600
"""
WARNS_FIRST = """#!/bin/sh
echo "Warning: kubeconfig has group-readable permissions" >&2
echo "Forwarding from 127.0.0.1:4444 -> 8080"
exec sleep 600
"""
REFUSES = """#!/bin/sh
echo "E1203 12:00:00.000 portforward.go:413] an error occurred forwarding"
echo "error: unable to forward port because pod is not running. Current status=Pending" >&2
exit 1
"""
SILENT = """#!/bin/sh
echo "$$" > "$(dirname "$0")/pid"
exec sleep 600
"""
# fails until it has been started twice before, then forwards (a pod that comes up while we retry)
THIRD_TIME = """#!/bin/sh
n=$(cat "$(dirname "$0")/count" 2>/dev/null || echo 0)
echo $((n + 1)) > "$(dirname "$0")/count"
if [ "$n" -lt 2 ]; then echo "error: pod vllm-0 is not running (attempt $n)"; exit 1; fi
echo "Forwarding from 127.0.0.1:4343 -> 8080"
exec sleep 600
"""


def kubectl(tmp_path: Path, script: str) -> list[str]:
    path = tmp_path / "kubectl"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return [str(path), "--kubeconfig", "kc"]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ready_on_forwarding_from_with_the_port_kubectl_chose_and_closed_without_a_trace(
    tmp_path: Path,
) -> None:
    forward = PortForward(kubectl(tmp_path, FORWARDS), "vllm", "svc/vllm-leader", 8080)
    assert forward.url() == "http://127.0.0.1:4242"
    assert (tmp_path / "argv").read_text().split() == [
        "--kubeconfig", "kc", "-n", "vllm", "port-forward", "--address", "127.0.0.1", "svc/vllm-leader", ":8080",
    ]  # fmt: skip
    assert forward.running and forward.url() == "http://127.0.0.1:4242"  # the same kubectl, not a second one
    pid = int((tmp_path / "pid").read_text())
    forward.close()
    assert not forward.running and gone(pid)  # terminated and reaped (a zombie would still answer kill 0)


def test_a_warning_before_forwarding_from_is_not_a_failure(tmp_path: Path) -> None:
    forward = PortForward(kubectl(tmp_path, WARNS_FIRST), "vllm", "svc/vllm-leader", 8080)
    try:
        assert forward.url() == "http://127.0.0.1:4444"
    finally:
        forward.close()


def test_a_given_local_port_is_the_one_kubectl_is_asked_for(tmp_path: Path) -> None:
    forward = PortForward(kubectl(tmp_path, FORWARDS), "vllm", "pod/vllm-0", 8000, local_port=5555)
    forward.url()
    forward.close()
    assert (tmp_path / "argv").read_text().split()[-2:] == ["pod/vllm-0", "5555:8000"]


def test_a_failure_is_kubectls_own_last_line(tmp_path: Path) -> None:
    forward = PortForward(kubectl(tmp_path, REFUSES), "vllm", "svc/vllm-leader", 8080)
    with pytest.raises(PortForwardError) as raised:
        forward.url()
    said = "error: unable to forward port because pod is not running. Current status=Pending"
    assert raised.value.said == said
    assert str(raised.value) == f"kubectl port-forward svc/vllm-leader -n vllm: {said}"


def test_a_kubectl_that_says_nothing_is_given_up_on_and_killed(tmp_path: Path) -> None:
    forward = PortForward(kubectl(tmp_path, SILENT), "vllm", "svc/vllm-leader", 8080, ready_timeout=1.0)
    with pytest.raises(PortForwardError, match=r"no answer within 1 s$"):
        forward.url()
    assert gone(int((tmp_path / "pid").read_text()))


def test_the_context_manager_tries_again_until_kubectl_forwards(tmp_path: Path) -> None:
    with port_forward(kubectl(tmp_path, THIRD_TIME), "vllm", "pod/vllm-0", 8080, timeout=30) as url:
        assert url == "http://127.0.0.1:4343"
    assert (tmp_path / "count").read_text().strip() == "3"


def test_the_context_manager_gives_up_at_its_timeout_saying_what_kubectl_said_last(tmp_path: Path) -> None:
    with (
        pytest.raises(
            PortForwardError, match=r"waiting for kubectl port-forward svc/x -n ns; last seen: error: un"
        ),
        port_forward(kubectl(tmp_path, REFUSES), "ns", "svc/x", 80, timeout=0.5),
    ):
        pytest.fail("a forward that never started must not be yielded")


# forwards, then ends as kubectl does when a connection through it fails ("error: lost connection to pod")
LOSES_THE_POD = """#!/bin/sh
echo "Forwarding from 127.0.0.1:4545 -> 8080"
read -r _ < "$(dirname "$0")/go"
echo "error: lost connection to pod"
exit 1
"""


def test_a_kubectl_that_exits_on_its_own_is_reported_and_one_that_is_closed_is_not(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "go")
    exits: list[str] = []
    ended = threading.Event()

    def on_exit() -> None:
        exits.append("exited")
        ended.set()

    forward = PortForward(kubectl(tmp_path, LOSES_THE_POD), "vllm", "pod/vllm-0", 8080, on_exit=on_exit)
    assert forward.url() == "http://127.0.0.1:4545"
    (tmp_path / "go").write_text("now\n")  # the connection fails: kubectl exits
    assert ended.wait(10), "on_exit was not called after kubectl exited"
    assert not forward.running and exits == ["exited"]
    closed = PortForward(kubectl(tmp_path, FORWARDS), "vllm", "pod/vllm-0", 8080, on_exit=on_exit)
    closed.url()
    closed.close()  # ended by its owner: not an exit to report
    for reader in [t for t in threading.enumerate() if t.name == "kubectl-port-forward-output"]:
        reader.join(10)  # its reader has seen the output end and decided
    assert exits == ["exited"]
