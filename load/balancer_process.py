"""The loopback balancer (load/balancer_proxy.py) as a child process: started, told its endpoint set, ended.

The proxy prints "balancer listening on http://127.0.0.1:<port>" once it listens (it picks a free port, so
there is no race for one); a proxy that exits first, or says nothing within the timeout, is ended and the
error names what it said.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence

from load.balancer_api import ENDPOINTS_PATH, Upstream, parse_endpoints
from plumbing.processes import end_process

_LISTENING = re.compile(r"balancer listening on (http://127\.0\.0\.1:\d+)")


class BalancerError(RuntimeError):
    pass


class BalancerProcess:
    """`python -m load.balancer_proxy` on a free loopback port; `url` once started, `close()` ends it."""

    def __init__(self, ready_timeout: float = 30.0) -> None:
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> BalancerProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "load.balancer_proxy"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._proc = proc
        stdout = proc.stdout
        assert stdout is not None
        said: list[str] = []
        found: list[str] = []
        answered = threading.Event()

        def read() -> None:
            for line in stdout:
                if (match := _LISTENING.search(line)) is not None:
                    found.append(match.group(1))
                    answered.set()
                    for _ in stdout:  # drain, so the pipe never fills (a traceback, if it ever writes one)
                        pass
                    return
                said.append(line.rstrip())
            answered.set()

        threading.Thread(target=read, name="balancer-output", daemon=True).start()
        answered.wait(self.ready_timeout)
        if not found:
            self.close()
            last = next((line for line in reversed(said) if line), "") or "no output"
            raise BalancerError(f"the loopback balancer did not start: {last}")
        self.url = found[0]
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def put_endpoints(self, upstreams: Sequence[Upstream], timeout: float = 10.0) -> None:
        body = json.dumps({"endpoints": [u.to_json() for u in upstreams]}).encode()
        request = urllib.request.Request(
            self.url + ENDPOINTS_PATH, data=body, method="PUT", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()

    def endpoints(self, timeout: float = 10.0) -> list[Upstream]:
        with urllib.request.urlopen(self.url + ENDPOINTS_PATH, timeout=timeout) as response:
            return parse_endpoints(json.loads(response.read()))

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            end_process(proc)
