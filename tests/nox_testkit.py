"""Running the README's `nox` commands as a user does, from this checkout, and reading what they told the user.

The tests themselves may run under `nox -s tests`: the nested `nox` gets the environment of a user's shell, not
of the outer session (no VIRTUAL_ENV or NOX_CURRENT_SESSION, the session's venv off PATH, no pytest variables),
runs in this checkout (so its own sessions' venvs, reused after the first run: noxfile.py), and reaches no
cluster the test did not name (KUBECONFIG points nowhere; the suite's state directory is the test's own).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from plumbing.wait import NotYet, still_running, wait_for

REPO = Path(__file__).resolve().parents[1]
NOX_TIMEOUT_S = 600.0  # the first run of a session makes its venv; later runs take seconds


@dataclass(frozen=True)
class NoxRun:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr, as a terminal shows them

    def lines_with(self, *phrases: str) -> list[str]:
        return [line for line in self.output.splitlines() if all(p in line for p in phrases)]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def unbuildable_cache(tmp_path: Path) -> str:
    """A cache directory (LWS_SUITE_CACHE) under a regular file: nothing is built or installed there, and should a
    test's prerequisite not be missing after all, the build or install fails at once instead of compiling for
    minutes."""
    blocker = tmp_path / "cache-blocker"
    blocker.write_text("a file, so that no directory can be made under it\n")
    return str(blocker / "cache")


def user_path() -> str:
    """PATH as the user's shell has it: without the venv this test runs in (nox puts it first)."""
    venv_bin = str(Path(sys.prefix) / "bin")
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)


def nox_executable() -> str:
    found = shutil.which("nox", path=user_path())
    if found is None:
        pytest.skip("`nox` is not installed (README: pip install nox uv)")
    return found


def nox_env(tmp_path: Path, path: str | None = None, **extra: str) -> dict[str, str]:
    drop = ("VIRTUAL_ENV", "NOX_CURRENT_SESSION", "PYTEST_", "LWS_SUITE_TESTBED", "LWS_SUITE_RUN_ID")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = path if path is not None else user_path()
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig-here")  # never the developer's cluster
    env["LWS_SUITE_STATE"] = str(tmp_path / "state")
    env.update(extra)
    return env


def run_nox(*args: str | Path, tmp_path: Path, path: str | None = None, **extra: str) -> NoxRun:
    argv = [nox_executable(), *map(str, args)]
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env=nox_env(tmp_path, path, **extra),
        capture_output=True,
        text=True,
        timeout=NOX_TIMEOUT_S,
        check=False,
    )
    return NoxRun(argv, proc.returncode, proc.stdout + proc.stderr)


def assert_exit(run: NoxRun, returncode: int, *phrases: str) -> str:
    """The documented exit code, exactly one line with `phrases`, no traceback, no test errors printed."""
    assert run.returncode == returncode, f"exit code {run.returncode}, expected {returncode}:\n{run.tail()}"
    assert "Traceback" not in run.output, f"a traceback reached the user:\n{run.tail(80)}"
    errors = [line for line in run.output.splitlines() if line.startswith(("E ", "ERROR "))]
    assert not errors, "test errors were printed instead of one line:\n" + "\n".join(errors[:20])
    hits = run.lines_with(*phrases)
    assert len(hits) == 1, f"expected exactly one line with {phrases}, found {len(hits)}:\n{run.tail()}"
    return hits[0]


# a command that waits: reading a FIFO nobody writes ---------------------------------------------------------
def reader_blocked(fifo: Path, proc: subprocess.Popen[str]) -> int:
    """Done once a process has the FIFO open for reading (it then waits for data that never comes): opening the
    write end without blocking succeeds only then. Returns the write end, to be kept open until the end."""

    def opened() -> int:
        still_running(proc, "nox")
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise NotYet(f"no reader has {fifo} open yet") from None
            raise

    return wait_for(opened, what="the command to open the FIFO", timeout=NOX_TIMEOUT_S)


def start_nox(*args: str | Path, tmp_path: Path, output: Path) -> subprocess.Popen[str]:
    """nox in the background, in a process group of its own with SIGINT at its default (a terminal's foreground
    job); stdout and stderr to `output`."""
    with output.open("w") as out:
        return subprocess.Popen(
            [nox_executable(), *map(str, args)],
            cwd=REPO,
            env=nox_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
