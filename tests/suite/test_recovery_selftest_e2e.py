"""The recreate-the-group checks fail on a deployment that does not recreate the group: the reference manifest
with restartPolicy None, where LWS replaces only the deleted pod. Meanwhile the leader stops serving, as real
vLLM does when a node of its group goes away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.cluster import TestbedInfo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]
REPO = Path(__file__).parents[2]


def test_restart_policy_none_fails_the_recreate_check_saying_only_one_pod_was_replaced(
    testbed: TestbedInfo, tmp_path: Path
) -> None:
    manifest = tmp_path / "none.yaml"
    rendered = subprocess.run(
        [sys.executable, "-m", "manifests", "render", "--restart-policy", "None"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    manifest.write_text(rendered.stdout)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suite/conformance/test_restart_recovery.py",
            "-p",
            "no:cacheprovider",
            "-q",
            "--testbed",
            testbed.name,
            "--manifest",
            str(manifest),
            "--artifacts",
            str(tmp_path / "artifacts"),
            "-k",
            "recreates_the_whole_group and delete-worker",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert (
        "after delete-worker on vllm-0-1, only ['vllm-0-1'] was replaced; ['vllm-0'] kept their UIDs"
        in run.stdout
    )
    assert "1 failed" in run.stdout
    # The simulated leader stops serving once its worker is gone, as real vLLM does (measured on the CPU build
    # with restartPolicy None: every request failed until the group was recreated); it used to serve on.
    (result,) = (tmp_path / "artifacts").glob("*/result.json")
    (recovery,) = json.loads(result.read_text())["recovery"]
    assert recovery["requests_sent"] and recovery["requests_failed"], recovery
