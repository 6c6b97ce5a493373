"""The engine model's prediction for a run: versioned, with its calibration error, and physical."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import testbed.engine.prediction as prediction
from testbed.engine.prediction import LoadPoint, calibration_error, model_version, predict

REPO = Path(__file__).resolve().parents[3]
MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def docs_error(scenario: str) -> tuple[float, float, float]:
    """(median, p90, max) % of the scenario's 'all' row in docs/calibration.md."""
    text = (REPO / "docs" / "calibration.md").read_text()
    row = re.search(rf"^\| {scenario} \| all \| \d+ \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \|$", text, re.M)
    assert row is not None, f"docs/calibration.md has no 'all' row for {scenario}"
    return tuple(float(x) for x in row.groups())  # type: ignore[return-value]


@pytest.mark.parametrize(("gpu", "scenario"), [("H100", "h100-held-out-shards"), ("H200", "h200-held-out-shards"),
                                               ("A100", "h200-from-h100")])  # fmt: skip
def test_the_calibration_error_is_the_documented_validation_figure(gpu: str, scenario: str) -> None:
    error = calibration_error(gpu)
    assert error.scenario == scenario
    median, p90, most = docs_error(scenario)
    assert (round(error.median_pct, 1), round(error.p90_pct, 1), round(error.max_pct, 1)) == (
        median,
        p90,
        most,
    )


def test_the_version_changes_when_the_model_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = model_version()
    here = Path(prediction.__file__).parent
    shutil.copytree(here, tmp_path / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(prediction, "_HERE", tmp_path / "engine")
    model_version.cache_clear()
    try:
        same = model_version()
        costs = tmp_path / "engine" / "shard_costs.py"
        costs.write_text(costs.read_text() + "\n# a changed constant\n")
        model_version.cache_clear()
        changed = model_version()
    finally:
        model_version.cache_clear()
    assert re.fullmatch(r"perf-model-[0-9a-f]{12}", same)
    assert same == shipped  # the copy is the shipped model
    assert changed != same


def test_more_load_more_throughput_and_longer_waits() -> None:
    loads = [LoadPoint(48, 256, 64, concurrency=c) for c in (1, 16)]
    p = predict(MODEL, 4, 1, loads)
    light, heavy = p.points
    assert heavy.output_tokens_per_s > 4 * light.output_tokens_per_s
    assert heavy.ttft_p50_ms is not None and light.ttft_p50_ms is not None
    assert heavy.ttft_p50_ms > light.ttft_p50_ms
    assert (p.gpu, p.interconnect, p.tp, p.pp) == ("H100", "infiniband", 4, 1)


def test_more_tensor_parallel_decodes_faster_and_a_slower_gpu_slower() -> None:
    one = [LoadPoint(8, 128, 32, concurrency=1)]
    tp4 = predict(MODEL, 4, 1, one).points[0].tpot_p50_ms
    tp8 = predict(MODEL, 8, 1, one).points[0].tpot_p50_ms
    a100 = predict(MODEL, 8, 1, one, gpu="A100").points[0].tpot_p50_ms
    assert tp4 is not None and tp8 is not None and a100 is not None
    assert tp8 < tp4 < 0.05 * 1e3
    assert a100 > tp8


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="known: H100"):
        predict(MODEL, 8, 1, [LoadPoint(1, 8, 8, concurrency=1)], gpu="V100")
    with pytest.raises(ValueError, match="unknown model"):
        predict("acme/unknown", 8, 1, [LoadPoint(1, 8, 8, concurrency=1)])
