"""The preflight lint: the reference is clean, and each rule fires on a manifest wrong in its way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from manifests import Manifest, NodeCapacity, Overrides, lint, load_variant, parse_manifest, render
from manifests.lint import LintReport

Objects = list[dict[str, Any]]


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


def test_the_reference_and_every_topology_in_both_profiles_pass_clean() -> None:
    assert run_lint(list(load_variant("reference").objects)).findings == ()
    for topology in ("tp8-pp2", "tp8-pp1", "tp4-pp4", "tp16-pp1"):
        for profile in ("legacy", "current"):
            report = run_lint(render(topology, Overrides(profile=profile)))
            assert report.findings == (), (topology, profile, [str(f) for f in report.findings])


BROKEN: list[tuple[str, Callable[[Objects], None], str, str, str]] = [
    # (id, how it is broken, code, severity, a phrase the message must hold)
    (
        "tp-not-matching-gpus",
        edit_leader_command("--tensor-parallel-size 8", "--tensor-parallel-size 4"),
        "parallelism-mismatch",
        "error",
        "TP 4 x PP 2 = 8 GPUs, but the group has 16",
    ),
    (
        "pp-underscore-spelling-read",
        edit_leader_command("--pipeline_parallel_size 2", "--pipeline_parallel_size 4"),
        "parallelism-mismatch",
        "error",
        "PP 4",
    ),
    (
        "ray-cluster-size-literal",
        edit_leader_command("$(LWS_GROUP_SIZE)", "3"),
        "ray-cluster-size",
        "error",
        "--ray_cluster_size=3",
    ),
    (
        "pod-bigger-than-node",
        set_gpus("16"),
        "gpu-exceeds-node",
        "error",
        "asks for 16 GPUs but a node has 8",
    ),
    (
        "gpu-requests-differ-from-limits",
        lambda o: leader(o)["resources"]["requests"].__setitem__("nvidia.com/gpu", "4"),
        "extended-resource-limits",
        "error",
        "requests 4 != limits 8",
    ),
    (
        "gpu-requests-without-limits",
        lambda o: leader(o)["resources"]["requests"].__setitem__(
            "nvidia.com/gpu", leader(o)["resources"]["limits"].pop("nvidia.com/gpu")
        ),
        "extended-resource-limits",
        "error",
        "without a limit",
    ),
    (
        "service-selects-workers",
        lambda o: selector(o).pop("role"),
        "service-selects-workers",
        "error",
        "also matches worker pods",
    ),
    (
        "service-without-name-label",
        lambda o: selector(o).pop("leaderworkerset.sigs.k8s.io/name"),
        "service-selector-name",
        "error",
        "lacks leaderworkerset.sigs.k8s.io/name: vllm",
    ),
    (
        "service-names-another-lws",
        lambda o: selector(o).__setitem__("leaderworkerset.sigs.k8s.io/name", "other"),
        "service-selector-name",
        "error",
        "lacks leaderworkerset.sigs.k8s.io/name: vllm",
    ),
    (
        "service-label-not-on-leader",
        lambda o: selector(o).__setitem__("role", "head"),
        "service-selects-no-leader",
        "error",
        "matches no leader pod",
    ),
    (
        "worker-carries-leader-label",
        lambda o: o[0]["spec"]["leaderWorkerTemplate"]["workerTemplate"].__setitem__(
            "metadata", {"labels": {"role": "leader"}}
        ),
        "service-selects-workers",
        "error",
        "also matches worker pods",
    ),
    (
        "service-wrong-target-port",
        lambda o: o[1]["spec"]["ports"][0].__setitem__("targetPort", 8000),
        "service-port",
        "error",
        "port 8000, but vLLM listens on 8080",
    ),
    ("no-service", lambda o: o.pop(1), "service-missing", "warning", "no Service for LWS 'vllm'"),
    (
        "restart-policy-none",
        lambda o: o[0]["spec"]["leaderWorkerTemplate"].__setitem__("restartPolicy", "None"),
        "restart-policy",
        "warning",
        "restartPolicy is None",
    ),
    (
        "restart-policy-default",
        lambda o: o[0]["spec"]["leaderWorkerTemplate"].__setitem__("restartPolicy", "Default"),
        "restart-policy",
        "warning",
        "turns Default into None",
    ),
    (
        "floating-image",
        set_images("docker.io/vllm/vllm-openai:latest"),
        "image-unpinned",
        "warning",
        "floating tag",
    ),
    (
        "legacy-script-on-new-image",
        set_images("docker.io/vllm/vllm-openai:v0.22.1"),
        "script-path",
        "error",
        "moved by vLLM PR #41084",
    ),
    (
        "legacy-script-on-image-around-the-move",
        set_images("vllm/vllm-openai:v0.21.0"),
        "script-path",
        "warning",
        "cannot tell which it has",
    ),
    (
        "image-older-than-the-script",
        set_images("vllm/vllm-openai:v0.7.2"),
        "script-path",
        "error",
        "predates multi-node-serving.sh",
    ),
    (
        "no-ray-flag-on-0.11.1",
        set_images("docker.io/vllm/vllm-openai:v0.11.1"),
        "ray-backend-flag",
        "error",
        "World size (16) is larger than the number of available GPUs (8)",
    ),
    (
        "leader-and-worker-images-differ",
        lambda o: worker(o).__setitem__("image", "docker.io/vllm/vllm-openai:v0.10.2"),
        "image-mismatch",
        "warning",
        "different images",
    ),
    (
        "token-in-plain-text",
        lambda o: leader(o).__setitem__("env", [{"name": "HF_TOKEN", "value": "hf_" + "Ab1" * 12}]),
        "plain-text-token",
        "warning",
        "sets HF_TOKEN in plain text (<redacted, 39 characters>)",
    ),
    (
        "token-like-value-under-any-name",
        lambda o: worker(o).__setitem__("env", [{"name": "HUB_X", "value": "hf_" + "Zz9" * 10}]),
        "plain-text-token",
        "warning",
        "sets HUB_X in plain text",
    ),
    (
        "no-dev-shm-on-worker",
        lambda o: worker(o).pop("volumeMounts"),
        "shm-missing",
        "warning",
        "the worker has no /dev/shm volume",
    ),
    (
        "dev-shm-tiny",
        lambda o: pod_spec(o, "leader")["volumes"][0]["emptyDir"].__setitem__("sizeLimit", "64Mi"),
        "shm-small",
        "warning",
        "limited to 64Mi",
    ),
    (
        "dev-shm-on-disk",
        lambda o: pod_spec(o, "leader")["volumes"][0]["emptyDir"].pop("medium"),
        "shm-not-memory",
        "warning",
        "not an emptyDir with medium: Memory",
    ),
    (
        "no-readiness-probe",
        lambda o: leader(o).pop("readinessProbe"),
        "readiness-probe-missing",
        "warning",
        "no readinessProbe",
    ),
    (
        "probe-on-wrong-port",
        lambda o: leader(o)["readinessProbe"]["tcpSocket"].__setitem__("port", 8000),
        "readiness-probe-port",
        "warning",
        "checks port 8000, but vLLM listens on 8080",
    ),
    (
        "command-without-vllm-serve",
        lambda o: leader(o).__setitem__("command", ["sleep", "infinity"]),
        "command-unreadable",
        "warning",
        "found no `vllm serve`",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "code", "severity", "phrase"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_each_rule_fails_on_a_manifest_wrong_in_its_way(
    breakage: Callable[[Objects], None], code: str, severity: str, phrase: str
) -> None:
    objects = reference()
    breakage(objects)
    report = run_lint(objects)
    matching = [f for f in report.findings if f.code == code]
    assert matching, f"expected {code}, got {[str(f) for f in report.findings]}"
    assert any(phrase in f.message for f in matching), [f.message for f in matching]
    assert {f.severity for f in matching} == {severity}


def test_a_token_value_never_appears_in_findings() -> None:
    token = "hf_" + "Secret7" * 6
    objects = reference()
    leader(objects)["env"] = [{"name": "HF_TOKEN", "value": token}]
    report = run_lint(objects)
    assert "plain-text-token" in report.codes()
    assert token not in "\n".join(str(f) for f in report.findings)
    assert token[3:12] not in report.model_dump_json()


def test_boundary_releases_for_the_ray_flag_and_the_script_move() -> None:
    assert run_lint(render(overrides=Overrides(image="docker.io/vllm/vllm-openai:v0.11.0"))).findings == ()
    assert (
        run_lint(
            render(
                overrides=Overrides(
                    image="vllm/vllm-openai:v0.19.1",
                    profile="legacy",
                    extra_args=("--distributed-executor-backend", "ray"),
                )
            )
        ).findings
        == ()
    )
    too_new = run_lint(render(overrides=Overrides(image="vllm/vllm-openai:v0.11.1", profile="current")))
    assert [f.code for f in too_new.errors] == ["script-path"]
    assert "older than vLLM PR #41084" in too_new.errors[0].message


def test_the_seed_is_explained_why_it_no_longer_starts() -> None:
    report = lint(load_variant("seed"))
    assert not report.ok
    by_code = {f.code: f for f in report.findings}
    assert {"image-unpinned", "script-path", "ray-backend-flag", "plain-text-token"} <= set(by_code)
    assert by_code["script-path"].severity == "error"
    assert "leader and worker run /vllm-workspace/examples/online_serving/multi-node-serving.sh" in (
        by_code["script-path"].message
    )
    assert "examples/ray_serving/multi-node-serving.sh" in by_code["script-path"].message
    assert "PR #25775" in by_code["ray-backend-flag"].message
    assert "--distributed-executor-backend ray" in by_code["ray-backend-flag"].message


def test_the_restart_policy_contrast_variant_only_warns() -> None:
    report = run_lint(reference(restart_policy="None"))
    assert report.ok
    assert report.codes() == {"restart-policy"}


def test_a_single_node_group_needs_no_group_restart_and_no_worker_routing() -> None:
    objects = render("tp8-pp1", Overrides(restart_policy="None"))
    selector(objects).pop("role")
    assert run_lint(objects).findings == ()


def test_lws_name_limit_depends_on_replicas() -> None:
    assert run_lint(reference(lws_name="a" * 51)).findings == ()
    assert run_lint(reference(lws_name="a" * 52)).codes() == {"lws-name-too-long"}
    assert run_lint(reference(lws_name="a" * 50, replicas=10)).findings == ()
    long_for_ten = run_lint(reference(lws_name="a" * 51, replicas=10))
    assert long_for_ten.codes() == {"lws-name-too-long"}
    assert "the limit is 50" in long_for_ten.errors[0].message


def test_node_capacity_is_checked_when_given() -> None:
    assert run_lint(reference(), capacity=NodeCapacity(gpus_per_node=8, nodes=2)).findings == ()
    short = run_lint(reference(replicas=2), capacity=NodeCapacity(gpus_per_node=8, nodes=3))
    assert short.codes() == {"not-enough-nodes"}
    assert "need 4 nodes" in short.errors[0].message
    small_nodes = run_lint(reference(), capacity=NodeCapacity(gpus_per_node=4))
    assert small_nodes.codes() == {"gpu-exceeds-node"}


def test_the_dry_run_hook_gets_the_yaml_and_its_errors_become_findings() -> None:
    seen: list[str] = []

    def dry_run(text: str) -> list[str]:
        seen.append(text)
        return ['LeaderWorkerSet.leaderworkerset.x-k8s.io "vllm" is invalid: spec.replicas: Invalid value']

    objects = reference()
    report = run_lint(objects, dry_run=dry_run)
    assert list(yaml.safe_load_all(seen[0])) == objects
    assert [f.code for f in report.errors] == ["dry-run"]
    assert "spec.replicas: Invalid value" in report.errors[0].message
    assert run_lint(objects, dry_run=lambda _text: []).findings == ()


DOCS_MP_MANIFEST = """
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: vllm}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    restartPolicy: RecreateGroupOnPodRestart
    leaderTemplate:
      metadata: {labels: {role: leader}}
      spec:
        containers:
          - name: vllm-leader
            image: docker.io/vllm/vllm-openai:v0.33.0
            command: [sh, -c, "vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct --tensor-parallel-size 8
              --pipeline-parallel-size $(LWS_GROUP_SIZE) --nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX)
              --master-addr $(LWS_LEADER_ADDRESS) --port 8080"]
            resources: {limits: {nvidia.com/gpu: "8"}}
            ports: [{containerPort: 8080}]
            readinessProbe: {tcpSocket: {port: 8080}}
            volumeMounts: [{mountPath: /dev/shm, name: dshm}]
        volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: 15Gi}}]
    workerTemplate:
      spec:
        containers:
          - name: vllm-worker
            image: docker.io/vllm/vllm-openai:v0.33.0
            command: [sh, -c, "vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct --tensor-parallel-size 8
              --pipeline-parallel-size $(LWS_GROUP_SIZE) --nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX)
              --master-addr $(LWS_LEADER_ADDRESS) --headless"]
            resources: {limits: {nvidia.com/gpu: "8"}}
            volumeMounts: [{mountPath: /dev/shm, name: dshm}]
        volumes: [{name: dshm, emptyDir: {medium: Memory, sizeLimit: 15Gi}}]
---
apiVersion: v1
kind: Service
metadata: {name: vllm-leader}
spec:
  ports: [{name: http, port: 8080, targetPort: 8080}]
  selector: {leaderworkerset.sigs.k8s.io/name: vllm, role: leader}
"""


def test_the_current_docs_multiprocessing_launch_needs_no_ray_flag() -> None:
    report = lint(parse_manifest(DOCS_MP_MANIFEST, source="docs-mp.yaml"))
    assert report.findings == (), [str(f) for f in report.findings]


# vLLM's own multi-node launch (mp) ------------------------------------------------------------------------
def _mp_codes(edit: str, replacement: str, role: str = "both") -> set[str]:
    from manifests.manifest import Manifest
    from manifests.render import render

    objects = render("cpu-tp1-pp2")
    templates = objects[0]["spec"]["leaderWorkerTemplate"]
    for key in ("leaderTemplate", "workerTemplate"):
        if role in ("both", key):
            container = templates[key]["spec"]["containers"][0]
            container["command"][-1] = container["command"][-1].replace(edit, replacement)
    return lint(Manifest.from_objects(objects)).codes()


def test_the_mp_launch_as_rendered_passes() -> None:
    assert _mp_codes("", "") == set()


def test_an_mp_node_count_other_than_the_group_size_is_an_error() -> None:
    assert "mp-nnodes" in _mp_codes("--nnodes $(LWS_GROUP_SIZE)", "--nnodes 3")


def test_an_mp_worker_that_is_not_headless_or_takes_the_leaders_rank_is_an_error() -> None:
    assert "mp-worker" in _mp_codes(" --headless", "", role="workerTemplate")
    assert "mp-worker" in _mp_codes("--node-rank $(LWS_WORKER_INDEX)", "--node-rank 0", role="workerTemplate")


def test_mp_pods_naming_different_master_addresses_is_an_error() -> None:
    assert "mp-master-addr" in _mp_codes(
        "--master-addr $(LWS_LEADER_ADDRESS)", "--master-addr 10.0.0.1", role="workerTemplate"
    )


def test_mp_ranks_per_pod_must_match_the_pods_devices() -> None:
    codes = _mp_codes("--tensor-parallel-size 1", "--tensor-parallel-size 2")  # 4 ranks over 2 CPU pods
    assert codes & {"mp-ranks-per-pod", "parallelism-mismatch"}
