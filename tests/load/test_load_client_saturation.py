"""End to end: a client pinned to one core at a rate it cannot schedule is marked invalid and the gate
refuses the level; a rate the same pinned client can deliver is valid and gated as usual.

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
