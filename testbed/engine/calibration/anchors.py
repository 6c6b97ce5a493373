"""Anchors: each measured number of a calibration file, and what a cost model predicts for it.

An anchor is a shard's four linear layers at `tokens` rows, or its decode attention over `batch` sequences of
`context` tokens. The simulator's per-shard correction (`shard_costs.py`) reproduces every anchor of its own
file by construction, so comparing the simulator with those anchors says nothing; `predict` with a model
stripped of its calibration file (`roofline_of`) asks the roofline alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from testbed.engine.calibration.measurements import load_calibration
from testbed.engine.hardware import GpuSpec
from testbed.engine.model_specs import MODELS, ModelSpec
from testbed.engine.shard_costs import ShardCosts


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
    spec = _model_for(anchor.shard.partition("/tp")[0])
    costs = ShardCosts(model, spec, int(anchor.shard.partition("/tp")[2]))
    if anchor.kind == "linear":
        return costs.linear_s(anchor.tokens)
    return costs.decode_attention_for(anchor.tokens, anchor.tokens * anchor.context)
