"""Locust on this machine: one process, or a master and W workers, each ``python -m locust -f
load/locust/locustfile.py`` in its own process (importing locust monkey-patches a process with gevent).

The single process or the master shares our stdout and stderr (Locust's console output); workers log to
``worker-<n>.log`` in the raw directory. Every process that runs users writes its raw records to the raw
directory (``--raw-dir``, which the master hands to its workers with the other locustfile options).
Master and workers talk over 127.0.0.1 only; the web UI, if asked for, listens on 127.0.0.1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from load.locust.options import LocustRunConfig
from plumbing.ports import free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# -P: no current directory on sys.path, so `-m locust` is Locust even when run from load/ (where the
# directory locust/ is this package).
LOCUST = (sys.executable, "-P", "-m", "locust")
STARTUP_ALLOWANCE_S = 120.0  # Locust's start-up and the workers' connecting, beyond the run itself
EXPECT_WORKERS_MAX_WAIT_S = 60


@dataclass
class LocalRun:
    """How the Locust processes ended."""

    master_code: int | None  # the single process's or the master's exit code (None: killed by us)
    worker_codes: list[int | None] = field(default_factory=list)
    interrupted: bool = False
    logs: list[Path] = field(default_factory=list)
    timed_out: bool = False


def master_argv(
    config: LocustRunConfig,
    host: str,
    model: str,
    raw_dir: Path,
    *,
    master_port: int | None,
    web_port: int | None,
) -> list[str]:
    argv = [*LOCUST, "-f", str(LOCUSTFILE),
            "--users", str(config.users), "--spawn-rate", f"{config.spawn_rate:g}", "--run-time", config.run_time,
            "--stop-timeout", f"{config.stop_timeout_s:g}", "--host", host, "--raw-dir", str(raw_dir.resolve()),
            *config.locustfile_args(model)]  # fmt: skip
    if web_port is not None:
        argv += [
            "--autostart",
            "--autoquit",
            str(config.web_linger_s),
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(web_port),
        ]
    else:
        argv += ["--headless"]
    if master_port is not None:
        argv += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(config.workers),
            "--expect-workers-max-wait",
            str(EXPECT_WORKERS_MAX_WAIT_S),
        ]
    return [*argv, *config.locust_args]


def worker_argv(master_port: int) -> list[str]:
    return [*LOCUST, "-f", str(LOCUSTFILE), "--worker",
            "--master-host", "127.0.0.1", "--master-port", str(master_port)]  # fmt: skip


def run_local(
    config: LocustRunConfig, host: str, model: str, raw_dir: Path, say: Callable[[str], None]
) -> LocalRun:
    """Run Locust here until it is done; raw records end up in ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    master_port = free_port() if config.workers else None
    web_port = free_port() if config.web else None
    # The caller's directory: relative paths in --locust-arg (--html, --csv) land where the user expects.
    master = subprocess.Popen(
        master_argv(config, host, model, raw_dir, master_port=master_port, web_port=web_port),
        stdin=subprocess.DEVNULL,
    )
    workers: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for n in range(config.workers):
        assert master_port is not None
        log = raw_dir / f"worker-{n}.log"
        logs.append(log)
        with log.open("wb") as handle:
            workers.append(
                subprocess.Popen(
                    worker_argv(master_port),
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            )
    if web_port is not None:
        say(f"Locust web UI: http://127.0.0.1:{web_port} (the run starts by itself)")
    run = LocalRun(master_code=None, logs=logs)
    budget = (
        config.run_time_s
        + config.stop_timeout_s
        + STARTUP_ALLOWANCE_S
        + (config.web_linger_s if config.web else 0)
    )
    try:
        run.master_code = _wait(master, budget)
        run.timed_out = run.master_code is None
        deadline = time.monotonic() + config.stop_timeout_s + 30  # workers finish their requests in flight
        run.worker_codes = [_wait(w, max(1.0, deadline - time.monotonic())) for w in workers]
    except KeyboardInterrupt:  # Ctrl-C reached the children too (same process group): Locust stops cleanly
        run.interrupted = True
        run.master_code = _wait(master, 30)
        run.worker_codes = [_wait(w, 30) for w in workers]
    finally:
        for proc in (master, *workers):
            _stop(proc)
    return run


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        if _wait(proc, 10) is None:
            proc.kill()
            proc.wait()
