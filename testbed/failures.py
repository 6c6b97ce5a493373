"""How a testbed part that failed is reported: `TestbedError`, quoting the end of the part's log; and
`PrerequisiteMissing`, what this machine lacks to start one."""

from __future__ import annotations

from pathlib import Path

from testbed import processes


class TestbedError(RuntimeError):
    """The testbed could not start or answer; the message says which part and where its log is."""


class PrerequisiteMissing(RuntimeError):
    """This machine lacks something the testbed needs (root, Go, uv, the engine install); the message, one line,
    says what, why and what to do. Exit code 3, before anything starts (testbed/prerequisites.py)."""


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def check_alive(name: str, pid_dir: Path, log_dir: Path) -> None:
    for proc in processes.load(pid_dir):
        if proc.name == name and not processes.alive(proc):
            raise TestbedError(
                f"{name} exited during start-up; its log {log_dir / (name + '.log')} ends: "
                f"{tail(log_dir / (name + '.log'))}"
            )
