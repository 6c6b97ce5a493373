"""The honest calibration: the roofline fitted on some anchors, asked to predict others it never saw.

Each scenario keeps the two sets disjoint (`Fold.__post_init__` refuses otherwise):
- `h200-from-h100` / `h100-from-h200`: fitted on every anchor of one GPU's file, carried to the other GPU
  by datasheet ratios (`hardware.carry_roofline`, the rule an unmeasured GPU such as A100 relies on),
  checked against every anchor of the other file;
- `h100-held-out-shards` / `h200-held-out-shards`: two folds on one GPU; the roofline fitted on three
  shards predicts the other three (a (model, TP) the simulator has no measurement of, e.g. 70B TP2).
`python -m testbed.engine.calibration` prints every validation anchor's error and the summaries.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from testbed.engine.calibration.anchors import Anchor, anchors, predict, roofline_of
from testbed.engine.calibration.measurements import load_calibration
from testbed.engine.calibration.roofline_fit import fit_roofline
from testbed.engine.hardware import GpuSpec, carry_roofline

FOLD_A = ("llama-3.1-8b/tp1", "llama-3.1-70b/tp4", "llama-3.1-405b/tp8")
FOLD_B = ("llama-3.1-8b/tp2", "llama-3.1-70b/tp8", "llama-3.1-405b/tp16")


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
