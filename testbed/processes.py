"""Detached local processes that outlive the command that started them, tracked by pid files.

Each pid file holds the pid and the process's start time (from /proc), so a pid the kernel has reused for
some other program is never mistaken for ours, and never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plumbing.wait import NotYet, WaitTimeout, wait_for


@dataclass(frozen=True)
class Tracked:
    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks); None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
        return None
    return int(fields[19])


def start(
    name: str,
    argv: Sequence[str],
    *,
    pid_dir: Path,
    log_dir: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Tracked:
    """Start argv in its own session (so Ctrl-C in our terminal does not reach it), logging to a file."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ticks = start_ticks(proc.pid)
    tracked = Tracked(name, proc.pid, ticks if ticks is not None else -1, tuple(argv))
    (pid_dir / f"{name}.json").write_text(
        json.dumps({"pid": tracked.pid, "start_ticks": tracked.start_ticks, "argv": list(argv)})
    )
    return tracked


def load(pid_dir: Path) -> list[Tracked]:
    tracked = []
    for path in sorted(pid_dir.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            tracked.append(Tracked(path.stem, int(raw["pid"]), int(raw["start_ticks"]), tuple(raw["argv"])))
        except (OSError, ValueError, KeyError):
            continue  # a pid file cut short by a crash names nothing we can safely signal
    return tracked


def pid_running(pid: int) -> bool:
    """A live (not zombie) process has this pid; says nothing of whose it is."""
    return start_ticks(pid) is not None


def alive(proc: Tracked) -> bool:
    return start_ticks(proc.pid) == proc.start_ticks


def stop(proc: Tracked, *, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL after `grace` seconds; no-op if it is gone."""
    signal_and_wait(proc.pid, lambda: alive(proc), group=True, grace=grace, name=proc.name)


def signal_and_wait(pid: int, is_alive: Callable[[], bool], *, group: bool, grace: float, name: str) -> None:
    """SIGTERM, wait up to `grace` s for the exit, then SIGKILL and wait again; no-op once it has gone."""
    for sig, timeout in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not is_alive():
            return
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            return

        def exited(sent: signal.Signals = sig) -> None:
            _reap(pid)
            if is_alive():
                raise NotYet(f"{name} (pid {pid}) still running after {sent.name}")

        try:
            wait_for(exited, what=f"{name} to exit", timeout=timeout, interval=0.05)
            return
        except WaitTimeout:
            continue


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie; other pids are not ours to reap."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
