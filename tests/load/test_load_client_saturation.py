"""End to end: a client pinned to one core at a rate it cannot schedule is marked invalid and the gate
refuses the level; a rate the same pinned client can deliver is valid and gated as usual. And one load, two
clients: with a core to itself the client delivers it (valid); sharing its core with a busy process it cannot
(invalid, refused).

The reference server runs on the other core. The invalid case needs no artificial burden: 20,000 requests/s
asks for one send every 50 us, and a send alone costs about 250 us of the client's CPU here
(load/README.md, "Limits"), so the pinned client delivers a few per cent of the rate whatever else the
machine is doing. The valid case asks 50 requests/s of the same workload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from load_testkit import MODEL, REPO, python_env, reference_server

from reports.cli import main as reports_main

CLIENT_CORE, SERVER_CORE = 0, 1
VALID_ATTEMPTS = 3  # a shared machine can stall a calm client; the valid case must be valid in one of them

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="needs two cores: one for the server, one for the pinned client"
)


def _pinned_run(url: str, rate: str, out: Path, requests: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "load", "run", "--endpoint", url, "--model", MODEL,
            "--input-len", "8", "--output-len", "8", "--num-requests", str(requests),
            "--request-rate", rate, "--burstiness", "inf", "--out", str(out), "--quiet",
        ],
        capture_output=True, text=True, cwd=REPO, env=python_env(), timeout=120, check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CORE}),
    )  # fmt: skip


def _client(path: Path) -> dict[str, Any]:
    client: dict[str, Any] = json.loads(path.read_text())["results"][0]["metrics"]["client"]
    return client


def test_a_pinned_client_at_a_rate_it_cannot_schedule_is_invalid_and_the_gate_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with reference_server("--ttft-ms", "20", "--itl-ms", "10", cpu=SERVER_CORE) as (url, _):
        flooded = tmp_path / "flooded.json"
        proc = _pinned_run(url, "20000", flooded, 600)
        assert proc.returncode == 0, proc.stderr
        attempts = []
        for n in range(VALID_ATTEMPTS):
            calm = tmp_path / f"calm-{n}.json"
            assert _pinned_run(url, "50", calm, 150).returncode == 0
            attempts.append(_client(calm))
            if attempts[-1]["verdict"] == "valid":
                break

    client = _client(flooded)
    assert client["verdict"] == "invalid", client
    assert client["cores"] == 1
    assert client["achieved_rate"] < 0.5 * 20000, client
    assert any("requests/s of the" in reason for reason in client["reasons"]), client["reasons"]
    assert "!!! INVALID level 1 (rate 20000/s)" in proc.stderr  # loud, even with --quiet

    assert attempts[-1]["verdict"] == "valid", [a["reasons"] for a in attempts]
    assert attempts[-1]["achieved_rate"] > 0.9 * 50

    calm = tmp_path / f"calm-{len(attempts) - 1}.json"
    assert reports_main(["gate", "--baseline", str(calm), "--candidate", str(flooded)]) == 2
    err = capsys.readouterr().err
    assert "flooded.json level 20000 req/s" in err and "requests/s of the" in err, err
    assert reports_main(["compare", str(flooded)]) == 2
    assert "level 20000 req/s" in capsys.readouterr().err
    assert reports_main(["gate", "--baseline", str(calm), "--candidate", str(calm)]) == 0
    assert reports_main(["compare", str(flooded), "--allow-invalid"]) == 0


HOGS = 3  # busy processes beside the client on its core: it keeps about a quarter of the core


@contextmanager
def _cpu_hogs(core: int) -> Iterator[None]:
    """Busy processes on `core`: the client shares its core with them, as with noisy neighbours on a load node.
    A starved client batches more events per wake-up, so it needs less CPU per request than a calm one; three
    neighbours leave it well under what the load needs, not just under."""
    hogs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.sched_setaffinity(0, {core})
        )
        for _ in range(HOGS)
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _rate_needing(url: str, tmp_path: Path, target_cpu: float) -> tuple[int, dict[str, Any]]:
    """A request rate that keeps the pinned client's core about `target_cpu` busy, found from its own CPU per
    request (measured, not assumed: machines differ), and the client check of the run at that rate."""
    rate, client = 100, {}
    for n in range(6):
        path = tmp_path / f"probe-{n}.json"
        assert _pinned_run(url, str(rate), path, max(200, rate * 3)).returncode == 0
        client = _client(path)
        cpu = client["cpu_fraction"]
        if 0.6 <= cpu <= 0.85 and client["verdict"] == "valid":
            break
        rate = max(20, int(rate * target_cpu / cpu))
    return rate, client


def test_the_same_load_is_invalid_from_a_starved_client_and_valid_from_a_client_with_its_core(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One load, two clients: pinned to a core of its own it delivers the load (valid); sharing that core with
    busy processes it gets a quarter of the core, less than the load needs, and the level is invalid and
    refused by the gate."""
    with reference_server("--ttft-ms", "20", "--itl-ms", "10", cpu=SERVER_CORE) as (url, _):
        rate, alone = _rate_needing(url, tmp_path, target_cpu=0.75)
        assert alone["verdict"] == "valid" and 0.6 <= alone["cpu_fraction"] <= 0.85, (rate, alone)
        starved = tmp_path / "starved.json"
        with _cpu_hogs(CLIENT_CORE):
            proc = _pinned_run(url, str(rate), starved, rate * 3)
        assert proc.returncode == 0, proc.stderr

    client = _client(starved)
    assert client["verdict"] == "invalid", (rate, alone, client)
    assert f"!!! INVALID level 1 (rate {rate}/s)" in proc.stderr
    enough = sorted(tmp_path.glob("probe-*.json"))[-1]  # the run at the chosen rate is the last probe
    assert reports_main(["gate", "--baseline", str(enough), "--candidate", str(starved)]) == 2
    assert f"starved.json level {rate} req/s" in capsys.readouterr().err
