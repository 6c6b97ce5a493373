"""Run the real LWS controller outside the cluster, with its webhooks on 127.0.0.1.

The webhooks are mandatory: the LWS defaulter fills fields the controller dereferences without nil checks,
and the pod webhook sets the group labels and the LWS_* env vars (lws:pkg/webhooks). So, as controller-runtime's
envtest does, the webhook configurations from the LWS module are registered by URL with our CA bundle, and the
pod webhooks keep the upstream objectSelector (leaderworkerset.sigs.k8s.io/name Exists, from
config/webhook/*-patch.yaml) so that pods outside LWS never depend on the controller being up.
The serving certificate is KWOK's admin certificate, whose SANs include 127.0.0.1.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml


def controller_config(*, webhook_port: int, health_port: int, cert_dir: Path) -> dict[str, Any]:
    return {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "clientConnection": {"qps": 500, "burst": 500},
    }


def _apply_patch(document: dict[str, Any], patch_file: Path) -> None:
    """The upstream patches are JSON-patch `replace` ops on /webhooks/N; nothing else is used."""
    for op in yaml.safe_load(patch_file.read_text()):
        if op["op"] != "replace" or not op["path"].startswith("/webhooks/"):
            raise ValueError(f"{patch_file}: unexpected patch op {op['op']} {op['path']}")
        document["webhooks"][int(op["path"].rsplit("/", 1)[1])] = copy.deepcopy(op["value"])


def webhook_configurations(
    webhook_dir: Path, *, port: int, ca_pem: bytes, suffix: str
) -> list[dict[str, Any]]:
    """The upstream Mutating/Validating configurations, pointed at https://127.0.0.1:<port>."""
    documents = [d for d in yaml.safe_load_all((webhook_dir / "manifests.yaml").read_text()) if d]
    ca_bundle = base64.b64encode(ca_pem).decode()
    for document in documents:
        kind = document["kind"]
        patch = "mutating-patch.yaml" if kind.startswith("Mutating") else "validating-patch.yaml"
        _apply_patch(document, webhook_dir / patch)
        document["metadata"] = {"name": f"lws-{kind.removesuffix('WebhookConfiguration').lower()}-{suffix}"}
        for hook in document["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
    return documents
