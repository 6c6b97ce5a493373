"""A later run removes a testbed only when its recorded owner is dead, never one whose owner runs or that has no
owner record (long-lived testbeds, other runs on this machine)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
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
    reused = Owner(me.pid, me.start_ticks - 1, me.host)  # same pid, another start time
    make_testbed(state, "pytest-reused", reused)
    assert reap() == ["pytest-reused"]


def test_the_owner_record_names_its_boot_machine_and_pid_namespace(state: Path) -> None:
    me = ownership.this_process()
    path = make_testbed(state, "pytest-host", me)
    raw = json.loads((path / ownership.OWNER_FILE).read_text())
    assert raw["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert raw["hostname"] == socket.gethostname()
    assert raw["pid_namespace"] == os.readlink("/proc/self/ns/pid") and raw["pid_namespace"].startswith(
        "pid:["
    )
    assert ownership.read(path) == me


@pytest.mark.parametrize("field", ["boot_id", "hostname", "pid_namespace"])
def test_a_dead_owner_recorded_on_another_boot_machine_or_pid_namespace_is_not_judged_here(
    state: Path, field: str
) -> None:
    """A state directory shared between machines (an NFS home) or containers: the owner's pid means nothing
    in this /proc, so its testbed is left alone, however dead the pid looks here."""
    dead = dead_owner()
    assert dead.host is not None
    elsewhere = Owner(dead.pid, dead.start_ticks, dataclasses.replace(dead.host, **{field: "elsewhere"}))
    make_testbed(state, "pytest-elsewhere", elsewhere)
    make_testbed(state, "pytest-here", dead)
    assert reap() == ["pytest-here"]
    assert ownership.lock_path("pytest-elsewhere").exists()


def test_an_owner_recorded_without_its_host_is_never_reaped(state: Path) -> None:
    dead = dead_owner()
    path = make_testbed(state, "pytest-old-record", None)
    (path / ownership.OWNER_FILE).write_text(json.dumps({"pid": dead.pid, "start_ticks": dead.start_ticks}))
    assert reap() == []
