"""The LWS controller's own identity, as the release installs it: its ServiceAccount and the RBAC of its
config/rbac tree (sigs.k8s.io/lws@<version>:config/rbac/kustomization.yaml lists the files;
config/default/kustomization.yaml sets `namespace: lws-system` and `namePrefix: lws-`; the namespace itself comes
from config/manager/manager.yaml). The controller runs outside the cluster with a token of that ServiceAccount
(`kubectl create token`), so it can do exactly what the release's ClusterRole lets it do, as in a cluster:
a release whose RBAC lacks a right fails here as it would there.

`render` does what kustomize does with these files: prefix every name, put the namespaced objects in the
namespace, and follow both in each binding's roleRef and ServiceAccount subjects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

NAMESPACED = {"ServiceAccount", "Role", "RoleBinding"}
SERVICE_ACCOUNT = "controller-manager"  # config/rbac/service_account.yaml, before the prefix
# A testbed lives for hours; the token outlives any run (the API server may cap it; it says so in its answer).
TOKEN_DURATION = "48h"


def kustomization(rbac_dir: Path) -> dict[str, Any]:
    return dict(json.loads((rbac_dir / "kustomize.json").read_text()))


def render(rbac_dir: Path) -> list[dict[str, Any]]:
    """The release's RBAC objects with its kustomization's namespace and namePrefix applied."""
    k = kustomization(rbac_dir)
    namespace, prefix = k["namespace"], k["namePrefix"]
    docs: list[dict[str, Any]] = []
    for name in k["files"]:
        docs += [d for d in yaml.safe_load_all((rbac_dir / name).read_text()) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        meta = doc["metadata"]
        meta["name"] = prefix + meta["name"]
        if doc["kind"] in NAMESPACED:
            meta["namespace"] = namespace
        ref = doc.get("roleRef")
        if ref and (ref["kind"], ref["name"]) in names:
            ref["name"] = prefix + ref["name"]
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and ("ServiceAccount", subject["name"]) in names:
                subject["name"] = prefix + subject["name"]
                subject["namespace"] = namespace
    return docs


def service_account(rbac_dir: Path) -> tuple[str, str]:
    """(namespace, name) of the controller's ServiceAccount."""
    k = kustomization(rbac_dir)
    return k["namespace"], k["namePrefix"] + SERVICE_ACCOUNT


def token_kubeconfig(admin_kubeconfig: dict[str, Any], token: str, user: str) -> dict[str, Any]:
    """A kubeconfig for the same cluster as `admin_kubeconfig` (its current context's), authenticating with
    `token` instead of the admin certificate."""
    current = admin_kubeconfig["current-context"]
    context = next(c["context"] for c in admin_kubeconfig["contexts"] if c["name"] == current)
    cluster = next(c for c in admin_kubeconfig["clusters"] if c["name"] == context["cluster"])
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": user,
    }
