"""Benchmark: a load sweep against each deployed topology, one result file per topology, then a comparison
report across them (and a regression gate when --baseline is given: see suite/benchmark/report_plugin.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from fixtures import run_metadata
from fixtures.run_state import RunState
from fixtures.settings import Settings
from load.config import Level, RandomWorkload, SweepConfig
from load.level_runner import Progress
from load.repeat_run import run_repeats
from load.server_metrics import ClientCounts, ServerDelta, reconcile
from reports.schema import RunMetadata
from suite.benchmark.conftest import BenchTarget
from suite.benchmark.predicted import with_prediction

RESULT_GLOB = "benchmark-*.json"


def test_sweep_serves_every_request_and_writes_a_result(
    topology: str, bench_target: BenchTarget, settings: Settings, run_state: RunState, progress: Any
) -> None:
    """Every request of every level completes (a failed request is counted, never lost), and the level's
    metrics land in <artifacts>/<run-id>/benchmark-<topology>.json in the suite's result schema."""
    config = SweepConfig(
        endpoint=bench_target.url,
        model=bench_target.model,
        workload=RandomWorkload(input_len=settings.input_len, output_len=settings.output_len),
        levels=tuple(Level(num_requests=settings.num_requests, concurrency=c) for c in settings.concurrency),
        label=topology,
        seed=0,
    )
    started_at = run_metadata.now()

    def report(p: Progress) -> None:
        if p.sent == p.planned and p.completed + p.failed == p.planned:
            progress(
                f"{topology}: level {p.level}/{p.levels} ({p.description}) done: {p.completed} completed, "
                f"{p.failed} failed in {p.elapsed_s:.1f} s"
            )

    sweep = asyncio.run(run_repeats(config, settings.repeats, progress=report))  # --repeats N: folded
    meta = {
        **bench_target.metadata,
        "label": topology,
        "topology": bench_target.metadata.get("topology") or topology,
    }
    result = sweep.result.model_copy(
        update={
            "run": RunMetadata(
                **meta,
                suite_revision=run_metadata.suite_revision(),
                started_at=started_at,
                finished_at=run_metadata.now(),
            )
        }
    )
    result, no_prediction = with_prediction(result)
    if no_prediction is not None:
        progress(f"{topology}: no prediction beside the measurement: {no_prediction}")
    path = settings.artifacts / run_state.run_id / f"benchmark-{topology}.json"
    result.write(path)
    progress(f"{topology}: result written to {path}")
    assert not sweep.interrupted
    for level in result.results:
        requests = level.metrics.requests
        # The client's counts against the server's own counters around the level (independent accounting),
        # repeat by repeat:
        for metrics in level.repeats or [level.metrics]:
            disagreements = reconcile(
                ClientCounts.from_level(metrics), ServerDelta.from_mapping(metrics.server_metrics_delta)
            )
            assert not disagreements, f"{topology} {level.load}: client and server disagree: {disagreements}"
        assert requests.failed == 0, (
            f"{topology} {level.load}: {requests.failed} failed: {requests.errors_by_reason}"
        )
        assert level.metrics.throughput.output_tokens_per_s, (
            f"{topology}: no output-token throughput measured"
        )
