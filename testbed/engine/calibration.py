"""Measured per-block costs of one GPU shard, loaded from the calibration files shipped with the package,
and the honest check of the cost model against them (`python -m testbed.engine.calibration`).

`data/h100_calibration.json` and `data/h200_calibration.json` were measured on
one GPU with CUDA events (docs/sources.md says how). A shard is one transformer block as one GPU of an
N-way TP group holds it, keyed "<model>/tp<N>", e.g. "llama-3.1-405b/tp8".

The second half of the module splits those measurements into anchors that fit the roofline and anchors
that validate it, never the same anchor for both, and reports the prediction error on every validation
anchor (docs/calibration.md has the tables and the bounds the tests hold the model to).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from testbed.engine.hardware import GpuSpec, carry_roofline
from testbed.engine.model_specs import MODELS, ModelSpec


@dataclass(frozen=True)
class LinearPoint:
    tokens: int
    qkv_s: float
    o_s: float
    gate_up_s: float
    down_s: float
    block_linear_s: float


@dataclass(frozen=True)
class AttentionPoint:
    batch: int
    context: int
    decode_attention_s: float
    kv_bytes: int


@dataclass(frozen=True)
class ShardMeasurement:
    key: str  # "llama-3.1-405b/tp8"
    model_key: str  # "llama-3.1-405b"
    tp: int
    block_weight_bytes: int
    linear: tuple[LinearPoint, ...]
    attention: tuple[AttentionPoint, ...]


@dataclass(frozen=True)
class GpuCalibration:
    device: str
    copy_bytes_per_s: float
    gemm_8192_flops_per_s: float
    shards: dict[str, ShardMeasurement]

    def shard(self, model_key: str | None, tp: int) -> ShardMeasurement | None:
        """The measured shard, or None when this (model, TP) was not measured."""
        if model_key is None:
            return None
        return self.shards.get(f"{model_key}/tp{tp}")


@cache
def load_calibration(filename: str) -> GpuCalibration:
    """Parse one calibration file from the package data folder (cached: the files are read-only)."""
    text = resources.files("testbed.engine").joinpath("data").joinpath(filename).read_text(encoding="utf-8")
    raw = json.loads(text)
    shards: dict[str, ShardMeasurement] = {}
    for key, shard in raw["shards"].items():
        model_key, _, tp_text = key.partition("/tp")
        shards[key] = ShardMeasurement(
            key=key,
            model_key=model_key,
            tp=int(tp_text),
            block_weight_bytes=int(shard["block_weight_bytes"]),
            linear=tuple(LinearPoint(**point) for point in shard["linear"]),
            attention=tuple(AttentionPoint(**point) for point in shard["attention"]),
        )
    return GpuCalibration(
        device=raw["device"],
        copy_bytes_per_s=float(raw["copy_bytes_per_s"]),
        gemm_8192_flops_per_s=float(raw["gemm_8192_flops_per_s"]),
        shards=shards,
    )


# --- honest calibration: fit on some anchors, predict the others -----------------------------------------
#
# An anchor is one measured number of a calibration file: a shard's four linear layers at `tokens` rows, or
# its decode attention over `batch` sequences of `context` tokens. The simulator's per-shard correction
# (`shard_costs.py`) reproduces every anchor of its own file by construction, so comparing the simulator
# with those anchors says nothing. What can be checked is the model underneath: the roofline (seven
# constants per GPU, `hardware.GpuSpec`), fitted on one set of anchors and asked to predict another set it
# never saw. Each scenario below keeps the two sets disjoint (`Fold.__post_init__` refuses otherwise):
# - `h200-from-h100` / `h100-from-h200`: fitted on every anchor of one GPU's file, carried to the other GPU
#   by datasheet ratios (`hardware.carry_roofline`, the rule an unmeasured GPU such as A100 relies on),
#   checked against every anchor of the other file;
# - `h100-held-out-shards` / `h200-held-out-shards`: two folds on one GPU; the roofline fitted on three
#   shards predicts the other three (a (model, TP) the simulator has no measurement of, e.g. 70B TP2).
# `python -m testbed.engine.calibration` prints every validation anchor's error and the summaries.

LINEAR_PARAMS = ("gemm_bytes_per_s", "gemm_bf16_flops", "kernel_overhead_s", "gemm_blend_p")
ATTENTION_PARAMS = ("attn_floor_s", "attn_bytes_per_s", "attn_blend_p")
FOLD_A = ("llama-3.1-8b/tp1", "llama-3.1-70b/tp4", "llama-3.1-405b/tp8")
FOLD_B = ("llama-3.1-8b/tp2", "llama-3.1-70b/tp8", "llama-3.1-405b/tp16")


@dataclass(frozen=True)
class Anchor:
    """One measured number of a calibration file."""

    device: str  # GpuSpec.name: "H100"
    shard: str  # "llama-3.1-405b/tp8"
    kind: str  # "linear" | "attention"
    tokens: int  # linear: rows in the step; attention: decode batch
    context: int  # attention: tokens per sequence; 0 for linear
    measured_s: float

    @property
    def point(self) -> str:
        if self.kind == "linear":
            return f"tokens={self.tokens}"
        return f"batch={self.tokens} ctx={self.context}"


def _model_for(calibration_key: str) -> ModelSpec:
    for spec in MODELS.values():
        if spec.calibration_key == calibration_key and not spec.is_fp8:
            return spec
    raise KeyError(f"no BF16 model has calibration key {calibration_key!r}")


def anchors(gpu: GpuSpec, shards: Iterable[str] | None = None) -> tuple[Anchor, ...]:
    """Every anchor of `gpu`'s calibration file, or of `shards` only (shards in key order, points in
    file order)."""
    if gpu.calibration_file is None:
        raise ValueError(f"{gpu.name} has no calibration file")
    cal = load_calibration(gpu.calibration_file)
    keys = sorted(cal.shards) if shards is None else list(shards)
    out: list[Anchor] = []
    for key in keys:
        s = cal.shards[key]
        out += [Anchor(gpu.name, key, "linear", p.tokens, 0, p.block_linear_s) for p in s.linear]
        out += [
            Anchor(gpu.name, key, "attention", a.batch, a.context, a.decode_attention_s) for a in s.attention
        ]
    return tuple(out)


def roofline_of(gpu: GpuSpec) -> GpuSpec:
    """`gpu` without its calibration file: the plain roofline, no per-shard correction."""
    return replace(gpu, calibration_file=None)


def predict(model: GpuSpec, anchor: Anchor) -> float:
    """What `model` (a GpuSpec; give it no calibration file to test the roofline alone) says the anchor is."""
    from testbed.engine.shard_costs import ShardCosts  # shard_costs imports this module

    spec = _model_for(anchor.shard.partition("/tp")[0])
    costs = ShardCosts(model, spec, int(anchor.shard.partition("/tp")[2]))
    if anchor.kind == "linear":
        return costs.linear_s(anchor.tokens)
    return costs.decode_attention_for(anchor.tokens, anchor.tokens * anchor.context)


def _log_loss(model: GpuSpec, points: Sequence[Anchor]) -> float:
    return sum(math.log(predict(model, a) / a.measured_s) ** 2 for a in points)


def _nelder_mead(f: Callable[[list[float]], float], x0: list[float], step: float = 0.3) -> list[float]:
    """Minimise f from x0 (deterministic; enough for 3-4 parameters in log space)."""
    n = len(x0)
    simplex = [list(x0)] + [[x + (step if i == j else 0.0) for j, x in enumerate(x0)] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(2000):
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] < 1e-12:
            break
        centre = [sum(x[j] for x in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]

        def toward(t: float, worst: list[float] = worst, centre: list[float] = centre) -> list[float]:
            return [c + t * (c - w) for c, w in zip(centre, worst, strict=True)]

        reflected = toward(1.0)
        fr = f(reflected)
        if fr < values[0]:
            expanded = toward(2.0)
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = toward(-0.5)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (x - b) for b, x in zip(best, p, strict=True)] for p in simplex[1:]
                ]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    return simplex[min(range(n + 1), key=values.__getitem__)]


def _fit_params(
    start: GpuSpec, names: Sequence[str], x0: Sequence[float], points: Sequence[Anchor]
) -> GpuSpec:
    def model(logs: Sequence[float]) -> GpuSpec:
        values: dict[str, Any] = {k: math.exp(v) for k, v in zip(names, logs, strict=True)}
        return replace(start, **values)

    def loss(logs: list[float]) -> float:
        return _log_loss(model(logs), points)

    best = _nelder_mead(loss, [math.log(v) for v in x0])
    best = _nelder_mead(loss, best, step=0.05)  # restart: Nelder-Mead can stall on a flat ridge
    return model(best)


def fit_roofline(gpu: GpuSpec, points: Sequence[Anchor]) -> GpuSpec:
    """`gpu`'s roofline constants fitted to `points` (least squares on log error), starting from its
    datasheet, not from the constants in hardware.py. Linear and attention constants are fitted apart."""
    if any(a.device != gpu.name for a in points):
        raise ValueError(f"fitting {gpu.name} on another GPU's anchors")
    model = roofline_of(gpu)
    linear = [a for a in points if a.kind == "linear"]
    attention = [a for a in points if a.kind == "attention"]
    if linear:
        model = _fit_params(
            model,
            LINEAR_PARAMS,
            (0.8 * gpu.datasheet_hbm_bytes_per_s, 0.7 * gpu.datasheet_bf16_flops, 5e-6, 4.0),
            linear,
        )
    if attention:
        model = _fit_params(
            model, ATTENTION_PARAMS, (20e-6, 0.9 * gpu.datasheet_hbm_bytes_per_s, 2.0), attention
        )
    return model


@dataclass(frozen=True)
class Fold:
    """Fit on `fit_shards` of `fit_gpu`, carry to `target_gpu`, validate on its `validate_shards`."""

    fit_gpu: GpuSpec
    fit_shards: tuple[str, ...]
    target_gpu: GpuSpec
    validate_shards: tuple[str, ...]

    def __post_init__(self) -> None:
        overlap = set(self.fit_anchors()) & set(self.validate_anchors())
        if overlap:
            raise ValueError(f"anchors used both to fit and to validate: {sorted(a.point for a in overlap)}")

    def fit_anchors(self) -> tuple[Anchor, ...]:
        return anchors(self.fit_gpu, self.fit_shards)

    def validate_anchors(self) -> tuple[Anchor, ...]:
        return anchors(self.target_gpu, self.validate_shards)

    def fitted_model(self) -> GpuSpec:
        fitted = fit_roofline(self.fit_gpu, self.fit_anchors())
        return roofline_of(carry_roofline(fitted, self.target_gpu))


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    folds: tuple[Fold, ...]


def _all_shards(gpu: GpuSpec) -> tuple[str, ...]:
    return tuple(sorted(load_calibration(gpu.calibration_file or "").shards))


def scenarios() -> tuple[Scenario, ...]:
    from testbed.engine.hardware import H100, H200

    def held_out(gpu: GpuSpec) -> Scenario:
        return Scenario(
            f"{gpu.name.lower()}-held-out-shards",
            f"{gpu.name}, each half of the shards predicted by the roofline fitted on the other half",
            (Fold(gpu, FOLD_A, gpu, FOLD_B), Fold(gpu, FOLD_B, gpu, FOLD_A)),
        )

    return (
        Scenario(
            "h200-from-h100",
            "H200 predicted by the roofline fitted on every H100 anchor, carried over by datasheet ratios",
            (Fold(H100, _all_shards(H100), H200, _all_shards(H200)),),
        ),
        Scenario(
            "h100-from-h200",
            "H100 predicted by the roofline fitted on every H200 anchor, carried over by datasheet ratios",
            (Fold(H200, _all_shards(H200), H100, _all_shards(H100)),),
        ),
        held_out(H100),
        held_out(H200),
    )


@dataclass(frozen=True)
class PointError:
    anchor: Anchor
    predicted_s: float

    @property
    def error(self) -> float:
        """Relative error of the prediction, signed: +0.10 = predicted 10% slower than measured."""
        return self.predicted_s / self.anchor.measured_s - 1.0


@dataclass(frozen=True)
class Summary:
    count: int
    median: float  # of |relative error|
    p90: float  # nearest rank
    max: float

    @classmethod
    def of(cls, errors: Sequence[float]) -> Summary:
        a = sorted(abs(e) for e in errors)
        if not a:
            return cls(0, math.nan, math.nan, math.nan)
        return cls(len(a), statistics.median(a), a[math.ceil(0.9 * len(a)) - 1], a[-1])


@dataclass(frozen=True)
class Validation:
    scenario: Scenario
    models: tuple[GpuSpec, ...]  # one per fold
    points: tuple[PointError, ...]

    def summary(self, kind: str | None = None) -> Summary:
        return Summary.of([p.error for p in self.points if kind is None or p.anchor.kind == kind])


def evaluate(model: GpuSpec, points: Sequence[Anchor]) -> tuple[PointError, ...]:
    return tuple(PointError(a, predict(model, a)) for a in points)


def validate(scenario: Scenario, models: Sequence[GpuSpec] | None = None) -> Validation:
    """Fit each fold (or take `models`, one per fold, e.g. a deliberately wrong one) and predict its
    validation anchors."""
    fitted = tuple(models) if models is not None else tuple(f.fitted_model() for f in scenario.folds)
    if len(fitted) != len(scenario.folds):
        raise ValueError(f"{scenario.name} has {len(scenario.folds)} folds, got {len(fitted)} models")
    points: list[PointError] = []
    for fold, model in zip(scenario.folds, fitted, strict=True):
        points += evaluate(model, fold.validate_anchors())
    return Validation(scenario, fitted, tuple(points))


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


if __name__ == "__main__":
    # Run the imported module's main, so that the classes here are the ones shard_costs.py sees.
    from testbed.engine.calibration import main as _main

    sys.exit(_main())
