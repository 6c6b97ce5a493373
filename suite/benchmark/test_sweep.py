"""Benchmark: the load shapes of the run's config (fixtures/bench_config.py: --config and the flags over it)
against each deployed topology, one result file per topology (and workload), written again after every level
with its CSVs, then a comparison report across them (and a regression gate when --baseline is given: see
suite/benchmark/conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fixtures import bench_resume, run_metadata
from fixtures.bench_config import BenchmarkConfig, WorkloadSpec
from fixtures.bench_config_plugin import BENCH_CONFIG
from fixtures.bench_workloads import workload_of
from fixtures.run_state import RunState
from fixtures.settings import Settings
from load.config import Level, SweepConfig
from load.endpoint_probe import ModelNotServed
from load.input_check import workload_notes
from load.repeat_run import run_repeats
from load.server_metrics import ClientCounts, ServerDelta, reconcile
from load.workload import WorkloadError
from reports.schema import LevelResult, Result, RunMetadata
from suite.benchmark import level_files
from suite.benchmark.conftest import BenchTarget
from suite.benchmark.level_progress import LevelProgress
from suite.benchmark.predicted import with_prediction
from suite.benchmark.shapes import SaturationNotFound, run_stages

RESULT_GLOB = "benchmark-*.json"


class LevelInterrupted(RuntimeError):
    """The run was stopped during a level; the levels before it are written."""


@pytest.fixture(scope="session")
def bench_config(pytestconfig: pytest.Config) -> BenchmarkConfig:
    return pytestconfig.stash[BENCH_CONFIG]


def test_sweep_serves_every_request_and_writes_a_result(
    topology: str,
    bench_target: BenchTarget,
    settings: Settings,
    bench_config: BenchmarkConfig,
    run_state: RunState,
    progress: Any,
) -> None:
    """Every request of every level completes (a failed request is counted, never lost), and the level's
    metrics land in <artifacts>/<run-id>/benchmark-<topology>.json in the suite's result schema, with the
    resolved config, the SLOs goodput was counted against, and the CSVs beside it."""
    for spec in bench_config.workloads:
        name = topology if len(bench_config.workloads) == 1 else f"{topology}-{spec.label}"
        result = _run_workload(
            name, topology, spec, bench_target, settings, bench_config, run_state, progress
        )
        _check(name, result)


def _run_workload(
    name: str,
    topology: str,
    spec: WorkloadSpec,
    target: BenchTarget,
    settings: Settings,
    bench_config: BenchmarkConfig,
    run_state: RunState,
    progress: Any,
) -> Result:
    path = settings.artifacts / run_state.run_id / f"benchmark-{name}.json"
    kept = bench_resume.kept_levels(path) if settings.resume else []
    if kept:
        progress(f"{name}: resuming after the {len(kept)} level(s) {path.name} holds")
    level_files.drop_requests_after(path, len(kept))
    started_at = run_metadata.now()
    meta = {**target.metadata, "label": name, "topology": target.metadata.get("topology") or topology}
    results: list[LevelResult] = list(kept)

    def write(saturation: Any = None, final: bool = False) -> Result:
        result = Result(
            run=RunMetadata(
                **meta,
                suite_revision=run_metadata.suite_revision(),
                started_at=started_at,
                finished_at=run_metadata.now(),
            ),
            results=results,
            config=bench_config.to_data(),
            saturation=saturation,
        )
        result, no_prediction = with_prediction(result)
        if no_prediction is not None and final:
            progress(f"{name}: no prediction beside the measurement: {no_prediction}")
        result.write(path)
        level_files.write_levels(result, path)
        return result

    def run_level(level: Level, index: int) -> LevelResult:
        config = SweepConfig(
            endpoint=target.url,
            model=target.model,
            workload=workload_of(spec),
            levels=(level,),
            label=name,
            seed=bench_config.seed,
            slo=bench_config.slo,
            first_level=index,
            balancer=target.balancer,
            length_unit=bench_config.length_unit,
        )
        show = LevelProgress(progress, name, index)
        try:
            repeated = asyncio.run(run_repeats(config, bench_config.repeats, progress=show))
        except WorkloadError as exc:  # an unreadable dataset, or a server without POST /tokenize
            pytest.exit(f"usage error: {exc}", returncode=2)
        except ModelNotServed as exc:  # --endpoint serving another model than the topology's (or --model's)
            pytest.exit(f"usage error: {exc}; give --model with the model it serves", returncode=2)
        if not repeated.result.results:
            raise LevelInterrupted(f"{name}: level {index + 1} ({level.describe()}) was stopped")
        level_result = repeated.result.results[0]
        rows = []
        for r, sweep in enumerate(repeated.runs):
            for level_run in sweep.levels:
                rows += level_files.request_rows(index, r, level_run.records, bench_config.slo)
        level_files.append_requests(path, rows)
        results.append(level_result)
        write()
        for line in workload_notes(level_result):
            progress(f"{name}: level {index + 1}: {line}")
        m = level_result.metrics
        goodput = f"{m.goodput_requests_per_s:.3g}/s" if m.goodput_requests_per_s is not None else "null"
        progress(
            f"{name}: level {index + 1} ({level.describe()}) done: {m.requests.completed} completed, "
            f"{m.requests.failed} failed, {m.throughput.requests_per_s or 0:.3g} req/s, goodput {goodput}"
        )
        if repeated.interrupted:
            raise LevelInterrupted(f"{name}: level {index + 1} ({level.describe()}) was stopped")
        return level_result

    try:
        stages = run_stages(bench_config.load, run_level, kept)
    except SaturationNotFound as exc:
        pytest.fail(str(exc))
    if stages.saturation is not None:
        s = stages.saturation
        progress(
            f"{name}: saturation at {s.saturation_requests_per_s:.3g} req/s (synchronous "
            f"{s.synchronous_requests_per_s:.3g} req/s); measured below it at "
            + ", ".join(f"{r:.3g}" for r in s.rates)
            + " req/s"
        )
    result = write(stages.saturation, final=True)
    progress(
        f"{name}: result written to {path} (with {level_files.levels_csv(path).name}, "
        f"{level_files.requests_csv(path).name})"
    )
    return result


def _check(name: str, result: Result) -> None:
    for level in result.results:
        requests = level.metrics.requests
        # The client's counts against the server's own counters around the level (independent accounting),
        # repeat by repeat:
        for metrics in level.repeats or [level.metrics]:
            disagreements = reconcile(
                ClientCounts.from_level(metrics), ServerDelta.from_mapping(metrics.server_metrics_delta)
            )
            assert not disagreements, f"{name} {level.load}: client and server disagree: {disagreements}"
        assert requests.failed == 0, (
            f"{name} {level.load}: {requests.failed} failed: {requests.errors_by_reason}"
        )
        assert level.metrics.throughput.output_tokens_per_s, f"{name}: no output-token throughput measured"
