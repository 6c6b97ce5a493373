"""Helpers for the Locust self-tests: the engine simulator in its own process, and the CLIs as users run them.

Locust is never imported here: the locustfile runs only in child processes (gevent patches a process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plumbing.processes import end_process
from plumbing.wait import NotYet, still_running, wait_for

REPO = Path(__file__).resolve().parents[2]
MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"  # one H100 at TP 1: the simulator's default GPU


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextmanager
def engine(tmp: Path, *extra: str, time_scale: float = 1.0) -> Iterator[str]:
    """``python -m testbed.engine MODEL`` on 127.0.0.1 (a free port), paced in real time by default;
    yields its base URL once its status file says it serves."""
    status = tmp / "engine-status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.engine", MODEL, "--port", "0", "--time-scale", str(time_scale),
         "--startup-seconds", "0", "--quiet", "--status-file", str(status), *extra],
        cwd=REPO, env=python_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip

    def serving() -> int:
        try:
            seen: dict[str, Any] = json.loads(status.read_text())
        except (FileNotFoundError, ValueError):
            seen = {}
        if seen.get("state") == "ready":
            return int(seen["port"])
        still_running(proc, "the engine", lambda: f"{seen}; {stderr_text(proc)}")
        raise NotYet(f"engine status {seen or 'not written yet'}")

    try:
        port = wait_for(serving, what="the engine simulator to serve", timeout=60, interval=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        end_process(proc, grace=20)


def stderr_text(proc: subprocess.Popen[bytes]) -> str:
    return proc.stderr.read().decode(errors="replace") if proc.stderr else ""


def run_module(module: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` from the repository, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env=python_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def locust_run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_module("load.locust", *args, timeout=timeout)


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]
