"""Where the suite keeps its caches (built binaries, fetched kubectl, the real engine) and its state (running
testbeds, a run's records), outside the repo.

Each root is the first of these that names a directory the suite can write (create, if it is not there yet):

- state: `$LWS_SUITE_STATE`, `$XDG_STATE_HOME/lws-vllm-suite`, `~/.local/state/lws-vllm-suite`;
- cache: `$LWS_SUITE_CACHE`, `$XDG_CACHE_HOME/lws-vllm-suite`, `~/.cache/lws-vllm-suite`;
- then, for both, `lws-vllm-suite-<uid>/{state,cache}` under `$TMPDIR`, `/tmp` or `/var/tmp`: a pod that runs
  as a user with no home directory (HOME unset, or `/` as container runtimes set it for a user the image's
  passwd lacks) on a read-only root filesystem, with an `emptyDir` at `/tmp` (docs/in-cluster.md).

`$LWS_SUITE_STATE` or `$LWS_SUITE_CACHE` set to a directory that cannot be written is not passed over (the
user chose it; falling back would hide the records elsewhere): it is an error, as is no candidate at all.
`require_writable()` turns either into one line for the caller to end the run with (exit 3).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from testbed.versions import PINNED, VersionSet

APP = "lws-vllm-suite"
TMP_DIRS = ("/tmp", "/var/tmp")


class NoWritableDirectory(RuntimeError):
    """No directory for the suite's state or cache can be written; the message says which were tried."""


def _writable(path: Path) -> bool:
    """`path` is a directory this process may write, or could be made one: its nearest existing ancestor is a
    writable directory (access(2) also refuses writes on a read-only file system, for root too). A directory
    of another user under a shared /tmp is not ours to use."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return False
    return not _someone_elses(probe)


def _someone_elses(path: Path) -> bool:
    """A directory under a shared temporary directory (not that directory itself) that another user owns."""
    shared = [Path(tmp) for tmp in _tmp_dirs()]
    if path in shared or not any(path.is_relative_to(tmp) for tmp in shared):
        return False
    return path.stat().st_uid != os.geteuid()


def _tmp_dirs() -> list[str]:
    dirs = [os.environ["TMPDIR"]] if os.environ.get("TMPDIR") else []
    return [*dirs, *(d for d in TMP_DIRS if d not in dirs)]


def _home() -> Path | None:
    """HOME as the process has it; None when unset or empty (Path.home() would then read the passwd entry,
    which a container user may not have)."""
    home = os.environ.get("HOME")
    return Path(home) if home else None


def _candidates(xdg: str, home_rel: str, kind: str) -> Iterator[Path]:
    if base := os.environ.get(xdg):
        yield Path(base) / APP
    if (home := _home()) is not None:
        yield home / home_rel / APP
    for tmp in _tmp_dirs():
        yield Path(tmp) / f"{APP}-{os.geteuid()}" / kind


def _root(env: str, xdg: str, home_rel: str, kind: str) -> Path:
    if chosen := os.environ.get(env):
        return Path(chosen)
    tried = []
    for candidate in _candidates(xdg, home_rel, kind):
        if _writable(candidate):
            return candidate
        tried.append(str(candidate))
    # None writable: the first is returned, and require_writable() says what was tried.
    return Path(tried[0]) if tried else Path(TMP_DIRS[0]) / f"{APP}-{os.geteuid()}" / kind


def cache_root() -> Path:
    """$LWS_SUITE_CACHE, else $XDG_CACHE_HOME/lws-vllm-suite, else ~/.cache/lws-vllm-suite, else
    lws-vllm-suite-<uid>/cache under a temporary directory (the module doc)."""
    return _root("LWS_SUITE_CACHE", "XDG_CACHE_HOME", ".cache", "cache")


def bin_dir(versions: VersionSet = PINNED) -> Path:
    return cache_root() / "testbed" / versions.cache_key / "bin"


def state_root() -> Path:
    """$LWS_SUITE_STATE, else $XDG_STATE_HOME/lws-vllm-suite, else ~/.local/state/lws-vllm-suite, else
    lws-vllm-suite-<uid>/state under a temporary directory (the module doc)."""
    return _root("LWS_SUITE_STATE", "XDG_STATE_HOME", ".local/state", "state")


def testbed_dir(name: str) -> Path:
    return state_root() / "testbeds" / name


def require_writable() -> None:
    """NoWritableDirectory, one line naming what was tried and what to do, unless both roots can be written."""
    for kind, env, xdg, home_rel in (
        ("state", "LWS_SUITE_STATE", "XDG_STATE_HOME", ".local/state"),
        ("cache", "LWS_SUITE_CACHE", "XDG_CACHE_HOME", ".cache"),
    ):
        if chosen := os.environ.get(env):
            if not _writable(Path(chosen)):
                raise NoWritableDirectory(
                    f"${env}={chosen} is not a directory this user (uid {os.geteuid()}) can write; point "
                    f"${env} at a writable directory (in a pod: a volume such as an emptyDir)"
                )
            continue
        tried = list(_candidates(xdg, home_rel, kind))
        if not any(_writable(p) for p in tried):
            raise NoWritableDirectory(
                f"no writable directory for the suite's {kind} (uid {os.geteuid()}, HOME "
                f"{os.environ.get('HOME') or 'unset'}; tried {', '.join(map(str, tried))}); set ${env} to a "
                f"writable directory, or mount a volume (e.g. an emptyDir) at /tmp"
            )


def unwritable_artifacts(artifacts: Path) -> str | None:
    """One line when the run's --artifacts directory cannot be written (the image's default `artifacts/`
    under a read-only working directory), else None."""
    if _writable(artifacts.absolute()):
        return None
    return (
        f"--artifacts {artifacts} ({artifacts.absolute()}) cannot be written by this user (uid {os.geteuid()}); "
        "give --artifacts a writable directory (in a pod: a volume such as an emptyDir mounted at /results)"
    )
