"""The nightly job examples in docs/examples: valid, least-privilege, and calling the CLI that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reports.cli import build_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
WRITE_VERBS = {"create", "patch", "update", "delete", "deletecollection", "*"}


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def bash_syntax_ok(script: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    done = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def report_flags(script: str) -> list[tuple[str, set[str]]]:
    """(subcommand, --flags) of every `nox ... -s report -- SUB ...` call in a script."""
    joined = script.replace("\\\n", " ")
    return [
        (sub, set(re.findall(r"(--[a-z-]+)", rest)))
        for sub, rest in re.findall(r"-s report -- (render|compare|gate)([^\n|;]*)", joined)
    ]


def known_flags(sub: str) -> set[str]:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return {flag for action in subparsers.choices[sub]._actions for flag in action.option_strings}


def test_the_cronjob_runs_with_namespaced_rights_only() -> None:
    docs = documents("nightly-cronjob.yaml")
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "CronJob"}
    assert {d["metadata"]["namespace"] for d in docs} == {"vllm-bench"}
    binding = kinds["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": kinds["Role"]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": kinds["ServiceAccount"]["metadata"]["name"],
            "namespace": "vllm-bench",
        }
    ]
    resources = {r for rule in kinds["Role"]["rules"] for r in rule["resources"]}
    assert {"leaderworkersets", "services", "pods", "pods/log", "pods/portforward"} <= resources
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in kinds["Role"]["rules"])


def test_the_cronjob_runs_one_night_at_a_time_and_gates_it() -> None:
    cron = next(d for d in documents("nightly-cronjob.yaml") if d["kind"] == "CronJob")
    spec = cron["spec"]
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    assert pod["serviceAccountName"] == "lws-vllm-suite" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    script = container["args"][0]
    bash_syntax_ok(script)
    assert "--in-cluster --namespace vllm-bench" in script
    assert [sub for sub, _ in report_flags(script)] == ["compare", "gate"]
    for sub, flags in report_flags(script):
        assert flags <= known_flags(sub), (sub, flags - known_flags(sub))
    assert "--strict" in dict(report_flags(script))["gate"]  # the nightly default: 'unclear' fails the night
    claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert (
        claim
        == next(d for d in documents("nightly-cronjob.yaml") if d["kind"] == "PersistentVolumeClaim")[
            "metadata"
        ]["name"]
    )


def test_the_optional_cluster_role_only_reads() -> None:
    docs = documents("nightly-rbac-cluster-read.yaml")
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert all(not set(rule["verbs"]) & WRITE_VERBS for rule in role["rules"])


def test_the_ci_workflow_is_scheduled_gated_and_keeps_its_results() -> None:
    workflow = documents("nightly-github-actions.yml")[0]
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "actions": "read"}
    steps = workflow["jobs"]["benchmark"]["steps"]
    scripts = [s["run"] for s in steps if "run" in s]
    for script in scripts:
        bash_syntax_ok(script)
    calls = [call for script in scripts for call in report_flags(script)]
    assert [sub for sub, _ in calls] == ["compare", "gate"]
    for sub, flags in calls:
        assert flags <= known_flags(sub), (sub, flags - known_flags(sub))
    assert "--strict" in dict(calls)["gate"]  # the nightly default: 'unclear' fails the night
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["name"] == "nightly-results"
