"""The in-cluster examples (docs/examples/conformance-job.yaml, nightly-cronjob.yaml) run the suite's image as
docs/in-cluster.md says: non-root, no home, a read-only root with an emptyDir at /tmp, the namespaced Role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.bridge import suite_image

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def pod_spec(name: str) -> dict[str, Any]:
    for d in documents(name):
        if d["kind"] == "Job":
            return dict(d["spec"]["template"]["spec"])
        if d["kind"] == "CronJob":
            return dict(d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    raise AssertionError(f"{name} has no Job or CronJob")


def test_the_job_has_the_rbac_examples_role() -> None:
    job_role = next(d for d in documents("conformance-job.yaml") if d["kind"] == "Role")
    shipped = next(d for d in documents("rbac-role.yaml") if d["kind"] == "Role")
    assert job_role["rules"] == shipped["rules"]
    assert job_role["metadata"] == shipped["metadata"]


@pytest.mark.parametrize("example", ["conformance-job.yaml", "nightly-cronjob.yaml"])
def test_the_pod_runs_the_suites_image_non_root_on_a_read_only_root(example: str) -> None:
    spec = pod_spec(example)
    container = spec["containers"][0]
    assert suite_image.is_suite_image(container["image"])
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == suite_image.USER
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    assert spec["serviceAccountName"] == "lws-vllm-suite"


def test_the_job_prints_the_report_between_markers() -> None:
    script = pod_spec("conformance-job.yaml")["containers"][0]["args"][0]
    assert "--in-cluster" in script and "--artifacts /tmp/results" in script
    assert "----- BEGIN conformance-report.yaml -----" in script
    assert "exit $code" in script
