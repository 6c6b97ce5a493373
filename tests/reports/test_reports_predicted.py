"""The predicted-beside-measured table: measured, predicted, how far apart, and the model's version and
calibration error; a simulated run compared in modelled time."""

from __future__ import annotations

from reports.predicted_table import predicted_table
from reports.schema import (
    Distribution,
    LevelMetrics,
    LevelResult,
    LoadSpec,
    Predicted,
    PredictionBasis,
    RequestCounts,
    Result,
    RunMetadata,
    Throughput,
)

BASIS = PredictionBasis(
    model_version="perf-model-0123456789ab",
    model="meta-llama/Llama-3.1-8B-Instruct",
    gpu="H100",
    interconnect="infiniband",
    assumed=["interconnect infiniband"],
    tensor_parallel_size=8,
    pipeline_parallel_size=2,
    gpus_per_node=8,
    vllm_profile="0.10.1",
    calibration_scenario="h100-held-out-shards",
    calibration_error_median_pct=3.37,
    calibration_error_p90_pct=8.95,
    calibration_error_max_pct=35.6,
)


def result(run: RunMetadata, ttft: float) -> Result:
    level = LevelResult(
        load=LoadSpec(concurrency=8),
        metrics=LevelMetrics(
            ttft_ms=Distribution(p50=ttft, count=1),
            tpot_ms=Distribution(p50=6.0, count=1),
            itl_ms=Distribution(),
            e2el_ms=Distribution(),
            requests=RequestCounts(sent=1, completed=1, failed=0),
            throughput=Throughput(output_tokens_per_s=1000.0),
        ),
        predicted=Predicted(ttft_p50_ms=40.0, tpot_p50_ms=5.0, output_tokens_per_s=1250.0),
    )
    return Result(run=run, results=[level], prediction=BASIS)


def test_measured_predicted_and_how_far_apart() -> None:
    table = predicted_table(result(RunMetadata(engine="vllm"), ttft=50.0))
    assert table is not None
    assert table.rows == [
        ["c=8", "50.0", "40.0", "+25.0%", "6.00", "5.00", "+20.0%", "1,000", "1,250", "-20.0%"]
    ]
    notes = " ".join(table.notes)
    assert "perf-model-0123456789ab" in notes and "median 3.4%, p90 8.9%, max 35.6%" in notes
    assert "assumed (the run does not record it): interconnect infiniband" in notes


def test_a_simulated_run_is_compared_in_modelled_time() -> None:
    sim = RunMetadata(engine="sim", testbed=True, sim_time_scale=0.2)
    table = predicted_table(result(sim, ttft=8.0))  # 8 ms wall at time scale 0.2 = 40 ms modelled
    assert table is not None
    assert table.rows[0][1:4] == ["40.0", "40.0", "+0.0%"]
    assert any("time scale 0.2" in note for note in table.notes)


def test_no_prediction_no_table() -> None:
    plain = result(RunMetadata(), ttft=50.0).model_copy(update={"prediction": None})
    assert predicted_table(plain) is None
