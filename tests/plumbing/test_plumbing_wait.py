"""The wait helper's promises: a timeout names what it awaited and what it last saw; the named conditions say
what they got, and a dead process ends a wait at once instead of at the timeout."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plumbing.ports import free_port
from plumbing.wait import Exited, NotYet, WaitTimeout, http_ok, still_running, wait_for


def test_a_timeout_says_what_was_awaited_and_what_it_last_saw() -> None:
    seen = iter(["pod Pending", "pod ContainerCreating"])

    def condition() -> None:
        raise NotYet(next(seen, "pod ContainerCreating"))

    progress: list[str] = []
    with pytest.raises(WaitTimeout) as raised:
        wait_for(condition, what="the pod to run", timeout=0.2, interval=0.01, progress=progress.append)
    assert (
        str(raised.value)
        == "timed out after 0 s waiting for the pod to run; last seen: pod ContainerCreating"
    )
    assert progress == [
        "waiting for the pod to run: pod Pending",
        "waiting for the pod to run: pod ContainerCreating",
    ]


def test_the_value_of_a_met_condition_is_returned() -> None:
    calls: list[int] = []

    def third_time() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise NotYet("not yet")
        return len(calls)

    assert wait_for(third_time, what="three calls", timeout=5, interval=0.001) == 3


def test_a_process_that_exited_ends_the_wait_at_once_with_its_code_and_what_it_said() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    proc.wait()
    started = time.monotonic()
    with pytest.raises(Exited, match=r"^the engine exited 7: its log ends: boom$"):
        wait_for(
            lambda: still_running(proc, "the engine", lambda: "its log ends: boom"),
            what="the engine",
            timeout=30,
        )
    assert time.monotonic() - started < 5  # not the 30 s timeout


def test_a_running_process_passes_the_guard() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        still_running(proc, "the reader")  # raises if it had exited
    finally:
        proc.communicate(b"")
    with pytest.raises(Exited, match=r"^the reader exited 0$"):
        still_running(proc, "the reader")


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_ok_is_met_by_200_and_says_what_else_it_got(server: str) -> None:
    http_ok(server + "/health")
    with pytest.raises(NotYet, match="503"):
        http_ok(server + "/starting")
    with pytest.raises(NotYet, match="refused"):
        http_ok(f"http://127.0.0.1:{free_port()}/health")
