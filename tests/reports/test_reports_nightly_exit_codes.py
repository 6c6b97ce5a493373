"""The nightly CronJob's script (docs/examples/nightly-cronjob.yaml) ends with the suite's exit code and says it
in words in the termination message, so a failed Job tells a regression (1) from a broken job (2), an unreachable
cluster (3), a bug (70) and a stopped pod (130); on SIGTERM the running step cleans up and the night stops.

The script runs as written, with /results and /dev/termination-log moved into tmp_path and a stand-in `nox` on
PATH that exits as told (the real sessions are tested elsewhere, tests/test_noxfile_exit_codes.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from plumbing import exit_codes
from plumbing.wait import NotYet, still_running, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
RESULT_LINE = '{"schema": "lws-vllm-suite/result/v1"}\n'

# A stand-in for nox: `-s benchmark` writes a result file unless told to fail before, then exits $BENCH;
# `-s report -- gate` exits $GATE; on SIGTERM the benchmark "cleans up" and exits 130, as the suite does.
FAKE_NOX = (
    """#!/bin/bash
echo "nox $*" >> "$CALLS"
case "$*" in
  *"-s benchmark"*)
    if [ -n "${WAIT_FOR_TERM:-}" ]; then
      sleep 600 & idle=$!
      trap 'kill "$idle"; echo cleaned-up >> "$CALLS"; exit 130' TERM
      touch "$STARTED"
      wait "$idle"
    fi
    artifacts="${@: -1}"
    if [ "$BENCH" -le 1 ]; then mkdir -p "$artifacts/run"; printf '%s' '"""
    + RESULT_LINE.strip()
    + """' > "$artifacts/run/benchmark-tp8-pp2.json"; fi
    exit "$BENCH" ;;
  *"gate"*) exit "$GATE" ;;
  *"compare"*) exit "${COMPARE:-0}" ;;
  *) exit 0 ;;
esac
"""
)


def _script(tmp_path: Path) -> str:
    cron = next(
        d
        for d in yaml.safe_load_all((EXAMPLES / "nightly-cronjob.yaml").read_text())
        if d["kind"] == "CronJob"
    )
    script: str = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    results = tmp_path / "results"
    return script.replace("/results", str(results)).replace(
        "/dev/termination-log", str(tmp_path / "termination")
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nox").write_text(FAKE_NOX)
    (bin_dir / "nox").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "STARTED": str(tmp_path / "started"),
        "TOPOLOGIES": "tp8-pp2",
        "SLO": "tpot_ms=50",
        "BASELINE_NIGHTS": "5",
        "BENCH": "0",
        "GATE": "0",
    }
    env.update(extra)
    return env


def _accepted_night(tmp_path: Path) -> None:
    night = tmp_path / "results" / "accepted" / "20260101T020000Z"
    night.mkdir(parents=True)
    (night / "benchmark-tp8-pp2.json").write_text(RESULT_LINE)


def _run(tmp_path: Path, **extra: str) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", "-c", _script(tmp_path)],
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("bench", "gate", "code", "words"),
    [
        (0, 0, 0, "passed"),
        (0, 1, 1, "the gate found a regression"),
        (1, 0, 1, "a check failed"),
        (2, 0, 2, "usage or input error"),
        (3, 0, 3, "cluster could not be reached or lacks a prerequisite"),
        (70, 0, 70, "internal error of the suite"),
    ],
)
def test_the_night_ends_with_the_suites_code_and_says_it(
    bench: int, gate: int, code: int, words: str, tmp_path: Path
) -> None:
    _accepted_night(tmp_path)
    returncode, output = _run(tmp_path, BENCH=str(bench), GATE=str(gate))
    assert returncode == code, output
    message = (tmp_path / "termination").read_text()
    assert message.startswith(f"exit {code}: ") and words in message, message
    accepted = sorted((tmp_path / "results" / "accepted").iterdir())
    assert len(accepted) == (2 if code == 0 else 1), "only a clean night joins the baseline window"


def test_sigterm_stops_the_night_after_the_step_cleaned_up(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["bash", "-c", _script(tmp_path)],
        env=_env(tmp_path, WAIT_FOR_TERM="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def benchmark_running() -> Any:
            still_running(proc, "the nightly script")
            if not (tmp_path / "started").exists():
                raise NotYet("the benchmark step has not started")

        wait_for(benchmark_running, what="the benchmark step", timeout=60)
        proc.send_signal(signal.SIGTERM)  # as the kubelet does to the container's PID 1
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == exit_codes.INTERRUPTED, output
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[-1] == "cleaned-up" and not any("report" in c for c in calls), calls
    assert (tmp_path / "termination").read_text().startswith("exit 130: interrupted")


def test_a_night_whose_runs_compare_refuses_ends_with_2_and_joins_no_baseline(tmp_path: Path) -> None:
    """compare refuses runs it must not put side by side (another model, workload or lengths, exit 2): the night
    says so and is not accepted, whatever the gate made of it."""
    _accepted_night(tmp_path)
    returncode, output = _run(tmp_path, COMPARE="2")
    assert returncode == 2, output
    assert (tmp_path / "termination").read_text().startswith("exit 2: "), output
    assert len(list((tmp_path / "results" / "accepted").iterdir())) == 1
