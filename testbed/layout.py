"""Where one testbed keeps its state: KWOK's work directory (the control plane's PKI, kubeconfig, pid files
and logs), our processes' pid files and logs, and `testbed.json`, written last: its absence marks a
half-started testbed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KWOK_CLUSTER = "testbed"
INFO_FILE = "testbed.json"


@dataclass(frozen=True)
class Layout:
    """The paths of testbed `name`, whose state directory is `state_dir` (paths.testbed_dir)."""

    name: str
    state_dir: Path

    @property
    def kwok_workdir(self) -> Path:
        return self.state_dir / "kwok"

    @property
    def kwok_cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / KWOK_CLUSTER

    @property
    def pki(self) -> Path:
        return self.kwok_cluster_dir / "pki"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def info_path(self) -> Path:
        return self.state_dir / INFO_FILE
