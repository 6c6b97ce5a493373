"""``python -m reports render | compare | gate``: exit 0 ok, 1 a regression, 2 bad input (one line, no traceback)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from reports.compare import SLO_HELP, Comparison, SloError, compare, parse_slo, stored_slo
from reports.gate import DEFAULT_TOLERANCES, GateInputError, gate, parse_tolerances
from reports.gate_report import render_gate_markdown
from reports.gate_verdict import DEFAULT_K
from reports.markdown import render_comparison_markdown, render_markdown
from reports.provenance import MixedRunsError
from reports.schema import Result, SchemaError, read_result
from reports.validity import InvalidLevelsError


class InputError(Exception):
    """Anything the user gave that cannot be used; the message is the one line printed."""


def _read_all(paths: Sequence[str]) -> tuple[list[Result], list[str]]:
    results = [read_result(Path(p)) for p in paths]
    return results, [Path(p).stem for p in paths]


def _write(path: str | None, text: str) -> None:
    if path is None:
        return
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None


def _html(
    results: list[Result], names: list[str], comparison: Comparison | None = None, modelled_time: bool = False
) -> str:
    from reports.html import render_html  # matplotlib is imported only when a page is asked for

    return render_html(results, names, comparison, modelled_time=modelled_time)


def cmd_render(args: argparse.Namespace) -> int:
    results, names = _read_all(args.results)
    text = render_markdown(results, names)
    sys.stdout.write(text)
    _write(args.markdown, text)
    if args.html:
        _write(args.html, _html(results, names, modelled_time=args.modelled_time))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    results, names = _read_all(args.results)
    if args.slo is None:
        slo, slo_note = stored_slo(results)
    else:
        slo, slo_note = ({} if args.slo.strip().lower() == "none" else parse_slo(args.slo)), ""
    comparison = compare(
        results,
        names,
        slo,
        allow_mixed=args.allow_mixed,
        modelled_time=args.modelled_time,
        sources=args.results,
        allow_invalid=args.allow_invalid,
        slo_note=slo_note,
    )
    text = render_comparison_markdown(comparison)
    sys.stdout.write(text)
    _write(args.markdown, text)
    if args.html:
        _write(args.html, _html(results, names, comparison))
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    baseline, _ = _read_all(args.baseline)
    candidate, _ = _read_all(args.candidate)
    report = gate(
        baseline,
        candidate,
        parse_tolerances(args.tolerance),
        args.k,
        args.allow_no_baseline,
        allow_mixed=args.allow_mixed,
        modelled_time=args.modelled_time,
        sources=(args.baseline, args.candidate),
        allow_invalid=args.allow_invalid,
        allow_missing=args.allow_missing,
        strict=args.strict,
    )
    text = render_gate_markdown(report)
    sys.stdout.write(text)
    _write(args.markdown, text)
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Reports from the suite's result files. Exit codes: 0 ok, 1 the gate found a regression, "
        "2 bad input (one line on stderr naming the file and the problem).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{render,compare,gate}")

    render = sub.add_parser("render", help="Markdown (stdout) and an HTML page from result files")
    render.add_argument("results", nargs="+", metavar="RESULT", help="result JSON files")
    render.add_argument("--html", metavar="OUT.html", help="write the self-contained HTML page here")
    render.add_argument("--markdown", metavar="OUT.md", help="also write the Markdown here")
    _modelled_option(render, "the HTML page's comparison and plots")
    render.set_defaults(func=cmd_render)

    cmp = sub.add_parser(
        "compare", help="compare runs per GPU: side by side, Pareto frontier, best under SLOs"
    )
    cmp.add_argument(
        "results", nargs="+", metavar="RESULT", help="result JSON files, typically one per topology"
    )
    cmp.add_argument(
        "--slo",
        metavar="KEY=VALUE,...|none",
        help=f"e.g. tpot_ms=50,ttft_ms=2000; keys: {SLO_HELP}. Default: the SLOs stored in the runs, when they "
        "agree; none: rank without SLOs",
    )
    cmp.add_argument("--html", metavar="OUT.html", help="write the HTML page with the comparison here")
    cmp.add_argument("--markdown", metavar="OUT.md", help="also write the Markdown here")
    _mixed_option(cmp)
    _invalid_option(cmp)
    _modelled_option(cmp, "the comparison (SLOs are then checked in modelled time)")
    cmp.set_defaults(func=cmd_compare)

    defaults = ", ".join(f"{m}={t:g}" for m, t in DEFAULT_TOLERANCES.items() if t is not None)
    gt = sub.add_parser("gate", help="fail (exit 1) when the candidate regressed against the baseline")
    gt.add_argument(
        "--baseline", nargs="+", required=True, metavar="FILE", help="baseline result files (repeats)"
    )
    gt.add_argument("--candidate", nargs="+", required=True, metavar="FILE", help="candidate result files")
    gt.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=PCT",
        help=f"override or add a tolerance (percent; error_rate in points; 'off' disables). "
        f"Defaults: {defaults}",
    )
    gt.add_argument(
        "--k",
        type=float,
        default=DEFAULT_K,
        help=f"noise band in standard errors of the difference (default {DEFAULT_K:g})",
    )
    gt.add_argument(
        "--allow-no-baseline",
        action="store_true",
        help="pass, with a note, when no candidate level matches the baseline (the first night of a "
        "new configuration); without it that is an input error (exit 2)",
    )
    gt.add_argument("--markdown", metavar="OUT.md", help="also write the gate report here")
    _mixed_option(gt)
    _invalid_option(gt)
    _gate_strictness_options(gt)
    _modelled_option(gt, "both sides before gating")
    gt.set_defaults(func=cmd_gate)
    return parser


def _mixed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="compare runs that differ in engine (sim, vllm-cpu, vllm, external), simulator time scale, GPU "
        "product, testbed, model, workload, input_len or output_len, a field not recorded counting as "
        "'unknown'; the report then says which fields "
        "differ. Without it such runs are an input error (exit 2) naming the field and both values",
    )


def _invalid_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-invalid",
        action="store_true",
        help="use levels where the client was the bottleneck (client check 'invalid' in the result file), "
        "tagged [INVALID] in the report; without it such a level is an input error (exit 2) naming the file, "
        "the level and the reason (gate: also levels whose server view found problems, tagged [SERVER VIEW])",
    )


def _gate_strictness_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="pass, listed under 'Missing data', a level or metric the baseline has and the candidate lacks; "
        "without it that fails the gate (exit 1)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on 'unclear' too: a change beyond the band whose 95%% interval still includes no "
        "change (the nightly examples use it; without it 'unclear' is listed and passes)",
    )


def _modelled_option(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument(
        "--modelled-time",
        action="store_true",
        help=f"convert simulated runs to modelled time in {where}: durations and latencies / time scale, "
        "rates x time scale (default: as measured, wall-clock, tagged 'sim <scale>x')",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (SchemaError, SloError, GateInputError, MixedRunsError, InvalidLevelsError, InputError) as exc:
        print(f"reports {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours, and no traceback for it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1 if args.command == "gate" else 0
    return code
