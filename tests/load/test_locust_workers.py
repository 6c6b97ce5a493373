"""``--workers 2``: a Locust master and two worker processes on this machine share the users, each writes
its own raw records, and the result is one merged level with every request of both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from locust_testkit import engine, locust_run

from reports.schema import read_result


@pytest.mark.slow
def test_two_workers_share_the_users_and_one_result_holds_both(tmp_path: Path) -> None:
    raw_dir, out = tmp_path / "raw", tmp_path / "result.json"
    with engine(tmp_path) as endpoint:
        proc = locust_run("--endpoint", endpoint, "--users", "4", "--spawn-rate", "100", "--run-time", "3",
                          "--workers", "2", "--input-len", "64", "--output-len", "16",
                          "--raw-dir", str(raw_dir), "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2 process(es) sent requests" in proc.stderr

    files = sorted(raw_dir.glob("*.jsonl"))
    assert len(files) == 2, f"expected one raw file per worker, got {[f.name for f in files]}"
    sent_by_worker = {}
    for path in files:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        anchor, requests = lines[0], lines[1:]
        assert anchor["type"] == "worker" and anchor["role"] == "worker", anchor
        assert requests and all(r["type"] == "request" and r["worker"] == anchor["worker"] for r in requests)
        sent_by_worker[anchor["worker"]] = len(requests)
    assert len(sent_by_worker) == 2 and all(n > 0 for n in sent_by_worker.values()), sent_by_worker

    level = read_result(out).results[0]
    assert level.load.generator == "locust" and level.load.concurrency == 4
    assert level.metrics.requests.sent == sum(sent_by_worker.values())
    assert level.metrics.requests.failed == 0
    assert level.metrics.output_tokens == 16 * level.metrics.requests.completed
