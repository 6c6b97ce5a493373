"""`python -m manifests`, run as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from manifests import Manifest, Overrides, lint, render
from manifests.load import REFERENCE_DIR

REPO = Path(__file__).resolve().parents[2]
SEED = REFERENCE_DIR / "seed.yaml"
REFERENCE = REFERENCE_DIR / "lws.yaml"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manifests", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, phrase: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and phrase in lines[0], lines[0]
    assert "Traceback" not in done.stderr


def test_lint_passes_the_reference_and_fails_the_seed_with_the_drift_explained() -> None:
    clean = run("lint", str(REFERENCE))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().endswith("0 error(s), 0 warning(s)")

    seed = run("lint", str(SEED))
    assert seed.returncode == 1, seed.stdout + seed.stderr
    lines = seed.stdout.strip().splitlines()
    assert any(line.startswith("error: script-path") and "PR #41084" in line for line in lines)
    assert any(line.startswith("error: ray-backend-flag") and "PR #25775" in line for line in lines)
    assert any(line.startswith("warning: plain-text-token") for line in lines)
    assert "<your-hf-token>" not in seed.stdout
    assert lines[-1].endswith("2 error(s), 3 warning(s)")


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    assert_one_line_error(run("lint", str(tmp_path / "nope.yaml")), 2, "nope.yaml: no such file")
    assert_one_line_error(run("lint", str(tmp_path / "bad.yaml")), 2, "not valid YAML")
    assert_one_line_error(run("lint", str(tmp_path / "svc.yaml")), 2, "no LeaderWorkerSet")
    assert_one_line_error(run("lint"), 2, "required: file")
    assert_one_line_error(run("lint", str(REFERENCE), "--node-gpus", "0"), 2, "--node-gpus")
    assert_one_line_error(
        run("lint", str(REFERENCE), "--kubeconfig", str(tmp_path / "kc")), 2, "kc: no such file"
    )
    assert_one_line_error(run("render", "--topology", "tp3"), 2, "choose one of: tp8-pp2, tp8-pp1")
    assert_one_line_error(run("render", "--profile", "newest"), 2, "choose one of: legacy, current")


def test_render_prints_yaml_that_loads_and_lints_clean() -> None:
    done = run(
        "render", "--topology", "tp4-pp4", "--profile", "current", "--namespace", "bench", "--model", "org/m"
    )
    assert done.returncode == 0, done.stderr
    objects = list(yaml.safe_load_all(done.stdout))
    assert objects[0]["metadata"] == {"name": "vllm", "namespace": "bench"}
    assert lint(Manifest.from_objects(objects)).findings == ()
    assert objects == render("tp4-pp4", Overrides(profile="current", namespace="bench", model="org/m"))

    seed = run("render", "--variant", "seed")
    assert seed.stdout == SEED.read_text()


def test_topologies_lists_every_topology() -> None:
    done = run("topologies")
    assert done.returncode == 0
    for name in ("tp8-pp2", "tp8-pp1", "tp4-pp4", "tp16-pp1"):
        assert f"\n{name} " in done.stdout


FAKE_KUBECTL = """#!/bin/sh
cat > "$FAKE_KUBECTL_STDIN"
echo "$@" > "$FAKE_KUBECTL_ARGS"
case "$FAKE_KUBECTL_MODE" in
  accept) exit 0 ;;
  reject) echo 'The LeaderWorkerSet "vllm" is invalid: spec.leaderWorkerTemplate.size: Invalid value: 0' >&2; exit 1 ;;
  down) echo 'The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?' >&2
        exit 1 ;;
  nocrd) echo 'error: resource mapping not found for name: "vllm" namespace: "" from "STDIN": no matches for kind "LeaderWorkerSet" in version "leaderworkerset.x-k8s.io/v1"' >&2
         exit 1 ;;
esac
"""


def test_lint_runs_a_server_dry_run_through_kubectl(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_KUBECTL_STDIN": str(tmp_path / "stdin"),
        "FAKE_KUBECTL_ARGS": str(tmp_path / "args"),
    }
    base = ("lint", str(REFERENCE), "--kubeconfig", str(kubeconfig), "--context", "kind-x")

    accepted = run(*base, env={**env, "FAKE_KUBECTL_MODE": "accept"})
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    args = (tmp_path / "args").read_text()
    assert f"--kubeconfig {kubeconfig}" in args and "--context kind-x" in args
    assert "apply --dry-run=server -f -" in args
    assert list(yaml.safe_load_all((tmp_path / "stdin").read_text())) == render()

    rejected = run(*base, env={**env, "FAKE_KUBECTL_MODE": "reject"})
    assert rejected.returncode == 1
    assert "error: dry-run: the API server rejects the manifest: The LeaderWorkerSet" in rejected.stdout

    assert_one_line_error(run(*base, env={**env, "FAKE_KUBECTL_MODE": "down"}), 3, "cannot reach the cluster")
    assert_one_line_error(run(*base, env={**env, "FAKE_KUBECTL_MODE": "nocrd"}), 3, "no LeaderWorkerSet CRD")
