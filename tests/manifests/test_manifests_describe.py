"""describe(): what a manifest deploys, read from its objects and its launch command."""

from __future__ import annotations

from manifests import describe, load_variant, parse_manifest
from manifests.describe import is_extended_resource, pod_accelerators
from manifests.launch_command import parse_container


def test_the_seed_describes_as_the_docs_reference_topology() -> None:
    info = describe(load_variant("seed"))
    assert (info.tp, info.pp, info.size, info.world_size) == (8, 2, 2, 16)
    assert (info.gpus_per_pod, info.worker_gpus_per_pod, info.group_gpus) == (8, 8, 16)
    assert info.model == "meta-llama/Meta-Llama-3.1-405B-Instruct"
    assert info.image == info.worker_image == "docker.io/vllm/vllm-openai:latest"
    assert (info.port, info.container_port, info.service_port, info.service_target_port) == (
        8080,
        8080,
        8080,
        8080,
    )
    assert info.restart_policy == "RecreateGroupOnPodRestart"
    assert info.service_name == "vllm-leader"
    assert info.service_selector == {"leaderworkerset.sigs.k8s.io/name": "vllm", "role": "leader"}
    assert info.script_path == "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
    assert info.ray_cluster_size == "$(LWS_GROUP_SIZE)"
    assert info.executor_backend is None
    assert info.launch_profile == "legacy"
    assert info.leader.labels == {"role": "leader"}
    assert info.worker.launch is not None and info.worker.launch.script is not None
    assert info.worker.launch.script.role == "worker"
    assert info.worker.launch.script.args == {"ray-address": "$(LWS_LEADER_ADDRESS)"}


def test_the_pinned_reference_differs_from_the_seed_only_in_image_and_token() -> None:
    seed, ref = describe(load_variant("seed")), describe(load_variant("reference"))
    assert ref.image == "docker.io/vllm/vllm-openai:v0.10.1"
    different = {k for k, v in ref.model_dump().items() if seed.model_dump()[k] != v}
    assert different == {"image", "worker_image", "leader", "worker"}


def test_flag_spellings_are_read_like_vllm_reads_them() -> None:
    for command in (
        "vllm serve m --tensor_parallel_size=4 --pipeline-parallel-size 2",
        "vllm serve m -tp 4 -pp 2",
        "VLLM_HOST_IP=1.2.3.4 exec vllm serve m --tensor-parallel-size=4 --pipeline_parallel_size=2 --enforce-eager",
    ):
        serve = parse_container({"command": ["sh", "-c", command]}).serve
        assert serve is not None, command
        assert (serve.model, serve.value("tensor-parallel-size"), serve.value("pipeline-parallel-size")) == (
            "m",
            "4",
            "2",
        ), command


def test_other_launch_forms_are_read() -> None:
    api_server = parse_container(
        {
            "command": [
                "python3",
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--port",
                "8080",
                "--model",
                "m/x",
                "--tensor-parallel-size",
                "8",
                "--pipeline_parallel_size",
                "2",
            ]
        }
    ).serve
    assert (
        api_server is not None
        and api_server.model == "m/x"
        and api_server.value("pipeline-parallel-size") == "2"
    )
    entrypoint = parse_container({"args": ["m/y", "--headless", "--tensor-parallel-size", "8"]}).serve
    assert entrypoint is not None and entrypoint.model == "m/y" and entrypoint.has("headless")
    chained = parse_container(
        {
            "command": [
                "bash",
                "-c",
                "/w/multi-node-serving.sh leader --ray_cluster_size=2 && "
                "vllm serve m --distributed-executor-backend=ray",
            ]
        }
    )
    assert chained.script is not None and chained.script.args == {"ray-cluster-size": "2"}
    assert chained.serve is not None and chained.serve.value("distributed-executor-backend") == "ray"


def test_what_cannot_be_read_is_none_not_a_default() -> None:
    info = describe(
        parse_manifest("""
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: odd}
spec:
  leaderWorkerTemplate:
    workerTemplate:
      spec:
        containers: [{name: c, image: busybox, command: [sleep, infinity]}]
""")
    )
    assert (info.tp, info.pp, info.model, info.port, info.launch_profile) == (None, None, None, None, None)
    assert (info.size, info.replicas, info.restart_policy) == (1, 1, "RecreateGroupOnPodRestart")
    assert info.service_name is None and info.service_selector is None
    assert info.gpus_per_pod == 0


def test_group_size_in_the_command_is_expanded_like_the_kubelet() -> None:
    info = describe(
        parse_manifest("""
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: mp}
spec:
  leaderWorkerTemplate:
    size: 4
    workerTemplate:
      spec:
        containers:
          - name: c
            image: vllm/vllm-openai:v0.33.0
            command: [sh, -c, "vllm serve m --tensor-parallel-size 8 --pipeline-parallel-size $(LWS_GROUP_SIZE)
              --nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX) --master-addr $(LWS_LEADER_ADDRESS)"]
            resources: {limits: {nvidia.com/gpu: 8}}
""")
    )
    assert (info.tp, info.pp, info.group_gpus, info.launch_profile, info.port) == (8, 4, 32, "mp", 8000)


def test_accelerators_are_every_extended_resource_a_pod_asks_for() -> None:
    """Limits, else requests, summed over containers; never cpu, memory, hugepages or kubernetes.io names."""
    spec = {
        "containers": [
            {
                "resources": {
                    "limits": {"amd.com/gpu": "8", "cpu": "32", "memory": "500Gi", "hugepages-2Mi": "1Gi"},
                    "requests": {"rdma/ib": "1", "amd.com/gpu": "4", "ephemeral-storage": "10Gi"},
                }
            },
            {"resources": {"limits": {"amd.com/gpu": "0", "example.kubernetes.io/thing": "1"}}},
            {"name": "sidecar"},
        ]
    }
    assert pod_accelerators(spec) == {"amd.com/gpu": 8, "rdma/ib": 1}
    assert [
        n for n in ("nvidia.com/gpu", "habana.ai/gaudi", "cpu", "kubernetes.io/x") if is_extended_resource(n)
    ] == [
        "nvidia.com/gpu",
        "habana.ai/gaudi",
    ]
