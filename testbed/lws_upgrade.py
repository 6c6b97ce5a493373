"""Upgrade a running testbed's LWS in place, as an operator applies a newer release over an older one: the
controller stops (a one-replica Deployment rolled), the new release's CRDs, RBAC and webhook configurations
are applied over the old ones (server-side, the same field manager), and the new controller starts as its
ServiceAccount. Workloads are left alone: whatever happens to them is the new controller's doing.

    python -m testbed upgrade --name NAME --lws-version v0.8.0
"""

from __future__ import annotations

import dataclasses
import json

from testbed import processes
from testbed.build import Progress, ensure_built, stderr_progress
from testbed.cluster import Testbed, TestbedError, TestbedInfo
from testbed.control_plane import KubectlRunner
from testbed.layout import Layout
from testbed.lws_start import install_lws_crds, install_lws_rbac, start_lws
from testbed.versions import PINNED, version_set


def upgrade_lws(name: str, to: str, progress: Progress = stderr_progress) -> TestbedInfo:
    """The running testbed `name`, its LWS replaced by release `to` (built first if need be)."""
    testbed = Testbed(name, progress)
    info = testbed.info()
    if info is None or not testbed.healthy():
        raise TestbedError(
            f"testbed {name!r} is not running; start it first (python -m testbed up --name {name})"
        )
    before = info.lws_version or PINNED.lws
    if before == to:
        progress(f"testbed {name!r} already runs LWS {to}")
        return info
    bins = ensure_built(progress, version_set(kubernetes=info.kubernetes_version, lws=to))
    layout = Layout(name, testbed.state_dir)
    kubectl = KubectlRunner.of(info.kubectl, info.kubeconfig)
    progress(f"upgrading LWS {before} to {to} in place: stopping the {before} controller")
    for proc in processes.load(layout.pid_dir):
        if proc.name == "lws-manager":
            processes.stop(proc)
    install_lws_crds(kubectl, bins, progress)
    controller_kubeconfig = install_lws_rbac(layout, bins, info.kubeconfig, kubectl, progress)
    start_lws(layout, bins, controller_kubeconfig, kubectl, progress)
    upgraded = dataclasses.replace(info, lws_version=to)
    raw = {
        k: str(v) if not isinstance(v, (str, int, float, type(None))) else v
        for k, v in dataclasses.asdict(upgraded).items()
    }
    tmp = layout.info_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=2))
    tmp.replace(layout.info_path)
    progress(f"testbed {name!r} runs LWS {to}")
    return upgraded
