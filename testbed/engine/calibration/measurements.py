"""Measured per-block costs of one GPU shard, loaded from the calibration files shipped with the package.

`data/h100_calibration.json` and `data/h200_calibration.json` were measured on one GPU with CUDA events
(docs/sources.md says how). A shard is one transformer block as one GPU of an N-way TP group holds it, keyed
"<model>/tp<N>", e.g. "llama-3.1-405b/tp8".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


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
