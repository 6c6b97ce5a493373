"""`python -m manifests lint|render|topologies|describe`: see manifests/README.md.

Exit codes: 0 no errors; 1 the lint found errors; 2 usage or input error (one line, no traceback);
3 the cluster for the dry run could not be reached or lacks the LWS CRD.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from manifests.describe import describe
from manifests.dry_run import ClusterUnreachable, KubectlDryRun, KubectlMissing
from manifests.lint import DEFAULT_NODE_GPUS, NodeCapacity, lint
from manifests.load import REFERENCE_DIR, VARIANTS, load_manifest
from manifests.manifest import ManifestError
from manifests.profiles import PROFILES, UnknownProfile
from manifests.render import Overrides, render, to_yaml
from manifests.topologies import DEFAULT_TOPOLOGY, TOPOLOGIES, UnknownTopology
from plumbing.exit_codes import run_cli

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_CLUSTER = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m manifests", description="LWS + vLLM manifests: render and preflight lint"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    lint_p = sub.add_parser("lint", help="check an LWS manifest before applying it")
    lint_p.add_argument("file", type=Path)
    lint_p.add_argument("--kubeconfig", type=Path, help="also run kubectl apply --dry-run=server against it")
    lint_p.add_argument("--context", help="kubeconfig context for the dry run")
    lint_p.add_argument("--node-gpus", type=int, default=DEFAULT_NODE_GPUS, help="GPUs per node (default 8)")
    lint_p.add_argument("--nodes", type=int, help="GPU nodes available (default: not checked)")

    render_p = sub.add_parser("render", help="print the manifest of a topology or a shipped variant")
    render_p.add_argument("--topology", default=DEFAULT_TOPOLOGY, help=f"one of: {', '.join(TOPOLOGIES)}")
    render_p.add_argument("--variant", choices=sorted(VARIANTS), help="print a shipped file as it is")
    render_p.add_argument("--model")
    render_p.add_argument("--image")
    render_p.add_argument("--profile", help=f"launch profile, one of: {', '.join(PROFILES)}")
    render_p.add_argument("--namespace")
    render_p.add_argument("--replicas", type=int, default=None)
    render_p.add_argument("--name", default="vllm", help="LWS name (default vllm)")
    render_p.add_argument("--restart-policy", default="RecreateGroupOnPodRestart")
    render_p.add_argument(
        "--extra-arg",
        action="append",
        default=[],
        help="extra vllm serve argument (repeat; --extra-arg=--x=1)",
    )

    sub.add_parser("topologies", help="list the named topologies")

    describe_p = sub.add_parser("describe", help="print what a manifest deploys (TP, PP, GPUs, model, ...)")
    describe_p.add_argument("file", type=Path)
    return parser


def _first_validation_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _cmd_lint(args: argparse.Namespace) -> int:
    if args.context and not args.kubeconfig:
        raise UsageError("--context needs --kubeconfig")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        raise UsageError(f"--kubeconfig {args.kubeconfig}: no such file")
    try:
        capacity = NodeCapacity(gpus_per_node=args.node_gpus, nodes=args.nodes)
    except ValidationError as exc:
        raise UsageError(f"--node-gpus/--nodes: {_first_validation_message(exc)}") from None
    manifest = load_manifest(args.file)
    dry_run = KubectlDryRun(kubeconfig=args.kubeconfig, context=args.context) if args.kubeconfig else None
    report = lint(manifest, capacity=capacity, dry_run=dry_run)
    for finding in report.findings:
        print(finding)
    errors, warnings = len(report.errors), len(report.warnings)
    print(f"{manifest.source}: {errors} error(s), {warnings} warning(s)")
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _cmd_render(args: argparse.Namespace) -> int:
    if args.variant:
        print((REFERENCE_DIR / VARIANTS[args.variant]).read_text(encoding="utf-8"), end="")
        return EXIT_OK
    try:
        overrides = Overrides(
            model=args.model,
            image=args.image,
            namespace=args.namespace,
            profile=args.profile,
            replicas=args.replicas,
            lws_name=args.name,
            restart_policy=args.restart_policy,
            extra_args=tuple(args.extra_arg),
        )
    except ValidationError as exc:
        if args.profile is not None and args.profile not in PROFILES:
            raise UsageError(
                f"unknown launch profile {args.profile!r}; choose one of: {', '.join(PROFILES)}"
            ) from None
        raise UsageError(_first_validation_message(exc)) from None
    print(to_yaml(render(args.topology, overrides)), end="")
    return EXIT_OK


def _cmd_topologies(_args: argparse.Namespace) -> int:
    print(f"{'name':<10} {'tp':>3} {'pp':>3} {'size':>4} {'gpus/pod':>8} {'nodes':>5}  default model / what")
    for t in TOPOLOGIES.values():
        print(
            f"{t.name:<10} {t.tp:>3} {t.pp:>3} {t.size:>4} {t.gpus_per_pod:>8} {t.nodes:>5}  {t.default_model}"
        )
        print(f"{'':<40}{t.description}")
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    info = describe(load_manifest(args.file))
    for key, value in info.model_dump(exclude={"leader", "worker"}).items():
        print(f"{key}: {value}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    commands = {
        "lint": _cmd_lint,
        "render": _cmd_render,
        "topologies": _cmd_topologies,
        "describe": _cmd_describe,
    }
    try:
        args = _parser().parse_args(argv)
        return commands[args.command](args)
    except (UsageError, ManifestError, UnknownTopology, UnknownProfile, KubectlMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClusterUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m manifests"))
