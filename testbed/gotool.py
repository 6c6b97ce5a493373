"""The Go toolchain as the testbed's builds use it: one environment, a lock per cache directory, `go build` with
progress, a module's download directory, and the errors a build can end in."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.failures import PrerequisiteMissing
from testbed.progress import elapsed, update

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the tail of its output."""


class VersionUnavailable(PrerequisiteMissing):
    """A version asked for (--lws-version, --kubernetes-version) cannot be had: the Go module proxy refused its
    source, or it does not build. One line naming the version and what was tried; exit code 3."""


@contextmanager
def lock(path: Path, progress: Progress) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created); says so when another builder holds it first."""
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another build holds {path}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def go_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
    env.update(extra)
    return env


def package_count(argv: list[str], cwd: Path, env: dict[str, str]) -> int | None:
    """How many packages `go build` may compile for these targets (`go list -deps`; fewer when Go's build
    cache has some); None for `go install pkg@version`, which go list cannot load."""
    targets = [a for a in argv if a.startswith(("k8s.io/", "go.etcd.io/", "sigs.k8s.io/")) and "=" not in a]
    if argv[1] != "build" or not targets:
        return None
    try:
        out = subprocess.run(
            ["go", "list", "-mod=readonly", "-deps", *targets],
            cwd=cwd,
            env=go_env(**env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return len(out.stdout.split()) if out.returncode == 0 else None


def run_go(
    argv: list[str], cwd: Path, env: dict[str, str], progress: Progress, label: str, total: int | None
) -> None:
    """Run a go command, showing what it compiles and how far it is (`go build -v` names each package as it
    compiles it); keep the tail of its output for errors."""
    started = time.monotonic()
    compiled = 0
    tail: list[str] = []
    of = f"/{total}" if total is not None else ""
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-40:], line.rstrip()]
            step = elapsed(time.monotonic() - started)
            if line.startswith("go: downloading "):  # a cold module cache: the modules come first
                update(progress, f"{label}: {step}, downloading {line[len('go: downloading ') :].strip()}")
            if line.startswith(("go: ", "#")):
                continue
            compiled += 1
            update(progress, f"{label}: {compiled}{of} packages, {step}, compiling {line.strip()}")
        code = proc.wait()
    if code != 0:
        raise BuildError(f"`{' '.join(argv[:2])}` for {label} exited {code}:\n" + "\n".join(tail))
    progress(f"{label}: done, {compiled} packages compiled in {elapsed(time.monotonic() - started)}")


def download(module: str, version: str) -> dict[str, str]:
    """`go mod download -json module@version`: its Dir and GoMod; VersionUnavailable when the proxy refuses it
    (e.g. 403 "This module version is not available") or does not have it."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=go_env(),
        check=False,
    )
    try:
        info = json.loads(out.stdout)
    except ValueError:
        info = {"Error": out.stderr.strip() or f"exit {out.returncode}"}
    if "Error" in info:
        why = " ".join(str(info["Error"]).split())
        raise VersionUnavailable(
            f"{module} {version} cannot be had: `go mod download {module}@{version}` failed: {why}; "
            "choose another version (docs/version-matrix.md lists the ones known to work)"
        )
    return {k: str(v) for k, v in info.items()}


def module_dir(module: str, version: str) -> Path:
    return Path(download(module, version)["Dir"])


def tidy(gomod_dir: Path, label: str) -> None:
    """`go mod tidy` in a generated module: writes go.sum and the dependency versions of what it builds."""
    out = subprocess.run(
        ["go", "mod", "tidy"], cwd=gomod_dir, env=go_env(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise VersionUnavailable(
            f"{label} cannot be had: `go mod tidy` in {gomod_dir} failed: {' '.join(out.stderr.split())[-400:]}"
        )
