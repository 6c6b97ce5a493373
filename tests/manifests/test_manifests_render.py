"""Topologies, launch profiles and the renderer."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from manifests import (
    TOPOLOGIES,
    Manifest,
    Overrides,
    UnknownTopology,
    describe,
    get_profile,
    get_topology,
    load_variant,
    render,
    to_yaml,
)
from manifests.topologies import Topology


def test_unknown_names_list_the_valid_choices() -> None:
    with pytest.raises(UnknownTopology, match=r"'tp9'; choose one of: tp8-pp2, tp8-pp1, tp4-pp4, tp16-pp1"):
        get_topology("tp9")
    with pytest.raises(ValueError, match=r"choose one of: legacy, current"):
        get_profile("newest")


def test_a_topology_whose_parallelism_does_not_fill_its_group_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"TP 8 x PP 2 = 16, but the group has 1 pods x 8 ranks = 8"):
        Topology(name="bad", tp=8, pp=2, size=1, gpus_per_pod=8, nodes=1, default_model="m", description="")


def test_the_reference_topology_renders_exactly_the_shipped_lws_yaml() -> None:
    assert render("tp8-pp2") == list(load_variant("reference").objects)


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_each_topology_renders_what_it_declares(name: str) -> None:
    topology = TOPOLOGIES[name]
    info = describe(Manifest.from_objects(render(name)))
    assert (info.tp, info.pp, info.size, info.gpus_per_pod) == (
        topology.tp, topology.pp, topology.size, topology.gpus_per_pod
    )  # fmt: skip
    assert info.world_size == info.group_devices, (
        "every rank has a device: 8 GPUs per pod, or a CPU pod per rank"
    )
    assert info.model == topology.default_model
    assert topology.nodes == topology.size


def test_the_mp_profile_starts_every_pod_with_vllm_serve_and_no_ray() -> None:
    info = describe(Manifest.from_objects(render("tp8-pp2", Overrides(profile="mp"))))
    assert info.launch_profile == "mp" and info.script_path is None and info.executor_backend == "mp"
    worker = info.worker.launch.serve if info.worker.launch else None
    assert (
        worker is not None and worker.has("headless") and worker.value("node-rank") == "$(LWS_WORKER_INDEX)"
    )
    assert (
        worker.value("master-addr")
        == "$(LWS_LEADER_ADDRESS)"
        == info.leader.launch.serve.value("master-addr")
    )  # type: ignore[union-attr]


def test_cpu_topologies_ask_for_no_gpu_and_spread_their_pods_over_nodes() -> None:
    lws = render("cpu-tp1-pp2")[0]
    for role in ("leaderTemplate", "workerTemplate"):
        template = lws["spec"]["leaderWorkerTemplate"][role]
        assert "nvidia.com/gpu" not in str(template["spec"]["containers"][0]["resources"])
        anti = template["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ][0]
        assert anti["matchLabelKeys"] == ["leaderworkerset.sigs.k8s.io/group-key"]
        assert anti["topologyKey"] == "kubernetes.io/hostname"


def test_profiles_pick_script_path_backend_flag_and_image() -> None:
    legacy = describe(Manifest.from_objects(render("tp16-pp1", Overrides(profile="legacy"))))
    assert legacy.script_path == "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
    assert (legacy.executor_backend, legacy.image, legacy.launch_profile) == (
        None,
        "docker.io/vllm/vllm-openai:v0.10.1",
        "legacy",
    )
    current = describe(Manifest.from_objects(render("tp16-pp1", Overrides(profile="current"))))
    assert current.script_path == "/vllm-workspace/examples/ray_serving/multi-node-serving.sh"
    assert current.worker.launch is not None and current.worker.launch.script is not None
    assert current.worker.launch.script.path == current.script_path
    assert (current.executor_backend, current.image, current.launch_profile) == (
        "ray",
        "docker.io/vllm/vllm-openai:v0.22.1",
        "current",
    )


def test_an_image_alone_chooses_the_profile_that_starts_on_it() -> None:
    new = describe(Manifest.from_objects(render(overrides=Overrides(image="vllm/vllm-openai:v0.30.0"))))
    assert new.launch_profile == "current"
    old = describe(Manifest.from_objects(render(overrides=Overrides(image="vllm/vllm-openai:v0.9.2"))))
    assert old.launch_profile == "legacy"


def test_overrides_reach_every_object() -> None:
    objects = render(
        "tp4-pp4",
        Overrides(
            model="org/m",
            namespace="bench-1",
            replicas=3,
            lws_name="llama",
            restart_policy="None",
            extra_args=("--max-model-len", "4096", "--served-model-name", "a b"),
        ),
    )
    lws, service = objects
    assert lws["metadata"] == {"name": "llama", "namespace": "bench-1"}
    assert lws["spec"]["replicas"] == 3
    assert lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "None"
    assert service["metadata"] == {"name": "llama-leader", "namespace": "bench-1"}
    assert service["spec"]["selector"] == {"leaderworkerset.sigs.k8s.io/name": "llama", "role": "leader"}
    info = describe(Manifest.from_objects(objects))
    assert (info.model, info.tp, info.pp) == ("org/m", 4, 4)
    serve = info.leader.launch.serve if info.leader.launch else None
    assert serve is not None and serve.value("max-model-len") == "4096"
    assert serve.value("served-model-name") == "a b"


def test_bad_overrides_are_refused_before_rendering() -> None:
    with pytest.raises(ValidationError, match="DNS-1035"):
        Overrides(lws_name="Bad_Name")
    with pytest.raises(ValidationError):
        Overrides(restart_policy="Sometimes")
    with pytest.raises(ValidationError):
        Overrides(replicas=0)
    with pytest.raises(ValidationError):
        Overrides(unknown="x")  # type: ignore[call-arg]


def test_the_token_is_a_secret_reference_never_a_value() -> None:
    lws = next(yaml.safe_load_all(to_yaml(render())))
    for role in ("leaderTemplate", "workerTemplate"):
        (env,) = lws["spec"]["leaderWorkerTemplate"][role]["spec"]["containers"][0]["env"]
        assert env == {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}},
        }


def test_to_yaml_round_trips_and_keeps_gpu_counts_as_strings() -> None:
    objects = render("tp8-pp1")
    text = to_yaml(objects)
    assert list(yaml.safe_load_all(text)) == objects
    assert "nvidia.com/gpu: '8'" in text
    assert "\n---\n" in text


def test_render_returns_fresh_objects_each_time() -> None:
    first = render()
    first[0]["metadata"]["name"] = "changed"
    assert render()[0]["metadata"]["name"] == "vllm"
