"""Shared helpers for the load generator's self-tests: the reference server in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumbing.processes import end_process

REPO = Path(__file__).resolve().parents[2]
MODEL = "reference-model"


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextmanager
def reference_server(*args: str, cpu: int | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``python -m load.bench.reference_server`` on 127.0.0.1 and yield (base URL, process).

    Ready when it prints its address: reading that line is the synchronisation, no sleeping."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "load.bench.reference_server", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=python_env(),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            proc.kill()
            raise RuntimeError(f"reference server did not start: {line!r} {proc.stderr.read()}")
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        yield line.split()[1], proc
    finally:
        end_process(proc)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "load", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=python_env(),
        timeout=timeout,
        check=False,
    )


_SENTINEL = """
import signal, sys, time
worst = 0.0
total = 0.0
def report(*_):
    print(f"{worst * 1e3:.3f} {total * 1e3:.3f}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
print("ready", flush=True)
while True:
    t = time.perf_counter()
    time.sleep(0.001)
    late = time.perf_counter() - t - 0.001
    if late > 0.002:
        total += late
    worst = max(worst, late)
"""


@dataclass(frozen=True)
class Stalls:
    worst_ms: float  # the longest a 1 ms sleep overshot
    total_ms: float  # summed overshoots beyond 2 ms


@contextmanager
def stall_sentinel(cpu: int | None, nice: int = -10) -> Iterator[list[Stalls]]:
    """A process that sleeps 1 ms at a time on ``cpu`` and notes how late it wakes: when that core was
    taken away (by other work or by the hypervisor), everything on it saw the same stall. Yields a
    list that holds the Stalls once the block ends."""
    found: list[Stalls] = []

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    proc = subprocess.Popen(
        [sys.executable, "-c", _SENTINEL], stdout=subprocess.PIPE, text=True, preexec_fn=setup
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the stall sentinel did not start")
        yield found
        proc.terminate()
        worst, total = (float(x) for x in proc.stdout.readline().split())
        found.append(Stalls(worst, total))
    finally:
        proc.kill()
        proc.wait()
