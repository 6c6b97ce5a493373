"""Builders for the lint's tests: the reference topology as objects, its parts, edits that break it in one way,
and the check each rule family's table of broken manifests runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from manifests import Manifest, Overrides, lint, render
from manifests.lint import LintReport

Objects = list[dict[str, Any]]
# (id, how it is broken, code, severity, a phrase the message must hold)
Broken = tuple[str, Callable[[Objects], None], str, str, str]


def reference(**overrides: Any) -> Objects:
    return render("tp8-pp2", Overrides(**overrides))


def leader(objects: Objects) -> dict[str, Any]:
    return objects[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]


def worker(objects: Objects) -> dict[str, Any]:
    return objects[0]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]


def pod_spec(objects: Objects, role: str) -> dict[str, Any]:
    key = "leaderTemplate" if role == "leader" else "workerTemplate"
    return objects[0]["spec"]["leaderWorkerTemplate"][key]["spec"]


def selector(objects: Objects) -> dict[str, str]:
    return objects[1]["spec"]["selector"]


def edit_leader_command(old: str, new: str) -> Callable[[Objects], None]:
    def edit(objects: Objects) -> None:
        command = leader(objects)["command"]
        assert old in command[2], f"builder is stale: {old!r} not in {command[2]!r}"
        command[2] = command[2].replace(old, new)

    return edit


def set_images(image: str) -> Callable[[Objects], None]:
    def edit(objects: Objects) -> None:
        leader(objects)["image"] = image
        worker(objects)["image"] = image

    return edit


def set_gpus(count: str) -> Callable[[Objects], None]:
    def edit(objects: Objects) -> None:
        leader(objects)["resources"]["limits"]["nvidia.com/gpu"] = count
        worker(objects)["resources"]["limits"]["nvidia.com/gpu"] = count
        edit_leader_command("--tensor-parallel-size 8", "--tensor-parallel-size 16")(objects)

    return edit


def run_lint(objects: Objects, **kwargs: Any) -> LintReport:
    return lint(Manifest.from_objects(objects), **kwargs)


def broken_cases(table: list[Broken]) -> list[Any]:
    """The table as pytest params (breakage, code, severity, phrase), each with its id."""
    return [pytest.param(*case[1:], id=case[0]) for case in table]


def assert_rule_fires(breakage: Callable[[Objects], None], code: str, severity: str, phrase: str) -> None:
    """The reference, broken this way, gets findings `code`, all of `severity`, one saying `phrase`."""
    objects = reference()
    breakage(objects)
    report = run_lint(objects)
    matching = [f for f in report.findings if f.code == code]
    assert matching, f"expected {code}, got {[str(f) for f in report.findings]}"
    assert any(phrase in f.message for f in matching), [f.message for f in matching]
    assert {f.severity for f in matching} == {severity}
