"""Build the testbed's real binaries from Go modules into a versioned cache outside the repo.

What is built (versions in testbed/versions.py):
- kube-apiserver, kube-controller-manager, kube-scheduler and etcd, from our module in testbed/gobuild/kube,
  with the version ldflags `hack/lib/version.sh` sets, so `--version` and `/version` report the release;
- kwok and kwokctl, with `go install sigs.k8s.io/kwok/cmd/...@KWOK`;
- the LWS controller (sigs.k8s.io/lws/cmd) as `lws-manager`, from our module in testbed/gobuild/lws (not with
  `go install ...@version`, which reads the module's version list, refused for LWS by the proxy here).
The upstream YAML the testbed applies (LWS CRDs and webhook configuration, KWOK CRDs) is copied from the
module downloads into `<cache>/share`, so starting a testbed never needs the Go toolchain.

A build is reused when its completion stamp names the same versions; concurrent builders (pytest-xdist
workers, two testbeds) serialise on a lock file. Progress is printed as packages compiled.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from testbed import paths, versions
from testbed.failures import PrerequisiteMissing
from testbed.gomod import GOMOD_DIR
from testbed.progress import elapsed, stderr_printer, update

LWS_GOMOD_DIR = GOMOD_DIR.parent / "lws"

Progress = Callable[[str], None]

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES = (*KUBE_COMMANDS, "etcd", "kwok", "kwokctl", "lws-manager")
STAMP = ".complete.json"
# What a newcomer is told before the first build. Measured for the README: a cold build (empty Go module and
# build caches) of all seven binaries on a 2-core, 24 GB machine, about 12 minutes with 2 GB peak memory.
FIRST_BUILD = "about 12 minutes on 2 cores (2 GB of memory), once"


GO_MISSING = (
    "the testbed's binaries are not built yet and building them needs Go 1.26: the `go` command is not on PATH; "
    "install Go (https://go.dev/dl/) or point --kubeconfig at a cluster of your own"
)


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the tail of its output."""


@dataclass(frozen=True)
class Binaries:
    """Paths of one complete build."""

    bin_dir: Path

    def __getitem__(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def share(self) -> Path:
        return self.bin_dir.parent / "share"

    @property
    def lws_crds(self) -> Path:
        return self.share / "lws" / "crd"

    @property
    def lws_webhooks(self) -> Path:
        return self.share / "lws" / "webhook"

    @property
    def kwok_crds(self) -> Path:
        return self.share / "kwok" / "crd"


stderr_progress = stderr_printer("testbed")


def _stamp_content(vs: versions.VersionSet) -> dict[str, str]:
    return {"kubernetes": vs.kubernetes, "etcd": vs.etcd, "kwok": vs.kwok, "lws": vs.lws}


def find_built(vs: versions.VersionSet = versions.PINNED) -> Binaries | None:
    """The cached build for these versions, if complete; None otherwise."""
    bins = Binaries(paths.bin_dir(vs))
    stamp = bins.bin_dir / STAMP
    try:
        if json.loads(stamp.read_text()) != _stamp_content(vs):
            return None
    except (OSError, ValueError):
        return None
    if all(os.access(bins[name], os.X_OK) for name in BINARIES):
        return bins
    return None


def ensure_built(progress: Progress = stderr_progress, vs: versions.VersionSet = versions.PINNED) -> Binaries:
    """Return the cached binaries, building them first if needed."""
    if built := find_built(vs):
        return built
    bins = Binaries(paths.bin_dir(vs))
    bins.bin_dir.parent.mkdir(parents=True, exist_ok=True)
    with _lock(bins.bin_dir.parent / ".build.lock", progress):
        if built := find_built(vs):  # another process finished it while we waited
            return built
        progress(
            f"first use of this testbed version: building kube-apiserver, kube-controller-manager, "
            f"kube-scheduler, etcd, kwok and the LWS controller from Go modules into {bins.bin_dir.parent}, "
            f"{FIRST_BUILD}; later runs start the testbed in about 12 s"
        )
        _build_all(bins, vs, progress)
    built = find_built(vs)
    if built is None:
        raise BuildError(f"build finished but {bins.bin_dir} is incomplete; remove it and build again")
    return built


@contextmanager
def _lock(path: Path, progress: Progress) -> Iterator[None]:
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


def _go_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
    env.update(extra)
    return env


def _kube_ldflags(vs: versions.VersionSet) -> str:
    major, minor = vs.kubernetes.lstrip("v").split(".")[:2]
    build_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "gitVersion": vs.kubernetes,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _build_all(bins: Binaries, vs: versions.VersionSet, progress: Progress) -> None:
    if shutil.which("go") is None:
        raise PrerequisiteMissing(GO_MISSING)
    staging = bins.bin_dir.with_name("bin.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _build_steps(bins, staging, vs, progress)
    except BaseException:  # Ctrl-C included: no half-built directory stays in the cache
        shutil.rmtree(staging, ignore_errors=True)
        progress(f"build stopped; removed the partial build {staging}")
        raise


# One go command: (what it builds, argv, the directory it runs in, extra environment).
GoStep = tuple[str, list[str], Path, dict[str, str]]


def _go_steps(staging: Path, vs: versions.VersionSet) -> list[GoStep]:
    """The go commands that build every binary of BINARIES into `staging`, in order."""
    kube_targets = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS]
    return [
        (
            "kube-apiserver, kube-controller-manager, kube-scheduler " + vs.kubernetes,
            [
                "go",
                "build",
                "-v",
                "-mod=readonly",
                "-trimpath",
                "-ldflags",
                _kube_ldflags(vs),
                "-o",
                f"{staging}/",
                *kube_targets,
            ],
            GOMOD_DIR,
            {},
        ),
        (
            "etcd " + vs.etcd,
            [
                "go",
                "build",
                "-v",
                "-mod=readonly",
                "-trimpath",
                "-ldflags",
                "-s -w",
                "-o",
                str(staging / "etcd"),
                "go.etcd.io/etcd/server/v3",
            ],
            GOMOD_DIR,
            {},
        ),
        (
            "kwok, kwokctl " + vs.kwok,
            [
                "go",
                "install",
                "-v",
                "-trimpath",
                "-ldflags",
                f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={vs.kwok.lstrip('v')} "
                f"-X sigs.k8s.io/kwok/pkg/consts.KubeVersion={vs.kubernetes.lstrip('v')}",
                f"sigs.k8s.io/kwok/cmd/kwok@{vs.kwok}",
                f"sigs.k8s.io/kwok/cmd/kwokctl@{vs.kwok}",
            ],
            staging.parent,
            {"GOBIN": str(staging)},
        ),
        (
            "lws-manager " + vs.lws,
            [
                "go",
                "build",
                "-v",
                "-mod=readonly",
                "-trimpath",
                "-ldflags",
                f"-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion={vs.lws}",
                "-o",
                str(staging / "lws-manager"),
                "sigs.k8s.io/lws/cmd",
            ],
            LWS_GOMOD_DIR,
            {},
        ),
    ]


def _build_steps(bins: Binaries, staging: Path, vs: versions.VersionSet, progress: Progress) -> None:
    started = time.monotonic()
    steps = _go_steps(staging, vs)
    for index, (label, argv, cwd, env) in enumerate(steps, 1):
        name = f"build {index}/{len(steps)}: {label}"
        total = _package_count(argv, cwd, env)
        progress(f"{name} ({total if total is not None else 'counting'} packages to compile at most)")
        _run_go(argv, cwd, _go_env(**env), progress, name, total)
    progress("copying LWS and KWOK manifests from the module downloads")
    _copy_upstream_yaml(staging.parent / "share", vs)
    (staging / STAMP).write_text(json.dumps(_stamp_content(vs)))
    shutil.rmtree(bins.bin_dir, ignore_errors=True)
    staging.rename(bins.bin_dir)
    progress(f"built {len(BINARIES)} binaries into {bins.bin_dir} in {time.monotonic() - started:.0f} s")


def _package_count(argv: list[str], cwd: Path, env: dict[str, str]) -> int | None:
    """How many packages `go build` may compile for these targets (`go list -deps`; fewer when Go's build
    cache has some); None for `go install pkg@version`, which go list cannot load."""
    targets = [a for a in argv if a.startswith(("k8s.io/", "go.etcd.io/", "sigs.k8s.io/")) and "=" not in a]
    if argv[1] != "build" or not targets:
        return None
    try:
        out = subprocess.run(
            ["go", "list", "-mod=readonly", "-deps", *targets],
            cwd=cwd,
            env=_go_env(**env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return len(out.stdout.split()) if out.returncode == 0 else None


def _run_go(
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


def _module_dir(module: str, version: str) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=_go_env(),
        check=False,
    )
    try:
        info = json.loads(out.stdout)
    except ValueError:
        raise BuildError(f"go mod download {module}@{version} failed: {out.stderr.strip()}") from None
    if "Error" in info:
        raise BuildError(f"go mod download {module}@{version} failed: {info['Error']}")
    return Path(info["Dir"])


def _copy_upstream_yaml(share: Path, vs: versions.VersionSet) -> None:
    shutil.rmtree(share, ignore_errors=True)
    lws = _module_dir("sigs.k8s.io/lws", vs.lws)
    shutil.copytree(lws / "config" / "crd" / "bases", share / "lws" / "crd")
    (share / "lws" / "webhook").mkdir(parents=True)
    for name in ("manifests.yaml", "mutating-patch.yaml", "validating-patch.yaml"):
        shutil.copy(lws / "config" / "webhook" / name, share / "lws" / "webhook" / name)
    kwok = _module_dir("sigs.k8s.io/kwok", vs.kwok)
    shutil.copytree(kwok / "kustomize" / "crd" / "bases", share / "kwok" / "crd")
    shutil.copytree(kwok / "kustomize" / "stage", share / "kwok" / "stage")
    for path in share.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
        else:
            path.chmod(0o755)
