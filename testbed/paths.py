"""Where the testbed keeps its built binaries (a cache) and its running clusters (state), outside the repo."""

from __future__ import annotations

import os
from pathlib import Path

from testbed.versions import PINNED, VersionSet

APP = "lws-vllm-suite"


def cache_root() -> Path:
    """$LWS_SUITE_CACHE, else $XDG_CACHE_HOME/lws-vllm-suite, else ~/.cache/lws-vllm-suite."""
    if env := os.environ.get("LWS_SUITE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / APP


def bin_dir(versions: VersionSet = PINNED) -> Path:
    return cache_root() / "testbed" / versions.cache_key / "bin"


def state_root() -> Path:
    """$LWS_SUITE_STATE, else $XDG_STATE_HOME/lws-vllm-suite, else ~/.local/state/lws-vllm-suite."""
    if env := os.environ.get("LWS_SUITE_STATE"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP


def testbed_dir(name: str) -> Path:
    return state_root() / "testbeds" / name
