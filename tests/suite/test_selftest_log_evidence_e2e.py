"""Log evidence judges a deployment once it serves and every pod has logged its start, whatever probes the
manifest has, and over every group: the reference in two groups (`replicas: 2`) without the leader's readiness
probe passes it. Without the probe the pods are Ready (and the LWS Available) as soon as their containers run,
while the engines are still starting; judged then, the evidence would read "weight-loading lines for 0 ranks
... no server-start line" for a deployment that is only slow (issue 22, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_run_testkit import new_run_id, run_suite, write_manifest

from fixtures import variants
from fixtures.plan import make_plan
from fixtures.settings import Settings
from reports.conformance_report import read_report
from testbed.cluster import TestbedInfo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]
TWO_GROUPS = make_plan(Settings(topology="tp8-pp2-r2"))


def _without_leader_probe(lws: dict[str, object]) -> None:
    for container in variants.template(lws, "leader")["spec"]["containers"]:
        container.pop("readinessProbe", None)


def test_two_groups_without_a_leader_readiness_probe_pass_the_log_evidence_of_both_groups(
    testbed: TestbedInfo, tmp_path: Path
) -> None:
    plan = variants.variant_plan(TWO_GROUPS, _without_leader_probe, "no leader probe")
    lws = next(o for o in plan.objects if o["kind"] == "LeaderWorkerSet")
    assert "readinessProbe" not in variants.template(lws, "leader")["spec"]["containers"][0]
    assert "readiness-probe-missing" in {f.code for f in plan.report.warnings}  # the lint still warns
    manifest = write_manifest(tmp_path / "r2-no-probe.yaml", plan.objects)
    run_id = new_run_id("e")
    run = run_suite(
        "--testbed",
        testbed.name,
        "--manifest",
        manifest,
        "--conformance-profiles",
        "VLLM-MULTINODE",
        "-k",
        "log_evidence",
        tmp_path=tmp_path,
        run_id=run_id,
    )
    assert run.returncode == 0, run.tail(60)
    report = read_report(tmp_path / "artifacts" / run_id / "conformance-report.yaml")
    (test,) = [
        t for t in report.tests if t.name == "test_every_rank_of_every_group_loaded_its_weights_across_nodes"
    ]
    assert (test.outcome, test.figure) == (
        "passed",
        "group 0: 16/16 ranks seen on 2 nodes; group 1: 16/16 ranks seen on 2 nodes",
    ), test
    (multinode,) = report.profiles
    assert multinode.core.result == "success", multinode
    evidence = tmp_path / "artifacts" / run_id / "evidence"
    assert sorted(p.name for p in evidence.iterdir()) == ["group-0.log", "group-1.log"]
