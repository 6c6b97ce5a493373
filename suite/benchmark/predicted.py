"""Predicted beside measured: the engine model's prediction for a benchmark result's topology, GPU and load
(``fixtures.prediction``), stored in the result (``Result.prediction``, ``LevelResult.predicted``)."""

from __future__ import annotations

from fixtures.prediction import LoadPoint, RunShape, predict_run
from reports.schema import LevelResult, Predicted, PredictionBasis, Result


def load_point(level: LevelResult) -> LoadPoint | None:
    """The level's load, when the engine model can price it (fixed lengths and a request count)."""
    load = level.load
    if load.input_len is None or load.output_len is None or not load.num_requests:
        return None
    if load.request_rate_end is not None or (load.burstiness not in (None, 1.0)):
        return None  # a ramp or a non-Poisson arrival: the engine model sends Poisson or closed loop only
    return LoadPoint(load.num_requests, load.input_len, load.output_len, load.concurrency, load.request_rate)


def with_prediction(result: Result) -> tuple[Result, str | None]:
    """The result with the prediction beside every level it can price; the reason when there is none."""
    run = result.run
    shape = RunShape(
        model=run.model,
        tensor_parallel_size=run.tensor_parallel_size,
        pipeline_parallel_size=run.pipeline_parallel_size,
        gpu_product=run.gpu_product,
        gpus=run.gpus,
        nodes=run.nodes,
        vllm_version=run.vllm_version,
        testbed=run.testbed,
        engine=run.engine,
    )
    points = [load_point(level) for level in result.results]
    priced = [p for p in points if p is not None]
    if not priced:
        return (
            result,
            "no level has a load the engine model can price (fixed lengths, closed loop or Poisson)",
        )
    outcome = predict_run(shape, priced)
    p = outcome.prediction
    if p is None:
        return result, outcome.reason
    basis = PredictionBasis(
        model_version=p.model_version,
        model=p.model,
        gpu=p.gpu,
        interconnect=p.interconnect,
        assumed=outcome.assumed,
        tensor_parallel_size=p.tp,
        pipeline_parallel_size=p.pp,
        gpus_per_node=p.gpus_per_node,
        vllm_profile=p.vllm_profile,
        calibration_scenario=p.calibration.scenario,
        calibration_error_median_pct=p.calibration.median_pct,
        calibration_error_p90_pct=p.calibration.p90_pct,
        calibration_error_max_pct=p.calibration.max_pct,
    )
    predicted = iter(p.points)
    levels = []
    for level, point in zip(result.results, points, strict=True):
        if point is None:
            levels.append(level)
            continue
        x = next(predicted)
        levels.append(
            level.model_copy(
                update={
                    "predicted": Predicted(
                        ttft_p50_ms=x.ttft_p50_ms,
                        tpot_p50_ms=x.tpot_p50_ms,
                        itl_p50_ms=x.itl_p50_ms,
                        e2el_p50_ms=x.e2el_p50_ms,
                        output_tokens_per_s=x.output_tokens_per_s,
                        requests_per_s=x.requests_per_s,
                    )
                }
            )
        )
    return result.model_copy(update={"results": levels, "prediction": basis}), None
