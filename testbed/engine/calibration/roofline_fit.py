"""The roofline's constants (seven per GPU, `hardware.GpuSpec`) fitted to a set of anchors.

Least squares on log error, from the GPU's datasheet (not from the constants in hardware.py); linear and
attention constants are fitted apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from testbed.engine.calibration.anchors import Anchor, predict, roofline_of
from testbed.engine.hardware import GpuSpec

LINEAR_PARAMS = ("gemm_bytes_per_s", "gemm_bf16_flops", "kernel_overhead_s", "gemm_blend_p")
ATTENTION_PARAMS = ("attn_floor_s", "attn_bytes_per_s", "attn_blend_p")


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
