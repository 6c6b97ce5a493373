"""What one transformer block costs on one GPU of a tensor-parallel group.

Linear layers (qkv, o, gate_up, down), each a GEMM of `tokens` rows against a weight of W bytes and
P = W / bytes_per_param parameters, on a GPU with effective weight-streaming bandwidth B, compute rate F
and per-kernel cost c:

    memory bound   m = W / B                    (decode: every step streams the whole shard)
    compute bound  f = 2 * tokens * P / F       (prefill: FLOPs grow with the tokens in the step)
    t_kernel       = c + (m^p + f^p)^(1/p)      (a smooth max; p fitted, 6 on H100)
    t_linear(T)    = sum over the four kernels

FP8 checkpoints halve W and run at `fp8_compute_factor` x F.

Decode attention reads the KV cache of every running sequence once per layer:

    t_attn = (floor^q + (kv_bytes / B_kv)^q)^(1/q)

Prefill attention is compute bound: 4 * head_dim * q_heads_per_gpu * sum(chunk * (context + chunk/2))
FLOPs at 70% of the GEMM rate (FlashAttention reaches 50-75% of dense GEMM peak on Hopper), plus the floor.

Calibration: where the calibration file measured this (model, TP) shard on this GPU, the model multiplies
the roofline by the measured/roofline ratio, interpolated over log(tokens) (linear) or log(KV bytes)
(attention) and held constant beyond the measured range. The simulator therefore reproduces every
measured point exactly, which validates nothing; the roofline alone (`roofline_linear_s`, and a GpuSpec
without calibration file) is what `calibration/` fits on some anchors and validates on others, e.g.
H200 predicted from H100 (docs/calibration.md). The correction also carries measured quirks (e.g. 8B TP1
at 64 tokens, 63% above its neighbours in the H100 file) and does not transfer between GPUs.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from testbed.engine.calibration.measurements import GpuCalibration, ShardMeasurement, load_calibration
from testbed.engine.hardware import GpuSpec
from testbed.engine.model_specs import ModelSpec

PREFILL_ATTENTION_EFFICIENCY = 0.7


@dataclass(frozen=True)
class _RatioCurve:
    """Piecewise-linear ratio over log(x), constant outside the measured range."""

    log_x: tuple[float, ...]
    ratio: tuple[float, ...]

    def at(self, x: float) -> float:
        lx = math.log(max(x, 1e-30))
        i = bisect.bisect_left(self.log_x, lx)
        if i <= 0:
            return self.ratio[0]
        if i >= len(self.log_x):
            return self.ratio[-1]
        x0, x1 = self.log_x[i - 1], self.log_x[i]
        w = (lx - x0) / (x1 - x0)
        return self.ratio[i - 1] * (1 - w) + self.ratio[i] * w


def _curve(points: list[tuple[float, float]]) -> _RatioCurve:
    merged: dict[float, list[float]] = {}
    for x, r in points:
        merged.setdefault(math.log(x), []).append(r)
    keys = sorted(merged)
    return _RatioCurve(tuple(keys), tuple(sum(merged[k]) / len(merged[k]) for k in keys))


class ShardCosts:
    """Per-block costs of `model` on one `gpu` of a `tp`-way group (see module docstring)."""

    def __init__(self, gpu: GpuSpec, model: ModelSpec, tp: int) -> None:
        self.gpu = gpu
        self.model = model
        self.tp = tp
        bytes_per_param = model.weight_bytes_per_param
        self._flops = gpu.gemm_bf16_flops * (gpu.fp8_compute_factor if model.is_fp8 else 1.0)
        # (memory-bound seconds, compute seconds per token) for each kernel
        self._kernels = [
            (i * o * bytes_per_param / gpu.gemm_bytes_per_s, 2 * i * o / self._flops)
            for i, o in model.block_linears(tp).values()
        ]
        self.block_weight_bytes = sum(i * o for i, o in model.block_linears(tp).values()) * bytes_per_param
        self._lm_head = (
            model.lm_head_bytes(tp) / gpu.gemm_bytes_per_s,
            2 * model.lm_head_bytes(tp) / 2 / gpu.gemm_bf16_flops,
        )
        self.kv_bytes_per_token = model.kv_bytes_per_token_per_layer(tp)
        self._q_heads_per_gpu = model.q_heads / tp
        self.measurement = self._measured_shard()
        self._linear_curve: _RatioCurve | None = None
        self._attn_curve: _RatioCurve | None = None
        if self.measurement is not None:
            m = self.measurement
            self._linear_curve = _curve(
                [(p.tokens, p.block_linear_s / self.roofline_linear_s(p.tokens)) for p in m.linear]
            )
            self._attn_curve = _curve(
                [
                    (p.kv_bytes, p.decode_attention_s / self.roofline_decode_attention_s(p.kv_bytes))
                    for p in m.attention
                ]
            )

    def _measured_shard(self) -> ShardMeasurement | None:
        """Only BF16 shards were measured; an FP8 checkpoint runs different kernels, so it stays on the roofline."""
        if self.gpu.calibration_file is None or self.model.is_fp8:
            return None
        calibration: GpuCalibration = load_calibration(self.gpu.calibration_file)
        return calibration.shard(self.model.calibration_key, self.tp)

    @property
    def calibrated(self) -> bool:
        return self.measurement is not None

    def _gemm(self, mem_s: float, flop_s_per_token: float, tokens: float) -> float:
        p = self.gpu.gemm_blend_p
        comp = flop_s_per_token * tokens
        return self.gpu.kernel_overhead_s + (mem_s**p + comp**p) ** (1.0 / p)

    def roofline_linear_s(self, tokens: float) -> float:
        return sum(self._gemm(mem, per_tok, tokens) for mem, per_tok in self._kernels)

    def linear_s(self, tokens: float) -> float:
        """Seconds for the four linear layers of one block with `tokens` rows in the step."""
        if tokens <= 0:
            return 0.0
        base = self.roofline_linear_s(tokens)
        return base * self._linear_curve.at(tokens) if self._linear_curve is not None else base

    def roofline_decode_attention_s(self, kv_bytes: float) -> float:
        q = self.gpu.attn_blend_p
        return (self.gpu.attn_floor_s**q + (kv_bytes / self.gpu.attn_bytes_per_s) ** q) ** (1.0 / q)

    def decode_attention_s(self, kv_bytes: float) -> float:
        """Seconds of decode attention for one block reading `kv_bytes` of KV cache on this GPU."""
        base = self.roofline_decode_attention_s(kv_bytes)
        return base * self._attn_curve.at(kv_bytes) if self._attn_curve is not None else base

    def decode_attention_for(self, batch: int, context_tokens: float) -> float:
        """Decode attention for `batch` sequences holding `context_tokens` tokens in total."""
        if batch <= 0:
            return 0.0
        return self.decode_attention_s(context_tokens * self.kv_bytes_per_token)

    def prefill_attention_s(self, weighted_tokens: float) -> float:
        """`weighted_tokens` = sum over prefill chunks of chunk * (context before + chunk / 2)."""
        if weighted_tokens <= 0:
            return 0.0
        flops = 4.0 * self.model.head_dim * self._q_heads_per_gpu * weighted_tokens
        return self.gpu.attn_floor_s + flops / (self.gpu.gemm_bf16_flops * PREFILL_ATTENTION_EFFICIENCY)

    def lm_head_s(self, sequences: int) -> float:
        """The vocabulary projection for the last token of each sequence sampled this step."""
        if sequences <= 0:
            return 0.0
        mem, per_tok = self._lm_head
        return self._gemm(mem, per_tok, sequences)
