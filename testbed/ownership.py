"""Who owns a private testbed, and clearing away the ones whose owner died without stopping them.

A test run's private testbed records its owner, the process that will stop it, in `owner.json` in the
testbed's state directory: the owner's pid and its start time (field 22 of /proc/<pid>/stat), so a pid the
kernel has since given to another program never passes for the owner, and where that pid lives (boot id,
hostname, pid namespace): an owner recorded on another machine sharing the state directory (an NFS home),
before a reboot or in another container is never judged from this machine's /proc. A run killed with SIGKILL (or a
machine's OOM killer) cannot stop its testbed; the next run finds the testbed's owner dead and removes it.
Testbeds without an owner record (`python -m testbed up --name NAME`, long-lived by intent, or started by
an older version of the suite) are never touched, nor is a testbed whose owner still runs: several runs,
each with its own testbed, may share this machine.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testbed import paths, processes

OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class Host:
    """Where a pid means something: the boot (/proc/sys/kernel/random/boot_id), the machine (hostname) and the
    pid namespace (readlink /proc/self/ns/pid). A state directory shared between machines (an NFS home) or
    containers holds owners whose pids say nothing here."""

    boot_id: str
    hostname: str
    pid_namespace: str

    @classmethod
    def this(cls) -> Host:
        return cls(
            Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
            socket.gethostname(),
            os.readlink("/proc/self/ns/pid"),
        )


@dataclass(frozen=True)
class Owner:
    pid: int
    start_ticks: int
    host: Host | None = None  # None: recorded by an older suite; such an owner is never judged dead

    @classmethod
    def of(cls, pid: int) -> Owner:
        ticks = processes.start_ticks(pid)
        if ticks is None:
            raise ValueError(f"no running process {pid} to own a testbed")
        return cls(pid, ticks, Host.this())

    def here(self) -> bool:
        """The owner's pid is one of this boot, machine and pid namespace, so /proc can say whether it runs."""
        return self.host is not None and self.host == Host.this()

    def alive(self) -> bool:
        return processes.start_ticks(self.pid) == self.start_ticks


def write(state_dir: Path, owner: Owner) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f"{OWNER_FILE}.tmp"
    record: dict[str, object] = {"pid": owner.pid, "start_ticks": owner.start_ticks}
    if owner.host is not None:
        record |= {
            "boot_id": owner.host.boot_id,
            "hostname": owner.host.hostname,
            "pid_namespace": owner.host.pid_namespace,
        }
    tmp.write_text(json.dumps(record))
    tmp.replace(state_dir / OWNER_FILE)


def read(state_dir: Path) -> Owner | None:
    """The recorded owner; None when there is no (readable) record: such a testbed is never reaped."""
    try:
        raw = json.loads((state_dir / OWNER_FILE).read_text())
        host = None
        if "boot_id" in raw:
            host = Host(str(raw["boot_id"]), str(raw["hostname"]), str(raw["pid_namespace"]))
        return Owner(int(raw["pid"]), int(raw["start_ticks"]), host)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def orphaned(state_dir: Path) -> Owner | None:
    """The dead owner of this testbed, or None: no owner recorded, an owner of another boot, machine or pid
    namespace (its pid says nothing here), or an owner that still runs."""
    owner = read(state_dir)
    if owner is None or not owner.here():
        return None
    return owner if not owner.alive() else None


def lock_path(name: str) -> Path:
    """The file runs lock while they start testbed `name` (fixtures/testbed_plugin.py); removed with it."""
    return paths.state_root() / "testbeds" / f".{name}.lock"


def reap_orphans(stop: Callable[[str], bool], say: Callable[[str], None]) -> list[str]:
    """Stop and remove (with `stop(name)`) every testbed whose recorded owner is dead; the names removed."""
    root = paths.state_root() / "testbeds"
    if not root.is_dir():
        return []
    reaped = []
    for state_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        owner = orphaned(state_dir)
        if owner is None:
            continue
        say(
            f"testbed {state_dir.name!r} was left behind by a run that died (pid {owner.pid} is gone); "
            f"removing it"
        )
        stop(state_dir.name)
        lock_path(state_dir.name).unlink(missing_ok=True)
        reaped.append(state_dir.name)
    return reaped


def this_process() -> Owner:
    return Owner.of(os.getpid())
