"""Start the bridge (testbed/bridge/), the testbed's kubelet: a simulated vLLM engine for each LWS group, or with
engine vllm-cpu real vLLM in a network namespace of the testbed's own; ready once it watches pods.
"""

from __future__ import annotations

import sys
from pathlib import Path

from plumbing.wait import NotYet, wait_for
from testbed import processes
from testbed.bridge import pod_uids, podnet
from testbed.build import Progress
from testbed.failures import check_alive
from testbed.layout import Layout
from testbed.versions import VLLM_CPU

BRIDGE_START_S = 120.0


def start_bridge(layout: Layout, kubeconfig: Path, engine: str, progress: Progress) -> None:
    argv = [
        sys.executable, "-m", "testbed.bridge", "--kubeconfig", str(kubeconfig),
        "--state-dir", str(layout.state_dir / "bridge"), "--engine", engine,
    ]  # fmt: skip
    argv += ["--testbed-name", layout.name]
    uids = pod_uids.recorded(layout.state_dir)  # claimed with the control plane, as root (control_plane.py)
    if uids is not None:
        argv += ["--pod-uids", f"{uids.start}:{uids.stop}"]
    if engine == "vllm-cpu":
        network = podnet.PodNetwork(podnet.netns_name(layout.name))
        network.create()
        argv += ["--netns", network.name]
        progress(f"starting the bridge: every LWS pod runs real vLLM {VLLM_CPU} (CPU) in {network.name}")
    else:
        progress("starting the bridge (a simulated vLLM engine per LWS group)")
    processes.start(
        "bridge",
        argv,
        pid_dir=layout.pid_dir,
        log_dir=layout.log_dir,
    )
    ready_file = layout.state_dir / "bridge" / "ready"

    def bridge_ready() -> None:
        if not ready_file.exists():
            check_alive("bridge", layout.pid_dir, layout.log_dir)
            raise NotYet("the bridge has not reported ready (watch not established)")

    # 30 s was not enough on a shared 2-core machine at load 20+ (2026-12-07: three testbed starts in a row timed
    # out while the bridge was still importing); a bridge that dies is still reported at once (check_alive).
    wait_for(bridge_ready, what="the bridge to watch pods", timeout=BRIDGE_START_S, progress=progress)
