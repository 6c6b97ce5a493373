"""kubectl for the Locust runs: apply, get, logs and delete. Finding kubectl, waiting and
``kubectl port-forward`` are the suite's shared plumbing (plumbing/kubectl.py, plumbing/wait.py,
plumbing/port_forward.py).

Every failure is a ``ClusterError`` whose message is kubectl's own last line of stderr: the CLI prints it as
one line with exit code 3.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ClusterError(RuntimeError):
    """The cluster could not be reached, or lacks what the run needs."""


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
