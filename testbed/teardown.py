"""Stop what a testbed runs: our processes (the bridge, the LWS controller) first, as they talk to the API
server, then the control plane; and what real-engine pods may have left (their processes and namespace).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from testbed import processes
from testbed.bridge import pod_uids, podnet
from testbed.build import Progress
from testbed.control_plane import kwok_pids
from testbed.layout import Layout


def stop_processes(layout: Layout, bin_dir: Path | None) -> list[str]:
    """Stop what runs; the processes stopped, as "name (pid N)". bin_dir: the binaries the testbed ran."""
    stopped = []
    # Ours first (they talk to the API server), then the control plane.
    for proc in reversed(processes.load(layout.pid_dir)):
        if processes.alive(proc):
            stopped.append(f"{proc.name} (pid {proc.pid})")
        processes.stop(proc)
    for name, pid in kwok_pids(layout).items():
        if pid is not None and processes.pid_running(pid) and _cmdline_under(pid, bin_dir, layout.state_dir):
            stopped.append(f"{name} (pid {pid})")
            processes.signal_and_wait(
                pid, functools.partial(processes.pid_running, pid), group=False, grace=5.0, name=name
            )
    return stopped


def remove_pod_network(name: str, state_dir: Path, progress: Progress) -> None:
    """What pods may have left when the bridge was killed: their processes (those of the user ids the testbed
    recorded, and no others) and namespace; then the testbed's user ids are released."""
    if os.geteuid() != 0:
        return
    ids = pod_uids.recorded(state_dir)
    left = podnet.kill_testbed_leftovers(name, ids if ids is not None else range(0))
    if left:
        progress(f"killed {left} leftover pod process(es) of testbed {name!r}")
    podnet.PodNetwork(podnet.netns_name(name)).delete()
    pod_uids.release(state_dir, pod_uids.claims_dir())


def _cmdline_under(pid: int, *dirs: Path | None) -> bool:
    """Only signal a pid from kwokctl's pid files if its command line names our binaries or state."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return any(d is not None and str(d) in cmdline for d in dirs)
