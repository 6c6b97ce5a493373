"""Put LWS on the testbed's started control plane: the LWS CRDs (server-side apply), its ServiceAccount and RBAC
(testbed/lws_rbac.py), then the LWS controller, running as that ServiceAccount, with its webhooks on 127.0.0.1,
registered by URL with the cluster CA (the documents come from testbed/lws.py). All from the release's own
config/ tree (testbed/lws_build.py).
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import yaml

from plumbing.ports import free_port
from plumbing.wait import NotYet, wait_for
from testbed import lws, lws_rbac, processes
from testbed.build import Binaries, Progress
from testbed.control_plane import KubectlRunner
from testbed.failures import check_alive
from testbed.layout import Layout


def install_lws_crds(kubectl: KubectlRunner, bins: Binaries, progress: Progress) -> None:
    progress("applying the LWS CRDs (server-side)")
    # The LWS CRD is ~1 MB: client-side apply would exceed the last-applied annotation limit.
    kubectl("apply", "--server-side", "--field-manager=testbed", "-f", str(bins.lws_crds))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(bins.lws_crds.glob("*.yaml"))]

    def established() -> None:
        out = json.loads(kubectl("get", "crd", *names, "-o", "json"))
        items = out.get("items", [out])  # one name (LWS before v0.9.0 has one CRD): the object, not a List
        pending = [
            c["metadata"]["name"]
            for c in items
            if not any(
                x["type"] == "Established" and x["status"] == "True"
                for x in c.get("status", {}).get("conditions", [])
            )
        ]
        if pending:
            raise NotYet(f"not Established: {pending}")

    wait_for(established, what="LWS CRDs Established", timeout=60, progress=progress)


def install_lws_rbac(
    layout: Layout, bins: Binaries, kubeconfig: Path, kubectl: KubectlRunner, progress: Progress
) -> Path:
    """The release's namespace, ServiceAccount and RBAC; the kubeconfig the controller runs with (a token of
    that ServiceAccount)."""
    namespace, account = lws_rbac.service_account(bins.lws_rbac)
    progress(
        f"applying LWS {bins.lws.version}'s RBAC; the controller runs as ServiceAccount {namespace}/{account}"
    )
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    docs = [ns, *lws_rbac.render(bins.lws_rbac)]
    kubectl("apply", "--server-side", "--field-manager=testbed", "-f", "-", stdin=yaml.safe_dump_all(docs))
    token = kubectl(
        "create", "token", account, "-n", namespace, f"--duration={lws_rbac.TOKEN_DURATION}"
    ).strip()
    config = lws_rbac.token_kubeconfig(
        yaml.safe_load(kubeconfig.read_text()), token, f"{namespace}-{account}"
    )
    path = layout.state_dir / "lws" / "kubeconfig.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def start_lws(
    layout: Layout, bins: Binaries, kubeconfig: Path, kubectl: KubectlRunner, progress: Progress
) -> None:
    """Start the LWS controller, wait for its webhook's TLS port, register its webhooks, wait until they default.
    `kubeconfig`: the controller's own (install_lws_rbac)."""
    progress(f"starting the LWS controller {bins.lws.version} with its webhooks on 127.0.0.1")
    lws_dir = layout.state_dir / "lws"
    cert_dir = lws_dir / "certs"
    cert_dir.mkdir(parents=True, exist_ok=True)
    pki = layout.pki
    shutil.copy(pki / "admin.crt", cert_dir / "tls.crt")
    shutil.copy(pki / "admin.key", cert_dir / "tls.key")
    webhook_port, health_port = free_port(), free_port()
    config_path = lws_dir / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            lws.controller_config(webhook_port=webhook_port, health_port=health_port, cert_dir=cert_dir)
        )
    )
    processes.start(
        "lws-manager",
        [
            str(bins["lws-manager"]),
            f"--config={config_path}",
            f"--kubeconfig={kubeconfig}",
            "--zap-log-level=2",
        ],
        pid_dir=layout.pid_dir,
        log_dir=layout.log_dir,
    )
    ca_pem = (pki / "ca.crt").read_bytes()
    wait_for(
        lambda: _tls_handshake(webhook_port, ca_pem, layout.pid_dir, layout.log_dir),
        what=f"the LWS webhook TLS port 127.0.0.1:{webhook_port}",
        timeout=60,
        progress=progress,
    )
    docs = lws.webhook_configurations(bins.lws_webhooks, port=webhook_port, ca_pem=ca_pem, suffix=layout.name)
    kubectl("apply", "--server-side", "--field-manager=testbed", "-f", "-", stdin=yaml.safe_dump_all(docs))
    wait_for(
        lambda: _lws_webhook_defaults(kubectl),
        what="the LWS defaulting webhook to answer a dry run",
        timeout=30,
        progress=progress,
    )


def _lws_webhook_defaults(kubectl: KubectlRunner) -> None:
    probe = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "webhook-probe", "namespace": "default"},
        "spec": {
            "leaderWorkerTemplate": {
                "workerTemplate": {"spec": {"containers": [{"name": "c", "image": "probe"}]}}
            }
        },
    }
    proc = subprocess.run(
        [*kubectl.argv, "create", "--dry-run=server", "-o", "json", "-f", "-"],
        input=json.dumps(probe),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise NotYet(proc.stderr.strip())
    spec = json.loads(proc.stdout)["spec"]
    if spec.get("leaderWorkerTemplate", {}).get("restartPolicy") != "RecreateGroupOnPodRestart":
        raise NotYet(f"dry-run LWS came back without webhook defaults: {spec}")


def _tls_handshake(port: int, ca_pem: bytes, pid_dir: Path, log_dir: Path) -> None:
    check_alive("lws-manager", pid_dir, log_dir)
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            ctx.wrap_socket(sock, server_hostname="127.0.0.1"),
        ):
            return
    except (OSError, ssl.SSLError) as exc:
        raise NotYet(f"TLS to 127.0.0.1:{port}: {exc}") from None
