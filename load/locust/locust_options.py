"""The locustfile's own command-line options, their checks, and the SLO judgement they configure.

Standard library only at run time, because it ships next to the locustfile like ``locust_stream.py``
(in-cluster, the ConfigMap of load/locust/manifests.py holds it: ``SHIPPED_FILES`` in
load/locust/incluster.py), and a stock ``locustio/locust`` image has nothing of this suite. The locustfile
imports it as the top-level module ``locust_options`` (Locust puts the locustfile's directory on
``sys.path``), and it imports its sibling ``locust_stream`` the same way, so it is importable only there,
not as ``load.locust.locust_options``. The name repeats its package's for the reason given in
locust_stream.py: beside ``locustfile.py`` in the ConfigMap it stands alone.

Every option also reads an environment variable (``LOCUST_<NAME>``), as Locust's own options do, and
shows in Locust's web UI form except the two about collecting records (docs/locust.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from locust_stream import API_PATHS  # type: ignore[import-not-found]  # shipped next to this file

if TYPE_CHECKING:
    from locust.env import Environment

SLO_ENTRIES = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "e2el_ms": "STREAM"}


def add_options(parser: Any) -> None:
    """Locust's ``init_command_line_parser`` listener: the options of the requests, the SLO, the
    client and the collection of raw records."""
    _add_request_options(parser)
    _add_slo_options(parser)
    _add_client_options(parser)
    _add_collection_options(parser)


def _add_request_options(parser: Any) -> None:
    parser.add_argument("--model", default="", env_var="LOCUST_MODEL", help="served model name (required)")
    parser.add_argument(
        "--api",
        default="completions",
        choices=sorted(API_PATHS),
        env_var="LOCUST_API",
        help="completions (default) or chat",
    )
    parser.add_argument(
        "--input-len",
        type=int,
        default=128,
        env_var="LOCUST_INPUT_LEN",
        help="prompt length in words, about one token each (default 128)",
    )
    parser.add_argument(
        "--output-len",
        type=int,
        default=128,
        env_var="LOCUST_OUTPUT_LEN",
        help="max_tokens of every request (default 128)",
    )
    parser.add_argument(
        "--no-ignore-eos",
        action="store_true",
        default=False,
        env_var="LOCUST_NO_IGNORE_EOS",
        help="do not send ignore_eos (sent by default, so every output is --output-len)",
    )
    parser.add_argument(
        "--prompt-seed",
        type=int,
        default=0,
        env_var="LOCUST_PROMPT_SEED",
        help="seed of the random prompts (default 0)",
    )


def _add_slo_options(parser: Any) -> None:
    for name, what in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2el", "E2E latency")):
        parser.add_argument(
            f"--slo-{name}-ms",
            type=float,
            default=None,
            env_var=f"LOCUST_SLO_{name.upper()}_MS",
            help=f"SLO: {what} threshold in ms; above it at --slo-percentile the exit code is 1",
        )
    parser.add_argument(
        "--slo-percentile",
        type=float,
        default=99.0,
        env_var="LOCUST_SLO_PERCENTILE",
        help="percentile the SLO thresholds apply to (default 99)",
    )


def _add_client_options(parser: Any) -> None:
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=600.0,
        env_var="LOCUST_READ_TIMEOUT",
        help="longest silence within a response, s (default 600)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        env_var="LOCUST_CONNECT_TIMEOUT",
        help="connect timeout, s (default 10)",
    )


def _add_collection_options(parser: Any) -> None:
    parser.add_argument(
        "--raw-dir",
        default="",
        env_var="LOCUST_RAW_DIR",
        include_in_web_ui=False,
        help="write every request's raw timings as JSON lines into this directory",
    )
    parser.add_argument(
        "--records-to-master",
        action="store_true",
        default=False,
        env_var="LOCUST_RECORDS_TO_MASTER",
        include_in_web_ui=False,
        help="workers also send their raw records to the master (in-cluster collection)",
    )


def problems(options: Any) -> list[str]:
    """What is wrong with the parsed options, one sentence each (empty if nothing)."""
    found = []
    if not options.model:
        found.append("--model is required (the served model name)")
    for name in ("input_len", "output_len"):
        if getattr(options, name) < 1:
            found.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    for key in SLO_ENTRIES:
        try:
            value = slo_threshold(options, key)
        except ValueError:
            value = -1.0
        if value is not None and not value > 0:
            found.append(
                f"--slo-{key.replace('_', '-')} must be a number > 0 (ms), got {getattr(options, f'slo_{key}')}"
            )
    if not 0 < options.slo_percentile <= 100:
        found.append(f"--slo-percentile must be in (0, 100], got {options.slo_percentile}")
    for name in ("read_timeout", "connect_timeout"):
        if not getattr(options, name) > 0:
            found.append(f"--{name.replace('_', '-')} must be > 0 s, got {getattr(options, name)}")
    return found


def slo_threshold(options: Any, key: str) -> float | None:
    """The threshold in ms, or None. Locust's web UI hands options without a default back as text."""
    value = getattr(options, f"slo_{key}", None)
    return None if value in (None, "") else float(value)


def slo_breaches(environment: Environment) -> list[str]:
    """The SLO thresholds exceeded at --slo-percentile by Locust's own (rounded) statistics."""
    options: Any = environment.parsed_options
    path = API_PATHS[options.api]
    q = float(options.slo_percentile)
    breaches = []
    for key, request_type in SLO_ENTRIES.items():
        threshold = slo_threshold(options, key)
        if threshold is None:
            continue
        entry = environment.stats.get(path, request_type)
        if entry.num_requests - entry.num_failures <= 0:
            breaches.append(f"{key} <= {threshold:g}: no completed request to check")
            continue
        value = entry.get_response_time_percentile(q / 100)
        if value > threshold:
            breaches.append(f"{key} p{q:g} {value:g} > {threshold:g}")
    return breaches
