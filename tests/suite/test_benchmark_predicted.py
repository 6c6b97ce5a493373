"""Predicted beside measured: a benchmark result gets the engine model's prediction for its own topology,
GPU and load, with what was assumed; what cannot be predicted says why."""

from __future__ import annotations

from fixtures.prediction import LoadPoint, RunShape, predict_run
from reports.markdown import render_markdown
from reports.schema import (
    Distribution,
    LevelMetrics,
    LevelResult,
    LoadSpec,
    RequestCounts,
    Result,
    RunMetadata,
    Throughput,
)
from suite.benchmark.predicted import with_prediction

MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def level(concurrency: int, ttft: float, tpot: float, tokens_per_s: float, **load: object) -> LevelResult:
    return LevelResult(
        load=LoadSpec(concurrency=concurrency, num_requests=32, input_len=256, output_len=64, **load),  # type: ignore[arg-type]
        metrics=LevelMetrics(
            ttft_ms=Distribution(p50=ttft, count=32),
            tpot_ms=Distribution(p50=tpot, count=32),
            itl_ms=Distribution(p50=tpot, count=32),
            e2el_ms=Distribution(p50=ttft + 63 * tpot, count=32),
            requests=RequestCounts(sent=32, completed=32, failed=0),
            throughput=Throughput(output_tokens_per_s=tokens_per_s),
        ),
    )


def run(**meta: object) -> Result:
    fields = {"model": MODEL, "tensor_parallel_size": 4, "pipeline_parallel_size": 2, "gpus": 8, "nodes": 1}
    return Result(
        run=RunMetadata(**{**fields, **meta}), results=[level(1, 40, 20, 45), level(16, 90, 25, 600)]
    )  # type: ignore[arg-type]


def test_a_run_on_known_hardware_gets_a_prediction_per_level() -> None:
    result, reason = with_prediction(run(gpu_product="NVIDIA-H100-80GB-HBM3", vllm_version="0.10.1"))
    assert reason is None and result.prediction is not None
    basis = result.prediction
    assert (basis.gpu, basis.tensor_parallel_size, basis.pipeline_parallel_size, basis.gpus_per_node) == (
        "H100",
        4,
        2,
        8,
    )
    assert basis.assumed == ["interconnect infiniband"]
    assert (
        basis.model_version.startswith("perf-model-") and basis.calibration_scenario == "h100-held-out-shards"
    )
    light, heavy = (lv.predicted for lv in result.results)
    assert light is not None and heavy is not None
    assert heavy.output_tokens_per_s is not None and light.output_tokens_per_s is not None
    assert heavy.output_tokens_per_s > light.output_tokens_per_s
    text = render_markdown([result], ["run"])
    assert "Predicted beside measured" in text and basis.model_version in text and "median 3." in text


def test_the_testbed_assumes_the_simulators_gpu_and_says_so() -> None:
    outcome = predict_run(RunShape(MODEL, 8, 1, testbed=True), [LoadPoint(4, 64, 16, concurrency=1)])
    assert outcome.prediction is not None and outcome.prediction.gpu == "H100"
    assert "GPU H100 (the simulator's default)" in outcome.assumed and "8 GPUs per node" in outcome.assumed


def test_no_prediction_without_the_gpu_or_for_an_unknown_model() -> None:
    result, reason = with_prediction(run())
    assert result.prediction is None and all(lv.predicted is None for lv in result.results)
    assert reason is not None and "which GPU" in reason
    result, reason = with_prediction(run(model="acme/unknown", gpu_product="H100"))
    assert result.prediction is None and reason is not None and "unknown model" in reason


def test_a_level_the_model_cannot_price_keeps_no_prediction() -> None:
    base = run(gpu_product="H100")
    ramp = level(8, 50, 20, 300, request_rate=1.0, request_rate_end=5.0)
    result, _ = with_prediction(base.model_copy(update={"results": [*base.results, ramp]}))
    assert [lv.predicted is not None for lv in result.results] == [True, True, False]


def test_a_run_served_on_cpu_gets_no_gpu_prediction() -> None:
    cpu = run(testbed=True, engine="vllm-cpu")
    result, reason = with_prediction(cpu)
    assert result.prediction is None and reason is not None and "on CPU" in reason
