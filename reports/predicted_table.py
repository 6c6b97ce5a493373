"""Predicted beside measured: each level's figures next to what the engine model says the run's hardware
allows (``Result.prediction``, ``LevelResult.predicted``), and how far the run is from it.

A simulated run is compared in modelled time (its figures converted by its time scale), as the prediction is.
"""

from __future__ import annotations

from reports.levels import level_labels
from reports.provenance import in_modelled_time, modelled_scale
from reports.schema import Result
from reports.tables import Table
from reports.text import MISSING, num, pct


def _vs(measured: float | None, predicted: float | None) -> str:
    """measured / predicted - 1, signed: +25% = 25% slower (latency) or more (throughput) than predicted."""
    if measured is None or predicted is None or predicted == 0:
        return MISSING
    return pct(measured / predicted - 1, signed=True)


def predicted_table(result: Result) -> Table | None:
    basis = result.prediction
    levels = [lv for lv in result.results if lv.predicted is not None]
    if basis is None or not levels:
        return None
    measured = in_modelled_time(result)
    by_index = {id(lv): m for lv, m in zip(result.results, measured.results, strict=True)}
    labels = level_labels([lv.load for lv in levels])
    rows = []
    for label, level in zip(labels, levels, strict=True):
        m, p = by_index[id(level)].metrics, level.predicted
        assert p is not None
        rows.append(
            [
                label,
                num(m.ttft_ms.p50),
                num(p.ttft_p50_ms),
                _vs(m.ttft_ms.p50, p.ttft_p50_ms),
                num(m.tpot_ms.p50),
                num(p.tpot_p50_ms),
                _vs(m.tpot_ms.p50, p.tpot_p50_ms),
                num(m.throughput.output_tokens_per_s),
                num(p.output_tokens_per_s),
                _vs(m.throughput.output_tokens_per_s, p.output_tokens_per_s),
            ]
        )
    scale = modelled_scale(result.run)
    notes = [
        f"predicted by {basis.model_version} for {basis.model} TP x PP {basis.tensor_parallel_size} x "
        f"{basis.pipeline_parallel_size} on {basis.gpu} ({basis.gpus_per_node} per node), {basis.interconnect} "
        f"between nodes, vLLM {basis.vllm_profile} defaults",
        f"calibration error ({basis.calibration_scenario}, docs/calibration.md): median "
        f"{basis.calibration_error_median_pct:.1f}%, p90 {basis.calibration_error_p90_pct:.1f}%, max "
        f"{basis.calibration_error_max_pct:.1f}% per kernel; the host and scheduling model adds its own",
        "vs: measured / predicted - 1 (latency: + is slower than the hardware allows; throughput: - is less)",
    ]
    if basis.assumed:
        notes.append("assumed (the run does not record it): " + ", ".join(basis.assumed))
    if scale is not None:
        notes.append(f"measured figures in modelled time (the simulator ran at time scale {scale:g})")
    return Table(
        "Predicted beside measured",
        [
            "level",
            "TTFT p50 ms",
            "predicted",
            "vs",
            "TPOT p50 ms",
            "predicted",
            "vs",
            "output tok/s",
            "predicted",
            "vs",
        ],
        rows,
        [False] + [True] * 9,
        notes,
    )
