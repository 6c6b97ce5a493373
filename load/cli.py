"""``python -m load run ...``: drive an OpenAI-compatible endpoint and write a result file.

Exit codes: 0 the run finished (failed requests are data in the result, not an error); 2 usage or
input error (one line, no traceback); 3 the endpoint could not be reached; 130 interrupted by Ctrl-C
or SIGTERM after writing the partial result: every request sent is in it, those cut off in
flight counted as failed with reason ``interrupted``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from load.config import (
    APIS,
    LENGTH_KINDS,
    LENGTH_UNITS,
    SLO_KEYS,
    ConfigError,
    LengthDist,
    MultiTurnWorkload,
    RandomWorkload,
    SharedPrefixWorkload,
    ShareGptWorkload,
    SweepConfig,
    Timeouts,
    Workload,
    levels_from_lists,
)
from load.endpoint_probe import EndpointUnreachable, ModelNotServed
from load.progress import StderrProgress
from load.repeat_run import RepeatedRun, run_repeats
from load.summary import print_summary
from load.vllm_format import json_safe, level_file_name, vllm_bench_json
from load.workload import WorkloadError
from plumbing.argtypes import key_numbers, positive_int, positive_number

EXIT_OK, EXIT_USAGE, EXIT_UNREACHABLE = 0, 2, 3
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 130}  # README.md, exit codes: one code for both
PROG = "python -m load"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit code 2 (argparse would print the whole usage first)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Async streaming load generator for OpenAI-compatible servers (vLLM)."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run a sweep of load levels and write a result file")
    target = run.add_argument_group("target")
    target.add_argument("--endpoint", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    target.add_argument("--model", required=True, help="served model name")
    target.add_argument("--api", choices=APIS, default="completions", help="default: completions")
    _add_workload_flags(run.add_argument_group("workload"))
    _add_level_flags(run.add_argument_group("load levels (every concurrency x every rate, in order)"))
    _add_output_flags(run)
    return parser


def _add_workload_flags(work: argparse._ArgumentGroup) -> None:
    work.add_argument(
        "--dataset",
        default="random",
        help="random (default) | shared-prefix | sharegpt:FILE (ShareGPT-format JSON) | multi-turn[:FILE] "
        "(sessions of --turns turns; FILE: a ShareGPT file's human turns)",
    )
    work.add_argument(
        "--length-unit",
        choices=LENGTH_UNITS,
        default="tokens",
        help="tokens (default: the served model's, prompts fitted with the server's POST /tokenize and "
        "checked against usage.prompt_tokens) | words (about a token each, unchecked: the earlier behaviour)",
    )
    for which in ("input", "output"):
        work.add_argument(
            f"--{which}-dist",
            choices=LENGTH_KINDS,
            default="fixed",
            help=f"how {which} lengths vary around --{which}-len: fixed (default) | uniform (--{which}-min.."
            f"--{which}-max) | normal (--{which}-std-dev, clamped to --{which}-min/--{which}-max)",
        )
        work.add_argument(
            f"--{which}-std-dev", type=float, default=0.0, help=f"--{which}-dist normal: tokens"
        )
        work.add_argument(f"--{which}-min", type=positive_int, help=f"shortest {which} length")
        work.add_argument(f"--{which}-max", type=positive_int, help=f"longest {which} length")
    work.add_argument("--turns", type=positive_int, default=3, help="multi-turn: turns a session (default 3)")
    work.add_argument(
        "--think-time", type=float, default=0.0, help="multi-turn: seconds between a reply and the next turn"
    )
    work.add_argument(
        "--input-len", type=positive_int, help="prompt length in tokens (random, shared-prefix)"
    )
    work.add_argument(
        "--output-len", type=positive_int, help="tokens to generate (sharegpt: default from the reply)"
    )
    work.add_argument(
        "--prefix-len",
        type=positive_int,
        help="shared-prefix: shared part of the prompt (default input-len/2)",
    )
    work.add_argument(
        "--num-prefixes", type=positive_int, default=4, help="shared-prefix: distinct prefixes (default 4)"
    )
    work.add_argument(
        "--no-ignore-eos", action="store_true", help="do not send ignore_eos (it is sent by default)"
    )


def _add_level_flags(load: argparse._ArgumentGroup) -> None:
    load.add_argument("--num-requests", type=positive_int, required=True, help="requests per level")
    load.add_argument(
        "--concurrency", type=_int_list, help="C[,C...]: requests in flight (a cap when a rate is given)"
    )
    load.add_argument(
        "--request-rate", type=_rate_list, help="R[,R...] requests/s, open loop; inf = closed loop"
    )
    load.add_argument(
        "--burstiness", type=positive_number, default=1.0, help="gamma shape: 1 Poisson (default), inf even"
    )
    load.add_argument(
        "--ramp-up", type=_ramp, metavar="R0:R1", help="one level whose rate rises linearly from R0 to R1"
    )
    load.add_argument("--seed", type=int, default=0, help="seed for prompts and arrival times (default 0)")
    load.add_argument(
        "--slo",
        type=_slo,
        default={},
        help="ttft_ms=..,tpot_ms=..,e2el_ms=..: goodput counts requests meeting all",
    )
    load.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="run the whole sweep N times; the result folds them with a 95%% t-interval per metric (default 1)",
    )


def _add_output_flags(run: argparse.ArgumentParser) -> None:
    """Where the result goes, timeouts, and what the run does besides the levels."""
    run.add_argument("--out", type=Path, required=True, help="result file (JSON, the suite's schema)")
    run.add_argument(
        "--format",
        choices=["vllm"],
        action="append",
        default=[],
        help="also write each level as vLLM bench serve JSON",
    )
    run.add_argument("--label", help="free-form label stored in the result")
    run.add_argument(
        "--timeout-read",
        type=positive_number,
        default=600.0,
        help="longest silence within a response, s (600)",
    )
    run.add_argument(
        "--timeout-request", type=positive_number, default=21600.0, help="longest request, s (21600)"
    )
    run.add_argument("--timeout-connect", type=positive_number, default=10.0, help="connect timeout, s (10)")
    run.add_argument(
        "--no-server-metrics", action="store_true", help="do not scrape /metrics around each level"
    )
    run.add_argument("--no-warmup", action="store_true", help="do not open the connections before each level")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    if args.concurrency is None and args.request_rate is None and args.ramp_up is None:
        raise ConfigError("give --concurrency, --request-rate or --ramp-up")
    if args.ramp_up is not None and args.request_rate is not None:
        raise ConfigError("--ramp-up and --request-rate exclude each other")
    rates: list[float | None] = [None]
    rate_end = None
    if args.ramp_up is not None:
        rates, rate_end = [args.ramp_up[0]], args.ramp_up[1]
    elif args.request_rate is not None:
        rates = args.request_rate
    concurrencies: list[int | None] = args.concurrency if args.concurrency is not None else [None]
    headers = (
        {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
        if os.environ.get("OPENAI_API_KEY")
        else {}
    )
    return SweepConfig(
        endpoint=args.endpoint,
        model=args.model,
        api=args.api,
        workload=_workload(args),
        levels=levels_from_lists(args.num_requests, concurrencies, rates, args.burstiness, rate_end),
        slo=args.slo,
        seed=args.seed,
        ignore_eos=not args.no_ignore_eos,
        timeouts=Timeouts(
            connect_s=args.timeout_connect, read_s=args.timeout_read, request_s=args.timeout_request
        ),
        scrape_server_metrics=not args.no_server_metrics,
        warm_connections=not args.no_warmup,
        label=args.label,
        headers=headers,
        length_unit=args.length_unit,
    )


def _dist(args: argparse.Namespace, which: str) -> LengthDist:
    return LengthDist(
        kind=getattr(args, f"{which}_dist"),
        std_dev=getattr(args, f"{which}_std_dev"),
        min=getattr(args, f"{which}_min"),
        max=getattr(args, f"{which}_max"),
    )


def _workload(args: argparse.Namespace) -> Workload:
    kind, _, path = args.dataset.partition(":")
    if kind == "multi-turn":
        return MultiTurnWorkload(
            input_len=args.input_len or 128,
            output_len=args.output_len if (args.output_len is not None or path) else 128,
            turns=args.turns,
            think_time_s=args.think_time,
            path=Path(path) if path else None,
        )
    if kind == "sharegpt":
        if not path:
            raise ConfigError("--dataset sharegpt needs a file: --dataset sharegpt:FILE")
        return ShareGptWorkload(path=Path(path), output_len=args.output_len)
    if path:
        raise ConfigError(f"--dataset {kind} takes no file; only sharegpt:FILE does")
    if kind not in ("random", "shared-prefix"):
        raise ConfigError(
            f"unknown --dataset {args.dataset!r}; known: random, shared-prefix, sharegpt:FILE, multi-turn[:FILE]"
        )
    if args.input_len is None or args.output_len is None:
        raise ConfigError(f"--dataset {kind} needs --input-len and --output-len")
    if kind == "random":
        return RandomWorkload(
            input_len=args.input_len,
            output_len=args.output_len,
            input_dist=_dist(args, "input"),
            output_dist=_dist(args, "output"),
        )
    prefix_len = args.prefix_len if args.prefix_len is not None else args.input_len // 2
    return SharedPrefixWorkload(
        input_len=args.input_len,
        output_len=args.output_len,
        prefix_len=prefix_len,
        num_prefixes=args.num_prefixes,
        output_dist=_dist(args, "output"),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        _check_writable(args.out)
    except (ConfigError, WorkloadError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    progress = None if args.quiet else StderrProgress()
    received: list[int] = []
    try:
        run = asyncio.run(_run(config, args.repeats, progress, received))
    except EndpointUnreachable as exc:
        return _fail(EXIT_UNREACHABLE, str(exc))
    except (ModelNotServed, WorkloadError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except KeyboardInterrupt:  # a second Ctrl-C: leave at once
        return _fail(EXIT_SIGNAL[signal.SIGINT], "aborted; no result written")
    finally:
        if progress is not None:
            progress.close()
    run.result.write(args.out)
    written = [str(args.out)]
    if "vllm" in args.format:
        for r, sweep in enumerate(run.runs):
            stem = args.out.stem if len(run.runs) == 1 else f"{args.out.stem}.repeat-{r + 1}"
            for n, level_run in enumerate(sweep.levels, start=1):
                path = args.out.with_name(level_file_name(stem, n))
                data = vllm_bench_json(sweep, level_run)
                path.write_text(json.dumps({k: json_safe(v) for k, v in data.items()}, indent=2) + "\n")
                written.append(str(path))
    print_summary(run.result, [level.describe() for level in config.levels], quiet=args.quiet)
    print(f"wrote {', '.join(written)}", file=sys.stderr)
    if run.interrupted:
        signum = received[0] if received else signal.SIGINT
        print("interrupted: the result holds every request sent so far", file=sys.stderr)
        return EXIT_SIGNAL.get(signal.Signals(signum), 130)
    return EXIT_OK


async def _run(
    config: SweepConfig, repeats: int, progress: StderrProgress | None, received: list[int]
) -> RepeatedRun:
    """Run the sweep; the first SIGINT/SIGTERM stops it gracefully, a second SIGINT aborts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()
        for s in EXIT_SIGNAL:
            loop.remove_signal_handler(s)  # the next one falls through to the default handler

    for s in EXIT_SIGNAL:
        loop.add_signal_handler(s, on_signal, s)
    return await run_repeats(config, repeats, progress=progress, stop=stop)


def _check_writable(path: Path) -> None:
    parent = path.parent.resolve()
    if path.is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file name such as {path / 'result.json'}")
    if not parent.is_dir():
        raise ConfigError(f"--out {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {path}: directory {parent} is not writable")


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _int_list(text: str) -> list[int]:
    return [positive_int(part) for part in text.split(",")]


def _rate_list(text: str) -> list[float | None]:
    rates: list[float | None] = []
    for part in text.split(","):
        value = positive_number(part)
        rates.append(None if math.isinf(value) else value)
    return rates


def _ramp(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START:END requests/s, got {text!r}")
    try:
        r0, r1 = float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END requests/s, got {text!r}") from None
    if not (math.isfinite(r0) and math.isfinite(r1) and r0 >= 0 and r1 > 0):
        raise argparse.ArgumentTypeError(f"expected 0 <= START and 0 < END, both finite, got {text!r}")
    return r0, r1


def _slo(text: str) -> dict[str, float]:
    return key_numbers(text, SLO_KEYS, positive_number, "ms")


if __name__ == "__main__":
    sys.exit(main())
