"""How often the gate fails a night with no change, and a night with a real 10% throughput drop: the
figures in reports/README.md, "The gate's statistics".

Each night draws fresh synthetic sweeps (tests/reports/conftest.py: 5 load levels, 12 gated metrics,
throughput varying 2.5% between runs, p99s 5%) for the baseline and the candidate, and gates them with the
default tolerances and k = 3, once as given and once with --strict.

    .nox/tests/bin/python tests/reports/simulate_gate_nights.py --nights 200 --shapes 5x5,5x3,5x1,3x3,2x2,1x1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from conftest import synthetic_result
from reports.gate import gate


def night(n: int, n_base: int, n_cand: int, factor: float, strict: bool) -> tuple[bool, bool]:
    """(failed, the throughput check was unclear at some level) for night ``n``."""
    baseline = [synthetic_result(100_000 * n + i) for i in range(n_base)]
    candidate = [synthetic_result(100_000 * n + 50_000 + i, throughput_factor=factor) for i in range(n_cand)]
    report = gate(baseline, candidate, strict=True) if strict else gate(baseline, candidate)
    unclear = any(c.metric == "output_tokens_per_s" and c.verdict == "unclear" for c in report.checks)
    return not report.passed, unclear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=200)
    parser.add_argument(
        "--shapes", default="5x5,5x3,5x1,3x3,2x2,1x1", help="BASExCANDIDATE runs, comma-separated"
    )
    parser.add_argument(
        "--no-strict", action="store_true", help="the default rule only (a gate without --strict)"
    )
    args = parser.parse_args()
    print(
        "| baseline x candidate | rule | nights failed, no change | nights failed, 10% drop | drop `unclear` somewhere |"
    )
    print("| --- | --- | ---: | ---: | ---: |")
    for shape in args.shapes.split(","):
        n_base, n_cand = (int(x) for x in shape.split("x"))
        for strict in (False,) if args.no_strict else (False, True):
            same = [night(n, n_base, n_cand, 1.0, strict)[0] for n in range(args.nights)]
            drop = [night(n, n_base, n_cand, 0.9, strict) for n in range(args.nights)]
            print(
                f"| {n_base} x {n_cand} | {'--strict' if strict else 'default'} "
                f"| {sum(same) / args.nights:.1%} | {sum(f for f, _ in drop) / args.nights:.1%} "
                f"| {sum(u for _, u in drop) / args.nights:.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
