"""`nox -s benchmark -- --config FILE` on the embedded default, as a user runs it: a small config (one topology,
a closed-loop level and a time-bounded open-loop level) gives a result that carries the resolved config, the
SLOs and goodput on every level, and the CSVs beside it; then `--resume` of that run, cut short after its first
level, keeps that level and measures the second again; a resume with another config is refused (exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from nox_testkit import assert_exit, run_nox

from reports.schema import Result, read_result

pytestmark = [pytest.mark.e2e, pytest.mark.long, pytest.mark.xdist_group("testbed-gpus")]

CONFIG = """\
deploy: {topologies: [tp8-pp2]}
workloads: [{random: {input_len: 128, output_len: 32}}]
load:
  - closed: {concurrency: [2], num_requests: 6}
  - rate: {rates: [4], arrival: constant, duration_s: 2}
slo: {ttft_ms: 2000, tpot_ms: 50}
"""


def test_a_config_file_run_stores_its_config_slos_goodput_and_csvs(tmp_path: Path) -> None:
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG)
    artifacts = tmp_path / "artifacts"
    run = run_nox("-s", "benchmark", "--", "--config", config, "--artifacts", artifacts, tmp_path=tmp_path)
    assert run.returncode == 0, run.tail(60)
    (run_dir,) = [d for d in artifacts.iterdir() if d.is_dir()]
    path = run_dir / "benchmark-tp8-pp2.json"
    result = read_result(path)
    assert result.config is not None
    assert result.config["load"] == [
        {"closed": {"concurrency": [2], "num_requests": 6}},
        {"rate": {"rates": [4.0], "arrival": "constant", "duration_s": 2.0}},
    ]
    assert result.config["slo"] == {"ttft_ms": 2000.0, "tpot_ms": 50.0}
    closed, rate = result.results
    assert closed.load.concurrency == 2 and closed.metrics.requests.completed == 6
    assert rate.load.request_rate == 4.0 and rate.load.duration_s == 2.0
    assert rate.metrics.requests.sent == 8  # floor(4/s x 2 s), evenly spaced
    for level in result.results:
        assert level.load.slo == {"ttft_ms": 2000.0, "tpot_ms": 50.0}
        assert level.metrics.goodput_requests_per_s is not None and level.metrics.goodput_requests_per_s > 0
    levels = list(csv.DictReader((run_dir / "benchmark-tp8-pp2.levels.csv").open()))
    assert [r["arrival"] for r in levels] == ["closed", "constant"]
    assert float(levels[1]["goodput_requests_per_s"]) == pytest.approx(
        rate.metrics.goodput_requests_per_s, rel=1e-4
    )
    requests = list(csv.DictReader((run_dir / "benchmark-tp8-pp2.requests.csv").open()))
    assert [r["level"] for r in requests] == ["0"] * 6 + ["1"] * 8
    assert all(r["meets_slo"] in ("True", "False") and r["error"] == "" for r in requests)

    # Cut the run short after its first level, as a Ctrl-C during the second leaves it, and resume it.
    Result.model_validate(
        {**json.loads(path.read_text()), "results": [json.loads(closed.model_dump_json())]}
    ).write(path)
    refused = run_nox(
        "-s",
        "benchmark",
        "--",
        "--resume",
        run_dir.name,
        "--num-requests",
        "7",
        "--artifacts",
        artifacts,
        tmp_path=tmp_path,
    )
    assert_exit(refused, 2, "usage error", f"--resume {run_dir.name}: its config differs")
    resumed = run_nox(
        "-s", "benchmark", "--", "--resume", run_dir.name, "--artifacts", artifacts, tmp_path=tmp_path
    )
    assert resumed.returncode == 0, resumed.tail(60)
    assert [d.name for d in artifacts.iterdir() if d.is_dir()] == [run_dir.name]  # the same run, continued
    again = read_result(path)
    assert again.results[0] == closed  # kept as it was
    assert again.results[1].load.request_rate == 4.0 and again.results[1].metrics.requests.sent == 8
    assert again.config == result.config
    requests = list(csv.DictReader((run_dir / "benchmark-tp8-pp2.requests.csv").open()))
    assert [r["level"] for r in requests] == ["0"] * 6 + ["1"] * 8
