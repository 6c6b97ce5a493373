"""Where state and caches go when there is no home directory (a pod of the suite's image: a user the image's
passwd lacks, HOME=/ or unset, a read-only root filesystem): testbed/paths.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import paths
from testbed.bridge.suite_pods import image_prefixes

ENV = ("LWS_SUITE_STATE", "LWS_SUITE_CACHE", "XDG_STATE_HOME", "XDG_CACHE_HOME", "HOME", "TMPDIR")


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env of ours, and the shared temporary directories replaced by two under tmp_path."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    tmp, var_tmp = tmp_path / "tmp", tmp_path / "var-tmp"
    tmp.mkdir()
    var_tmp.mkdir()
    monkeypatch.setattr(paths, "TMP_DIRS", (str(tmp), str(var_tmp)))
    return tmp_path


def not_a_directory(path: Path) -> Path:
    """A path under a regular file: nothing can be created there, for root too."""
    path.write_text("a file, not a directory\n")
    return path / "below"


def test_the_explicit_variables_win(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWS_SUITE_STATE", str(bare / "s"))
    monkeypatch.setenv("LWS_SUITE_CACHE", str(bare / "c"))
    monkeypatch.setenv("HOME", str(bare / "home"))
    assert (paths.state_root(), paths.cache_root()) == (bare / "s", bare / "c")
    paths.require_writable()


def test_a_writable_home_is_used(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(bare / "home"))  # not there yet: it can be made
    assert paths.state_root() == bare / "home" / ".local" / "state" / "lws-vllm-suite"
    assert paths.cache_root() == bare / "home" / ".cache" / "lws-vllm-suite"


@pytest.mark.parametrize("home", [None, "unwritable"], ids=["HOME unset", "HOME unwritable"])
def test_no_usable_home_falls_back_to_tmp(
    bare: Path, monkeypatch: pytest.MonkeyPatch, home: str | None
) -> None:
    if home is not None:
        monkeypatch.setenv("HOME", str(not_a_directory(bare / "home")))
    mine = bare / "tmp" / f"lws-vllm-suite-{os.geteuid()}"
    assert paths.state_root() == mine / "state"
    assert paths.cache_root() == mine / "cache"
    paths.require_writable()


def test_tmpdir_comes_before_tmp(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bare / "volume").mkdir()
    monkeypatch.setenv("TMPDIR", str(bare / "volume"))
    assert paths.state_root() == bare / "volume" / f"lws-vllm-suite-{os.geteuid()}" / "state"


def test_an_unwritable_xdg_dir_is_passed_over(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(not_a_directory(bare / "xdg")))
    monkeypatch.setenv("HOME", str(bare / "home"))
    assert paths.state_root() == bare / "home" / ".local" / "state" / "lws-vllm-suite"


def test_another_users_directory_under_tmp_is_not_used(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    squatted = bare / "tmp" / f"lws-vllm-suite-{os.geteuid()}"
    squatted.mkdir()
    os.chown(squatted, os.geteuid() + 1, os.getegid())  # root: tests run as root (the testbed needs it)
    assert paths.state_root() == bare / "var-tmp" / f"lws-vllm-suite-{os.geteuid()}" / "state"


def test_nothing_writable_is_one_line_naming_what_was_tried(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/")
    dead = [str(not_a_directory(bare / "t1")), str(not_a_directory(bare / "t2"))]
    monkeypatch.setattr(paths, "TMP_DIRS", tuple(dead))
    if os.access("/", os.W_OK):
        monkeypatch.setenv("HOME", str(not_a_directory(bare / "home")))
    with pytest.raises(paths.NoWritableDirectory) as raised:
        paths.require_writable()
    message = str(raised.value)
    assert "\n" not in message
    assert "no writable directory for the suite's state" in message
    assert dead[0] in message and dead[1] in message
    assert "set $LWS_SUITE_STATE" in message


def test_an_unwritable_explicit_state_is_an_error_not_a_fallback(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = not_a_directory(bare / "state")
    monkeypatch.setenv("LWS_SUITE_STATE", str(chosen))
    assert paths.state_root() == chosen
    with pytest.raises(paths.NoWritableDirectory, match=r"\$LWS_SUITE_STATE=.* is not a directory this user"):
        paths.require_writable()


def test_unwritable_artifacts_say_so(bare: Path) -> None:
    assert paths.unwritable_artifacts(bare / "artifacts") is None
    line = paths.unwritable_artifacts(not_a_directory(bare / "ro"))
    assert line is not None and "--artifacts" in line and "\n" not in line


def in_the_suites_sandbox(
    tmp_path: Path, argv: list[str], *, read_only_root: bool
) -> subprocess.CompletedProcess[str]:
    """`argv` as a pod of the suite's image runs it on the testbed (testbed/bridge/suite_sandbox.py, in a mount
    namespace of its own): user 65532, HOME=/, the checkout read-only, no volume at /tmp."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch user ids and mount (CI runs as root)")
    repo = Path(__file__).resolve().parents[2]
    prefixes = image_prefixes()
    spec = {
        "binds": [[str(repo), str(repo), True], *([p, p, True] for p in prefixes)],
        "service_account": None,
        "read_only_root": read_only_root,
        "cwd": str(repo),
        "uid": 65532,
        "gid": 65532,
        "argv": argv,
        "env": {"HOME": "/", "PATH": ":".join([*(f"{p}/bin" for p in prefixes), "/usr/bin:/bin"])},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-m", "testbed.bridge.suite_sandbox",
         str(tmp_path / "spec.json")],
        cwd=repo, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_pod_with_nowhere_to_write_stops_with_one_line_and_exit_3(tmp_path: Path) -> None:
    """The image's own command with a read-only root filesystem and no volume at /tmp: exit 3, one line."""
    done = in_the_suites_sandbox(
        tmp_path, ["nox", "-R", "-s", "conformance", "--", "--in-cluster"], read_only_root=True
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if "prerequisite missing" in line]
    assert len(lines) == 1, output[-3000:]
    assert "no writable temporary directory (uid 65532" in lines[0]


def test_no_home_and_an_unwritable_state_variable_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    """/tmp writable (the image's own), HOME=/, $LWS_SUITE_STATE naming a read-only place: pytest starts, and
    the suite stops before it connects, one line naming the variable."""
    argv = ["env", "LWS_SUITE_STATE=/usr/lws-state", "nox", "-R", "-s", "conformance", "--", "--in-cluster"]
    done = in_the_suites_sandbox(tmp_path, argv, read_only_root=False)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if "prerequisite missing" in line]
    assert len(lines) == 1, output[-3000:]
    assert "$LWS_SUITE_STATE=/usr/lws-state is not a directory this user (uid 65532) can write" in lines[0]
