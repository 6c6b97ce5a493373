"""Every `python -m` CLI runs its main in plumbing.exit_codes.run_cli: a bug is 70 with its traceback, never 1
("a check failed"); Ctrl-C and SIGTERM are 130 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plumbing import exit_codes
from plumbing.exit_codes import run_cli
from plumbing.wait import NotYet, still_running, wait_for

REPO = Path(__file__).resolve().parents[2]


def test_main_s_own_code_passes_through() -> None:
    assert run_cli(lambda: 3, "prog") == 3


def test_an_exception_out_of_main_is_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    def buggy() -> int:
        raise ZeroDivisionError("a bug")

    assert run_cli(buggy, "python -m prog") == exit_codes.INTERNAL
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err  # the traceback, for the bug report
    assert err.strip().splitlines()[-1].startswith("python -m prog: internal error of the suite (exit 70)")


def test_ctrl_c_is_130_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_cli(interrupted, "python -m prog") == exit_codes.INTERRUPTED
    assert capsys.readouterr().err == "python -m prog: interrupted (Ctrl-C)\n"


@pytest.mark.parametrize("module", ["reports", "manifests"])
def test_sigterm_ends_a_cli_with_130(module: str, tmp_path: Path) -> None:
    """`python -m reports render FIFO` / `python -m manifests describe FIFO` wait reading the FIFO; SIGTERM then."""
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    args = ["render", str(fifo)] if module == "reports" else ["describe", str(fifo)]
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writer = None
    try:

        def reading() -> int:
            still_running(proc, module)
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                raise NotYet(f"{module} has not opened {fifo} yet ({exc.strerror})") from None

        writer = wait_for(reading, what=f"{module} to read the FIFO", timeout=60)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if writer is not None:
            os.close(writer)
    assert proc.returncode == exit_codes.INTERRUPTED, err
    assert err == f"python -m {module}: interrupted (stopped by SIGTERM)\n"
