"""`kubectl port-forward --address 127.0.0.1 TARGET [LOCAL]:REMOTE`, as users run it, for the checks, the load
generators and the Locust runner alike.

A forward is ready when kubectl says "Forwarding from 127.0.0.1:<port> ->" (a warning may come first); a kubectl
that exits first, or does not say it within the ready timeout, is ended and reaped, and the error is kubectl's
own last line. Once ready, its output is drained so the pipe never fills (it logs every connection). Without a
local port kubectl picks a free one and names it on that first line, so there is no race for a port; with one
(a URL that must survive a restart of kubectl), kubectl listens there. kubectl exits when a connection through
it fails (the pod went away, nothing listens there yet); `PortForward.url()` then starts it again, and an
`on_exit` callback, if given, is called (on the output reader's thread) when a ready kubectl exits on its own, so
an owner can start it again at once rather than on its next look.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from plumbing.processes import end_process
from plumbing.wait import NotYet, WaitTimeout, wait_for

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


class PortForwardError(RuntimeError):
    """kubectl port-forward did not start; `said` is what kubectl said last (or that it said nothing)."""

    def __init__(self, message: str, said: str) -> None:
        super().__init__(message)
        self.said = said


class PortForward:
    """One `kubectl port-forward` process at a time; `url()` starts it, or starts it again once it has exited."""

    def __init__(
        self,
        kubectl: Sequence[str],
        namespace: str,
        target: str,
        remote_port: int,
        *,
        local_port: int | None = None,
        ready_timeout: float = 30.0,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        local = "" if local_port is None else str(local_port)
        self.argv = [*kubectl, "-n", namespace, "port-forward", "--address", "127.0.0.1", target]
        self.argv.append(f"{local}:{remote_port}")
        self.what = f"kubectl port-forward {target} -n {namespace}"
        self.ready_timeout = ready_timeout
        self.on_exit = on_exit
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self) -> str:
        """http://127.0.0.1:<local port> of a running kubectl; raises PortForwardError if it does not start."""
        if self.running and self._url is not None:
            return self._url
        self.close()
        self._proc, self._url = _launch(self.argv, self.what, self.ready_timeout, self._exited)
        return self._url

    def _exited(self, proc: subprocess.Popen[str]) -> None:
        """kubectl's output ended after it forwarded: tell the owner, unless `close()` ended it."""
        if self._proc is proc and self.on_exit is not None:
            self.on_exit()

    def close(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None:
            end_process(proc)


@contextmanager
def port_forward(
    kubectl: Sequence[str],
    namespace: str,
    target: str,
    remote_port: int,
    *,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Yield http://127.0.0.1:<port> forwarding to `target` (svc/NAME, pod/NAME) for the block; kubectl is tried
    again until `timeout` while it fails to start (e.g. the pod does not run yet), then PortForwardError."""
    forward = PortForward(kubectl, namespace, target, remote_port, ready_timeout=timeout)

    def started() -> str:
        try:
            return forward.url()
        except PortForwardError as exc:
            raise NotYet(exc.said) from None

    try:
        try:
            url = wait_for(started, what=forward.what, timeout=timeout, progress=progress)
        except WaitTimeout as exc:
            raise PortForwardError(str(exc), exc.last_seen) from None
        yield url
    finally:
        forward.close()


def _launch(
    argv: list[str],
    what: str,
    ready_timeout: float,
    on_exit: Callable[[subprocess.Popen[str]], None] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    stdout = proc.stdout
    assert stdout is not None
    said: list[str] = []  # what kubectl printed before "Forwarding from" (warnings, or why it failed)
    port: list[str] = []
    answered = threading.Event()

    def read() -> None:
        for line in stdout:
            match = _FORWARDING.search(line)
            if match is not None:
                port.append(match.group(1))
                answered.set()
                for _ in stdout:  # drain, so the pipe never fills
                    pass
                if on_exit is not None:
                    proc.wait()
                    on_exit(proc)
                return
            said.append(line.strip())
        answered.set()  # kubectl exited without forwarding

    reader = threading.Thread(target=read, name="kubectl-port-forward-output", daemon=True)
    reader.start()
    answered.wait(ready_timeout)  # a kubectl that hangs without a word must not hang the caller
    if port:
        return proc, f"http://127.0.0.1:{port[0]}"
    exited = answered.is_set()
    end_process(proc)
    reader.join(5)  # kubectl is gone, so its pipe is closed and the reader returns
    lines = [line for line in said if line]
    last = lines[-1] if lines else ""
    if not last:
        last = "exited without output" if exited else f"no answer within {ready_timeout:.0f} s"
    raise PortForwardError(f"{what}: {last}", last)
