"""A later run removes a testbed only when its recorded owner is dead, never one whose owner runs or that has no
owner record (long-lived testbeds, other runs on this machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testbed import ownership
from testbed.ownership import Owner


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LWS_SUITE_STATE", str(tmp_path))
    (tmp_path / "testbeds").mkdir()
    return tmp_path / "testbeds"


def dead_owner() -> Owner:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    owner = Owner.of(proc.pid)
    proc.communicate(b"")  # it exits and is reaped: its pid names no process (or, reused, another one)
    return owner


def make_testbed(state: Path, name: str, owner: Owner | None) -> Path:
    path = state / name
    path.mkdir()
    if owner is not None:
        ownership.write(path, owner)
    ownership.lock_path(name).touch()
    return path


def reap() -> list[str]:
    stopped: list[str] = []
    said: list[str] = []
    reaped = ownership.reap_orphans(lambda name: stopped.append(name) is None, said.append)
    assert reaped == stopped
    assert len(said) == len(reaped) and all("left behind" in line for line in said)
    return reaped


def test_a_testbed_whose_owner_died_is_removed_with_its_lock(state: Path) -> None:
    make_testbed(state, "pytest-dead", dead_owner())
    assert reap() == ["pytest-dead"]
    assert not ownership.lock_path("pytest-dead").exists()


def test_a_testbed_whose_owner_runs_is_left_alone(state: Path) -> None:
    make_testbed(state, "pytest-mine", ownership.this_process())
    assert reap() == []
    assert ownership.lock_path("pytest-mine").exists()


def test_a_testbed_without_an_owner_record_is_left_alone(state: Path) -> None:
    make_testbed(state, "long-lived", None)
    (state / "half-written").mkdir()
    (state / "half-written" / ownership.OWNER_FILE).write_text("{")
    assert reap() == []


def test_a_reused_pid_does_not_pass_for_the_owner(state: Path) -> None:
    me = ownership.this_process()
    make_testbed(state, "pytest-reused", Owner(me.pid, me.start_ticks - 1))  # same pid, another start time
    assert reap() == ["pytest-reused"]
