"""The calibration error as markdown, and `python -m testbed.engine.calibration` that prints it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from testbed.engine.calibration.anchors import anchors
from testbed.engine.calibration.roofline_fit import fit_roofline
from testbed.engine.calibration.validation import Validation, scenarios, validate
from testbed.engine.hardware import GpuSpec


def _constants(gpu: GpuSpec) -> str:
    return (
        f"GEMM {gpu.gemm_bytes_per_s / 1e12:.3f} TB/s, {gpu.gemm_bf16_flops / 1e12:.0f} TFLOP/s, "
        f"kernel {gpu.kernel_overhead_s * 1e6:.2f} us, p {gpu.gemm_blend_p:.2f}; attention floor "
        f"{gpu.attn_floor_s * 1e6:.2f} us, {gpu.attn_bytes_per_s / 1e12:.3f} TB/s, q {gpu.attn_blend_p:.2f}"
    )


def _summary_rows(v: Validation) -> list[str]:
    rows = []
    for kind in ("linear", "attention", None):
        s = v.summary(kind)
        rows.append(
            f"| {v.scenario.name} | {kind or 'all'} | {s.count} | {s.median:.1%} | {s.p90:.1%} | {s.max:.1%} |"
        )
    return rows


SUMMARY_HEADER = (
    "| scenario | anchors | count | median abs error | p90 | max |",
    "| --- | --- | --- | --- | --- | --- |",
)


def report(validations: Sequence[Validation], per_point: bool = True) -> str:
    """Markdown: per scenario, the fitted constants and every validation anchor; then all summaries."""
    out: list[str] = []
    for v in validations:
        out.append(f"### {v.scenario.name}\n\n{v.scenario.description}.\n")
        for fold, model in zip(v.scenario.folds, v.models, strict=True):
            fit = fold.fit_anchors()
            out.append(
                f"- fitted on {len(fit)} {fold.fit_gpu.name} anchors ({', '.join(fold.fit_shards)}), "
                f"as used on {fold.target_gpu.name}: {_constants(model)}"
            )
        out.append("")
        if per_point:
            out += [
                "| shard | anchor | measured us | predicted us | error |",
                "| --- | --- | --- | --- | --- |",
            ]
            for p in v.points:
                a = p.anchor
                out.append(
                    f"| {a.shard} | {a.kind} {a.point} | {a.measured_s * 1e6:.1f} | "
                    f"{p.predicted_s * 1e6:.1f} | {p.error:+.1%} |"
                )
            out.append("")
        out += [*SUMMARY_HEADER, *_summary_rows(v), ""]
    out += ["### Summary", "", *SUMMARY_HEADER]
    for v in validations:
        out += _summary_rows(v)
    return "\n".join(out) + "\n"


def shipped_versus_fitted() -> str:
    """hardware.py's constants for each measured GPU beside the fit on all of that GPU's anchors."""
    from testbed.engine.hardware import H100, H200

    out = ["### Constants in hardware.py and the fit on every anchor of the GPU's own file", ""]
    for gpu in (H100, H200):
        fitted = fit_roofline(gpu, anchors(gpu))
        out.append(f"- {gpu.name} shipped: {_constants(gpu)}")
        out.append(f"- {gpu.name} fitted:  {_constants(fitted)}")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.engine.calibration",
        description="Fit the roofline on some calibration anchors and print its error on the others.",
    )
    names = [s.name for s in scenarios()]
    parser.add_argument("--scenario", action="append", choices=names, help="only these (default: all)")
    parser.add_argument("--summary", action="store_true", help="summaries only, no per-anchor rows")
    args = parser.parse_args(argv)
    chosen = [s for s in scenarios() if not args.scenario or s.name in args.scenario]
    print(report([validate(s) for s in chosen], per_point=not args.summary), end="")
    if not args.scenario:
        print("\n" + shipped_versus_fitted(), end="")
    return 0
