"""Build the testbed's real binaries from Go modules into a versioned cache outside the repo.

Two caches, so each version is built once and combined with any other (`--kubernetes-version`, `--lws-version`):
- the control plane, `<cache>/testbed/k8s-<kubernetes>_kwok-<kwok>/`: kube-apiserver, kube-controller-manager,
  kube-scheduler and etcd from our module (testbed/gobuild/kube for the pinned Kubernetes; for another release a
  module generated into the cache directory by testbed/gomod.py, with the etcd that release requires), with
  the version ldflags `hack/lib/version.sh` sets, so `--version` and `/version` report the release; kwok and
  kwokctl with `go install sigs.k8s.io/kwok/cmd/...@KWOK`; KWOK's CRDs and stages in `share/kwok`. A directory of
  the earlier combined layout (`k8s-..._etcd-..._kwok-..._lws-...`) with the same Kubernetes and KWOK is
  adopted as it is, not rebuilt.
- one LWS release, `<cache>/testbed/lws-<version>/` (testbed/lws_build.py).

A build is reused when its completion stamp names the same versions; concurrent builders (pytest-xdist
workers, two testbeds) serialise on a lock file. Progress is printed as packages compiled.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from testbed import gomod, paths, versions
from testbed.failures import PrerequisiteMissing
from testbed.gomod import GOMOD_DIR
from testbed.gotool import BuildError, Progress, go_env, lock, module_dir, package_count, run_go
from testbed.lws_build import LwsBuild, ensure_lws, find_lws
from testbed.progress import stderr_printer

__all__ = ["BINARIES", "GO_MISSING", "Binaries", "BuildError", "Progress", "ensure_built", "find_built"]

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
CONTROL_PLANE = (*KUBE_COMMANDS, "etcd", "kwok", "kwokctl")
BINARIES = (*CONTROL_PLANE, "lws-manager")
STAMP = ".complete.json"
# What a newcomer is told before the first build. Measured for the README: a cold build (empty Go module and
# build caches) of all seven binaries on a 2-core, 24 GB machine, about 12 minutes with 2 GB peak memory.
FIRST_BUILD = "about 12 minutes on 2 cores (2 GB of memory), once"


GO_MISSING = (
    "the testbed's binaries are not built yet and building them needs Go 1.26: the `go` command is not on PATH; "
    "install Go (https://go.dev/dl/) or point --kubeconfig at a cluster of your own"
)


@dataclass(frozen=True)
class Binaries:
    """Paths of one complete build: a control plane (bin_dir) and an LWS release."""

    bin_dir: Path
    lws: LwsBuild
    kubernetes: str = versions.KUBERNETES

    def __getitem__(self, name: str) -> Path:
        return self.lws.manager if name == "lws-manager" else self.bin_dir / name

    @property
    def share(self) -> Path:
        return self.bin_dir.parent / "share"

    @property
    def lws_crds(self) -> Path:
        return self.lws.crds

    @property
    def lws_webhooks(self) -> Path:
        return self.lws.webhooks

    @property
    def lws_rbac(self) -> Path:
        return self.lws.rbac

    @property
    def kwok_crds(self) -> Path:
        return self.share / "kwok" / "crd"


stderr_progress = stderr_printer("testbed")


def _stamp_content(vs: versions.VersionSet) -> dict[str, str]:
    return {"kubernetes": vs.kubernetes, "kwok": vs.kwok}


def _control_plane_dirs(vs: versions.VersionSet) -> list[Path]:
    """Where a control plane of these versions may be: its own directory, then any of the earlier combined
    layout (which also held an LWS controller, unused now) with the same Kubernetes and KWOK."""
    root = paths.cache_root() / "testbed"
    legacy = sorted(root.glob(f"k8s-{vs.kubernetes}_etcd-*_kwok-{vs.kwok}_lws-*/bin"))
    return [root / vs.control_plane_key / "bin", *legacy]


def find_control_plane(vs: versions.VersionSet = versions.PINNED) -> Path | None:
    """The bin directory of a complete control-plane build of these versions; None if there is none."""
    for bin_dir in _control_plane_dirs(vs):
        try:
            stamp = json.loads((bin_dir / STAMP).read_text())
        except (OSError, ValueError):
            continue
        same = all(stamp.get(k) == v for k, v in _stamp_content(vs).items())
        if same and all(os.access(bin_dir / name, os.X_OK) for name in CONTROL_PLANE):
            return bin_dir
    return None


def find_built(vs: versions.VersionSet = versions.PINNED) -> Binaries | None:
    """The cached builds for these versions, if both are complete; None otherwise."""
    bin_dir, lws = find_control_plane(vs), find_lws(vs.lws)
    return Binaries(bin_dir, lws, vs.kubernetes) if bin_dir is not None and lws is not None else None


def ensure_built(progress: Progress = stderr_progress, vs: versions.VersionSet = versions.PINNED) -> Binaries:
    """Return the cached binaries, building what is missing first (the control plane, the LWS release)."""
    if built := find_built(vs):
        return built
    if shutil.which("go") is None:
        raise PrerequisiteMissing(GO_MISSING)
    lws = ensure_lws(vs.lws, progress)  # first: a refused LWS is told in seconds, not after a 12-minute build
    bin_dir = find_control_plane(vs) or _ensure_control_plane(vs, progress)
    return Binaries(bin_dir, lws, vs.kubernetes)


def _ensure_control_plane(vs: versions.VersionSet, progress: Progress) -> Path:
    bin_dir = paths.cache_root() / "testbed" / vs.control_plane_key / "bin"
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    with lock(bin_dir.parent / ".build.lock", progress):
        if found := find_control_plane(vs):  # another process finished it while we waited
            return found
        progress(
            f"first use of Kubernetes {vs.kubernetes}: building kube-apiserver, kube-controller-manager, "
            f"kube-scheduler, etcd and kwok from Go modules into {bin_dir.parent}, {FIRST_BUILD}; later runs "
            "start the testbed in about 12 s"
        )
        _build_all(bin_dir, vs, progress)
    found = find_control_plane(vs)
    if found is None:
        raise BuildError(f"build finished but {bin_dir} is incomplete; remove it and build again")
    return found


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


def _build_all(bin_dir: Path, vs: versions.VersionSet, progress: Progress) -> None:
    staging = bin_dir.with_name("bin.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        gomod_dir, etcd = _kube_module(vs, staging.parent, progress)
        _build_steps(bin_dir, staging, vs, gomod_dir, etcd, progress)
    except BaseException:  # Ctrl-C included: no half-built directory stays in the cache
        shutil.rmtree(staging, ignore_errors=True)
        progress(f"build stopped; removed the partial build {staging}")
        raise


def _kube_module(vs: versions.VersionSet, cache_dir: Path, progress: Progress) -> tuple[Path, str]:
    """The Go module that builds this Kubernetes release, and the etcd it requires: the checked-in one for the
    pinned release, else one generated into the cache directory (testbed/gomod.py)."""
    if vs.kubernetes == versions.KUBERNETES:
        return GOMOD_DIR, versions.ETCD
    progress(f"generating the Go module for Kubernetes {vs.kubernetes} (go mod tidy)")
    return gomod.generate(vs.kubernetes, cache_dir / "gomod")


# One go command: (what it builds, argv, the directory it runs in, extra environment).
GoStep = tuple[str, list[str], Path, dict[str, str]]


def _go_steps(staging: Path, vs: versions.VersionSet, gomod_dir: Path, etcd: str) -> list[GoStep]:
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
            gomod_dir,
            {},
        ),
        (
            "etcd " + etcd,
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
            gomod_dir,
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
    ]


def _build_steps(
    bin_dir: Path, staging: Path, vs: versions.VersionSet, gomod_dir: Path, etcd: str, progress: Progress
) -> None:
    started = time.monotonic()
    steps = _go_steps(staging, vs, gomod_dir, etcd)
    for index, (label, argv, cwd, env) in enumerate(steps, 1):
        name = f"build {index}/{len(steps)}: {label}"
        total = package_count(argv, cwd, env)
        progress(f"{name} ({total if total is not None else 'counting'} packages to compile at most)")
        run_go(argv, cwd, go_env(**env), progress, name, total)
    progress("copying KWOK's manifests from its module download")
    _copy_kwok_yaml(staging.parent / "share", vs)
    (staging / STAMP).write_text(json.dumps({**_stamp_content(vs), "etcd": etcd}))
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.rename(bin_dir)
    progress(f"built {len(CONTROL_PLANE)} binaries into {bin_dir} in {time.monotonic() - started:.0f} s")


def _copy_kwok_yaml(share: Path, vs: versions.VersionSet) -> None:
    shutil.rmtree(share, ignore_errors=True)
    kwok = module_dir("sigs.k8s.io/kwok", vs.kwok)
    shutil.copytree(kwok / "kustomize" / "crd" / "bases", share / "kwok" / "crd")
    shutil.copytree(kwok / "kustomize" / "stage", share / "kwok" / "stage")
    for path in share.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
        else:
            path.chmod(0o755)
