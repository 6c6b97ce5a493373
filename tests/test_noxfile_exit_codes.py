"""The README's `nox` commands end with the suite's exit codes (README.md, "Exit codes"), as a CI job or the
nightly CronJob sees them: nox alone would turn every failure into 1.

Each case is a command a user types, given bad input or a signal; none starts a testbed (usage errors are
found before any cluster I/O), so each takes the few seconds nox needs to reuse its session's venv.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from nox_testkit import assert_exit, reader_blocked, run_nox, start_nox

from plumbing import exit_codes

SIGNAL_EXIT_S = 120.0


def _nothing_written(artifacts: Path) -> None:
    written = sorted(p for p in artifacts.rglob("*") if p.is_file()) if artifacts.exists() else []
    assert not written, f"a run stopped by bad input wrote {written}"


def test_a_usage_error_ends_nox_with_2(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    run = run_nox(
        "-s", "conformance", "--", "--topology", "nope", "--artifacts", artifacts, tmp_path=tmp_path
    )
    assert_exit(run, exit_codes.USAGE, "usage error", "unknown topology 'nope'", "tp8-pp2")
    _nothing_written(artifacts)


def test_an_option_pytest_does_not_know_ends_nox_with_2(tmp_path: Path) -> None:
    """pytest stops at its command line with its own 4, before the suite's plugins load; nox reports 2."""
    run = run_nox("-s", "conformance", "--", "--no-such-option", tmp_path=tmp_path)
    assert run.returncode == exit_codes.USAGE, run.tail()
    assert "Traceback" not in run.output
    assert len(run.lines_with("unrecognized arguments: --no-such-option")) == 1, run.tail()


def test_a_selection_that_matches_nothing_ends_nox_with_2(tmp_path: Path) -> None:
    """pytest's 5, "no tests collected", is a usage error of the suite: a typo in -k must not pass, nor read as
    a failed check."""
    run = run_nox("-s", "conformance", "--", "-k", "no_check_has_this_name", tmp_path=tmp_path)
    assert_exit(run, exit_codes.USAGE, "usage error: nothing to run")


def test_a_gate_given_a_missing_file_ends_nox_with_2(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    run = run_nox(
        "-s", "report", "--", "gate", "--baseline", missing, "--candidate", missing, tmp_path=tmp_path
    )
    assert_exit(run, exit_codes.USAGE, "reports gate:", f"{missing}: cannot read")


def test_sigterm_to_nox_ends_its_command_and_nox_with_130(tmp_path: Path) -> None:
    """CI cancelling a job or Kubernetes deleting the CronJob's pod sends SIGTERM to nox alone: nox passes it
    to the command it runs (which cleans up as on Ctrl-C) and ends with 130, as the command does."""
    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    proc = start_nox("-s", "report", "--", "render", fifo, tmp_path=tmp_path, output=tmp_path / "out.txt")
    writer = None
    try:
        writer = reader_blocked(fifo, proc)  # `python -m reports render` waits for the file's content
        proc.send_signal(signal.SIGTERM)  # nox alone, not its process group
        code = proc.wait(timeout=SIGNAL_EXIT_S)
    finally:
        _end(proc, writer)
    output = (tmp_path / "out.txt").read_text()
    assert code == exit_codes.INTERRUPTED, f"exit code {code}:\n{output[-3000:]}"
    assert "python -m reports: interrupted (stopped by SIGTERM)" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_ctrl_c_ends_nox_and_its_command_with_130(tmp_path: Path) -> None:
    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    proc = start_nox("-s", "report", "--", "render", fifo, tmp_path=tmp_path, output=tmp_path / "out.txt")
    writer = None
    try:
        writer = reader_blocked(fifo, proc)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        code = proc.wait(timeout=SIGNAL_EXIT_S)
    finally:
        _end(proc, writer)
    output = (tmp_path / "out.txt").read_text()
    assert code == exit_codes.INTERRUPTED, f"exit code {code}:\n{output[-3000:]}"
    assert "python -m reports: interrupted" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def _end(proc: subprocess.Popen[str], writer: int | None) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    if writer is not None:
        os.close(writer)


def test_nox_tests_with_a_path_runs_only_the_tests_named(tmp_path: Path) -> None:
    """`nox -s tests -- PATH` runs PATH, not the whole suite beside it (the session adds `tests` only when the
    arguments name no tests of their own)."""
    run = run_nox(
        "-s",
        "tests",
        "--",
        "tests/test_layering.py",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.tail()
    collected = [line for line in run.output.splitlines() if "::" in line]
    assert collected, run.tail()
    outside = [line for line in collected if not line.startswith("tests/test_layering.py::")]
    assert not outside, f"collected beyond the path named: {outside[:5]}"
