"""``python -m load.locust`` options: the parser and the typed, validated run configuration.

Everything is checked before any process starts or any cluster is touched; a ``ConfigError`` is one line
(exit code 2). docs/locust.md documents the options.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from load.config import APIS, SLO_KEYS, Api, ConfigError
from plumbing.argtypes import (
    key_numbers,
    nonneg_finite_number,
    nonneg_int,
    positive_finite_number,
    positive_int,
)

PROG = "python -m load.locust"
EXIT_USAGE = 2
DEFAULT_SERVICE, DEFAULT_SERVICE_PORT = "vllm-leader", 8080
_RUN_TIME = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ClusterTarget:
    """A Service in a cluster, reached with kubectl (``--kubeconfig``/``--context``, else kubectl's default)."""

    namespace: str
    service: str = DEFAULT_SERVICE
    service_port: int = DEFAULT_SERVICE_PORT
    kubeconfig: Path | None = None
    context: str | None = None
    kubectl: str | None = None

    @property
    def in_cluster_url(self) -> str:
        """The Service's DNS name, as pods in the cluster reach it."""
        return f"http://{self.service}.{self.namespace}.svc:{self.service_port}"

    def describe(self) -> str:
        return f"svc/{self.service}:{self.service_port} in namespace {self.namespace}"


@dataclass(frozen=True)
class LocustRunConfig:
    out: Path | None  # the result file; None only with render_only
    users: int
    spawn_rate: float
    run_time_s: int
    endpoint: str | None = None  # a base URL; None: ``cluster``
    cluster: ClusterTarget | None = None
    in_cluster: bool = False  # run master and workers in the cluster instead of here
    workers: int = 0  # 0: one Locust process; W: a master and W workers
    stop_timeout_s: float = 300.0
    web: bool = False
    web_linger_s: int = 30
    model: str | None = None  # None: the one model the endpoint serves
    api: Api = "completions"
    input_len: int = 128
    output_len: int = 128
    ignore_eos: bool = True
    seed: int = 0
    slo: dict[str, float] = field(default_factory=dict)
    slo_percentile: float = 99.0
    read_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    raw_dir: Path | None = None  # keep the raw JSON lines here; None: a temporary directory
    label: str | None = None
    locust_args: tuple[str, ...] = ()
    image: str | None = None  # in-cluster: the Locust image (default load.locust.manifests.LOCUST_IMAGE)
    keep: bool = False  # in-cluster: leave the Locust objects after the run
    render_only: bool = False  # in-cluster: print the manifests and stop

    def __post_init__(self) -> None:
        if (self.endpoint is None) == (self.cluster is None):
            raise ConfigError(
                "give either --endpoint URL or --namespace NS (a Service in a cluster), not both"
            )
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ConfigError(
                    f"--endpoint must be a base URL such as http://127.0.0.1:8000, got {self.endpoint!r}"
                )
            if self.in_cluster:
                raise ConfigError(
                    "--in-cluster runs Locust in the cluster against a Service: give --namespace, not --endpoint"
                )
        if self.render_only and not self.in_cluster:
            raise ConfigError("--render-only prints the in-cluster manifests: it needs --in-cluster")
        if self.in_cluster and self.workers < 1:
            raise ConfigError("--in-cluster needs --workers >= 1 (a master and its workers)")
        if self.workers > self.users:
            raise ConfigError(
                f"--workers {self.workers} > --users {self.users}: some workers would get no user"
            )
        if self.model is not None and not self.model:
            raise ConfigError("--model must be the served model name, got an empty string")
        if self.api not in APIS:
            raise ConfigError(f"--api must be one of {', '.join(APIS)}, got {self.api!r}")
        if not 0 < self.slo_percentile <= 100:
            raise ConfigError(f"--slo-percentile must be in (0, 100], got {self.slo_percentile:g}")
        if self.raw_dir is not None and any(self.raw_dir.glob("*.jsonl")):
            raise ConfigError(
                f"--raw-dir {self.raw_dir} already holds raw records (*.jsonl); give a new directory"
            )
        if self.out is None:
            if not self.render_only:
                raise ConfigError("--out FILE is required (the result file)")
            return
        if self.out.is_dir():
            raise ConfigError(
                f"--out {self.out} is a directory; give a file name such as {self.out / 'result.json'}"
            )
        parent = self.out.parent.resolve()
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"--out {self.out}: directory {parent} does not exist or is not writable")

    @property
    def run_time(self) -> str:
        """Locust's spelling of the run time."""
        return f"{self.run_time_s}s"

    @property
    def target(self) -> str:
        return self.endpoint if self.endpoint is not None else self.cluster.describe()  # type: ignore[union-attr]

    def locustfile_args(self, model: str) -> list[str]:
        """The locustfile's own options (load/locust/locustfile.py), for the master or the single process."""
        args = [
            "--model", model, "--api", self.api,
            "--input-len", str(self.input_len), "--output-len", str(self.output_len),
            "--prompt-seed", str(self.seed), "--slo-percentile", f"{self.slo_percentile:g}",
            "--read-timeout", f"{self.read_timeout_s:g}", "--connect-timeout", f"{self.connect_timeout_s:g}",
        ]  # fmt: skip
        if not self.ignore_eos:
            args.append("--no-ignore-eos")
        for key, value in sorted(self.slo.items()):
            args += [f"--slo-{key.removesuffix('_ms')}-ms", f"{value:g}"]
        return args


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit code 2 (argparse would print the whole usage first)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Drive a vLLM (OpenAI-compatible) endpoint with Locust streaming users and write the result "
        "in the suite's schema (docs/locust.md).",
    )
    for add_group in (
        _target_options,
        _in_cluster_options,
        _load_options,
        _workload_options,
        _output_options,
    ):
        add_group(p)
    return p


def _target_options(p: argparse.ArgumentParser) -> None:
    target = p.add_argument_group("target: --endpoint URL, or a Service in a cluster (kubectl port-forward)")
    target.add_argument("--endpoint", help="base URL of a running server, e.g. http://127.0.0.1:8000")
    target.add_argument("--namespace", help="namespace of the vLLM Service (cluster mode)")
    target.add_argument(
        "--service", default=DEFAULT_SERVICE, help=f"the vLLM Service (default {DEFAULT_SERVICE})"
    )
    target.add_argument(
        "--service-port",
        type=positive_int,
        default=DEFAULT_SERVICE_PORT,
        help=f"its port (default {DEFAULT_SERVICE_PORT})",
    )
    target.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: kubectl's own default)")
    target.add_argument("--context", help="kubeconfig context")
    target.add_argument("--kubectl", help="kubectl binary (default: next to this Python, else on PATH)")


def _in_cluster_options(p: argparse.ArgumentParser) -> None:
    incluster = p.add_argument_group("in-cluster: Locust master and workers as pods in the cluster")
    incluster.add_argument(
        "--in-cluster",
        action="store_true",
        help="run Locust in the cluster against the Service's DNS name (needs --workers >= 1)",
    )
    incluster.add_argument(
        "--image", help="Locust image for the pods (default docker.io/locustio/locust:2.47.0)"
    )
    incluster.add_argument("--keep", action="store_true", help="leave the Locust objects in the namespace")
    incluster.add_argument(
        "--render-only", action="store_true", help="print the in-cluster manifests and exit"
    )


def _load_options(p: argparse.ArgumentParser) -> None:
    load = p.add_argument_group("load")
    load.add_argument(
        "--users", type=positive_int, required=True, help="concurrent users (each one request at a time)"
    )
    load.add_argument(
        "--spawn-rate", type=positive_finite_number, help="users started per second (default: --users)"
    )
    load.add_argument("--run-time", type=_run_time, required=True, help="e.g. 60, 90s, 5m, 1h30m")
    load.add_argument(
        "--workers",
        type=nonneg_int,
        default=0,
        help="0 (default): one Locust process; W: a master and W worker processes",
    )
    load.add_argument(
        "--stop-timeout",
        type=nonneg_finite_number,
        default=300.0,
        help="at the end, let requests in flight finish for up to this many s (default 300)",
    )
    load.add_argument(
        "--web", action="store_true", help="open Locust's web UI on 127.0.0.1 and print its URL"
    )
    load.add_argument(
        "--web-linger",
        type=nonneg_int,
        default=30,
        help="with --web: keep the UI up this many s after the run (default 30)",
    )
    load.add_argument(
        "--locust-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass an option to Locust (repeat; --locust-arg=--html=report.html)",
    )


def _workload_options(p: argparse.ArgumentParser) -> None:
    work = p.add_argument_group("workload")
    work.add_argument("--model", help="served model name (default: the one model the endpoint serves)")
    work.add_argument("--api", choices=APIS, default="completions", help="default: completions")
    work.add_argument(
        "--input-len", type=positive_int, default=128, help="prompt length in tokens (default 128)"
    )
    work.add_argument("--output-len", type=positive_int, default=128, help="tokens to generate (default 128)")
    work.add_argument(
        "--no-ignore-eos", action="store_true", help="do not send ignore_eos (it is sent by default)"
    )
    work.add_argument("--seed", type=int, default=0, help="seed of the prompts (default 0)")
    work.add_argument(
        "--slo", type=_slo, default={}, help="ttft_ms=..,tpot_ms=..,e2el_ms=..: exit 1 if breached"
    )
    work.add_argument(
        "--slo-percentile",
        type=float,
        default=99.0,
        help="percentile the SLO thresholds apply to (default 99)",
    )
    work.add_argument(
        "--timeout-read",
        type=positive_finite_number,
        default=600.0,
        help="longest silence within a response, s (600)",
    )
    work.add_argument(
        "--timeout-connect", type=positive_finite_number, default=10.0, help="connect timeout, s (10)"
    )


def _output_options(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    out.add_argument(
        "--out", type=Path, help="result file (JSON, the suite's schema); required but with --render-only"
    )
    out.add_argument(
        "--raw-dir", type=Path, help="keep the raw per-request JSON lines (and Locust's logs) here"
    )
    out.add_argument("--label", help="free-form label stored in the result")


def config_from_args(args: argparse.Namespace) -> LocustRunConfig:
    cluster = None
    if args.namespace is not None:
        if not _DNS1123.match(args.namespace):
            raise ConfigError(f"--namespace {args.namespace!r} is not a valid namespace name")
        cluster = ClusterTarget(
            namespace=args.namespace, service=args.service, service_port=args.service_port,
            kubeconfig=args.kubeconfig, context=args.context, kubectl=args.kubectl,
        )  # fmt: skip
    elif args.kubeconfig is not None or args.context is not None:
        raise ConfigError("--kubeconfig/--context need --namespace (where the vLLM Service is)")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        raise ConfigError(f"--kubeconfig {args.kubeconfig}: no such file")
    return LocustRunConfig(
        out=args.out,
        users=args.users,
        spawn_rate=args.spawn_rate if args.spawn_rate is not None else float(args.users),
        run_time_s=args.run_time,
        endpoint=args.endpoint,
        cluster=cluster,
        in_cluster=args.in_cluster,
        workers=args.workers,
        stop_timeout_s=args.stop_timeout,
        web=args.web,
        web_linger_s=args.web_linger,
        model=args.model,
        api=args.api,
        input_len=args.input_len,
        output_len=args.output_len,
        ignore_eos=not args.no_ignore_eos,
        seed=args.seed,
        slo=args.slo,
        slo_percentile=args.slo_percentile,
        read_timeout_s=args.timeout_read,
        connect_timeout_s=args.timeout_connect,
        raw_dir=args.raw_dir,
        label=args.label,
        locust_args=tuple(args.locust_arg),
        image=args.image,
        keep=args.keep,
        render_only=args.render_only,
    )


def _run_time(text: str) -> int:
    """Whole seconds from Locust's spelling: 90, 90s, 5m, 1h30m."""
    text = text.strip()
    if text.isdigit():
        seconds = int(text)
    else:
        match = _RUN_TIME.match(text)
        if not text or match is None:
            raise argparse.ArgumentTypeError(
                f"expected a duration such as 60, 90s, 5m or 1h30m, got {text!r}"
            )
        seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"expected a run time of at least 1 s, got {text!r}")
    return seconds


def _slo(text: str) -> dict[str, float]:
    return key_numbers(text, SLO_KEYS, positive_finite_number, "ms")
