"""Who owns a private testbed, and clearing away the ones whose owner died without stopping them.

A test run's private testbed records its owner, the process that will stop it, in `owner.json` in the
testbed's state directory: the owner's pid and its start time (field 22 of /proc/<pid>/stat), so a pid the
kernel has since given to another program never passes for the owner. A run killed with SIGKILL (or a
machine's OOM killer) cannot stop its testbed; the next run finds the testbed's owner dead and removes it.
Testbeds without an owner record (`python -m testbed up --name NAME`, long-lived by intent, or started by
an older version of the suite) are never touched, nor is a testbed whose owner still runs: several runs,
each with its own testbed, may share this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testbed import paths, processes

OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class Owner:
    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> Owner:
        ticks = processes.start_ticks(pid)
        if ticks is None:
            raise ValueError(f"no running process {pid} to own a testbed")
        return cls(pid, ticks)

    def alive(self) -> bool:
        return processes.start_ticks(self.pid) == self.start_ticks


def write(state_dir: Path, owner: Owner) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f"{OWNER_FILE}.tmp"
    tmp.write_text(json.dumps({"pid": owner.pid, "start_ticks": owner.start_ticks}))
    tmp.replace(state_dir / OWNER_FILE)


def read(state_dir: Path) -> Owner | None:
    """The recorded owner; None when there is no (readable) record: such a testbed is never reaped."""
    try:
        raw = json.loads((state_dir / OWNER_FILE).read_text())
        return Owner(int(raw["pid"]), int(raw["start_ticks"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def orphaned(state_dir: Path) -> Owner | None:
    """The dead owner of this testbed, or None (no owner recorded, or the owner still runs)."""
    owner = read(state_dir)
    return owner if owner is not None and not owner.alive() else None


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
