"""Start-up lines for every rank and pod, per vLLM version, and the failures vLLM prints."""

from __future__ import annotations

import re

from engine_testkit import setup_for

from testbed.engine.profiles import SCRIPT_ONLINE, SCRIPT_RAY
from testbed.engine.startup_logs import StartupPlan, plan_startup, render

SEED_MODEL = "meta-llama/Meta-Llama-3.1-405B-Instruct"
WEIGHTS = re.compile(r"(Loading model weights took|Model loading took) [0-9.]+ Gi?B")
IPS = ("--node-ip", "10.244.1.5", "--node-ip", "10.244.2.7")


def _plan(
    *extra: str, image: str = "vllm/vllm-openai:v0.10.1", script: str | None = SCRIPT_ONLINE
) -> tuple[StartupPlan, list[str], list[str]]:
    argv = [
        SEED_MODEL,
        "--port",
        "8080",
        "--tensor-parallel-size",
        "8",
        "--pipeline_parallel_size",
        "2",
        "--image",
        image,
        "--ray-cluster-size",
        "2",
        *IPS,
        *extra,
    ]
    if script:
        argv += ["--launch-script", script]
    setup = setup_for(*argv)
    plan = plan_startup(setup.startup)
    leader = [render(e, setup.profile) for e in plan.events if e.pod == 0]
    worker = [render(e, setup.profile) for e in plan.events if e.pod == 1]
    return plan, leader, worker


def test_seed_on_a_vllm_of_its_era_logs_weight_loading_for_all_16_ranks_from_two_nodes() -> None:
    plan, leader, _ = _plan()
    assert plan.ready_at_s is not None and not plan.failed
    weights = [line for line in leader if WEIGHTS.search(line)]
    assert len(weights) == 16
    remote = [w for w in weights if "ip=10.244.2.7)" in w]
    local = [w for w in weights if re.search(r"\(RayWorkerWrapper pid=\d+\) ", w)]
    assert len(remote) == 8 and len(local) == 8  # Ray adds ip= only for actors on another node
    gib = {float(m.group(1)) for w in weights if (m := re.search(r"took ([0-9.]+) GiB", w))}
    assert gib == {round(811.7e9 / 16 / 2**30, 4)} or all(abs(g - 47.25) < 0.05 for g in gib)
    assert all(w.startswith("(EngineCore_DP0 pid=") for w in weights)


def test_the_engine_config_line_names_tp_and_pp() -> None:
    _, leader, _ = _plan()
    config = [line for line in leader if "Initializing a V1 LLM engine (v0.10.1) with config:" in line]
    assert len(config) == 1 and "tensor_parallel_size=8, pipeline_parallel_size=2" in config[0]
    assert re.match(r"^\(EngineCore_DP0 pid=\d+\) INFO \d\d-\d\d \d\d:\d\d:\d\d \[core\.py:\d+\] ", config[0])


def test_ray_cluster_lines_on_leader_and_worker_and_server_start_lines() -> None:
    _, leader, worker = _plan()
    assert "Ray runtime started." in leader
    assert "All ray workers are active and the ray cluster is initialized successfully." in leader
    assert "Ray runtime started." in worker and "Local node IP: 10.244.2.7" in worker
    assert any(line.endswith("Starting vLLM API server 0 on http://0.0.0.0:8080") for line in leader)
    assert leader[-1].endswith("INFO:     Application startup complete.")
    assert any("GPU KV cache size:" in line for line in leader)
    assert any("Maximum concurrency for 131,072 tokens per request:" in line for line in leader)


def test_legacy_log_format_prints_the_docs_line() -> None:
    _, leader, _ = _plan("--log-format", "legacy")
    assert (
        sum("Loading model weights took 47.2" in line and line.rstrip().endswith(" GB") for line in leader)
        == 16
    )


def test_v0_engine_logs_rank_zero_in_the_driver_in_the_legacy_format() -> None:
    setup = setup_for(
        "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "8", "--profile", "v0.6.3"
    )
    plan = plan_startup(setup.startup)
    lines = [render(e, setup.profile) for e in plan.events if e.pod == 0]
    weights = [line for line in lines if WEIGHTS.search(line)]
    assert not plan.failed and len(weights) == 8
    assert re.match(
        r"^INFO \d\d-\d\d \d\d:\d\d:\d\d model_runner\.py:\d+\] Loading model weights took [0-9.]+ GB$",
        weights[0],
    )
    assert all(w.startswith("(VllmWorkerProcess pid=") for w in weights[1:])
    assert any("Uvicorn running on socket ('0.0.0.0', 8000)" in line for line in lines)


def test_v0_multi_node_without_the_script_waits_for_a_placement_group_and_fails() -> None:
    # this era's image has no multi-node script, so no Ray cluster spans the nodes: vLLM starts a local
    # Ray instance and waits for 16 GPUs that one node does not have
    plan, leader, _ = _plan(image="vllm/vllm-openai:v0.6.3", script=None)
    assert any(line.endswith("Started a local Ray instance.") for line in leader)
    assert plan.failed and "Cannot provide a placement group" in (plan.failure or "")


def test_seed_as_written_on_latest_fails_like_current_vllm() -> None:
    plan, leader, worker = _plan(image="docker.io/vllm/vllm-openai:latest")
    assert plan.failed and plan.exit_code == 1
    assert leader[0] == f"bash: {SCRIPT_ONLINE}: No such file or directory"
    assert worker[0] == f"bash: {SCRIPT_ONLINE}: No such file or directory"
    assert any(
        "World size (16) is larger than the number of available GPUs (8) in this node." in line
        for line in leader
    )
    assert any("- ray, set '--distributed-executor-backend ray'." in line for line in leader)
    assert any(
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ParallelConfig" in line
        for line in leader
    )
    assert all(line.startswith("(APIServer pid=") for line in leader if "ValidationError" in line)


def test_latest_with_the_moved_script_and_ray_backend_serves() -> None:
    plan, leader, _ = _plan(
        "--distributed-executor-backend", "ray", image="vllm/vllm-openai:latest", script=SCRIPT_RAY
    )
    assert not plan.failed
    assert sum(bool(WEIGHTS.search(line)) for line in leader) == 16
    assert any(line.endswith("Starting vLLM server on http://0.0.0.0:8080") for line in leader)
    assert all("(EngineCore pid=" in line for line in leader if WEIGHTS.search(line))


def test_a_ray_cluster_that_never_reaches_its_size_times_out_then_vllm_gives_up() -> None:
    plan, leader, _ = _plan("--nodes", "1")
    waits = [line for line in leader if line == "Wait for all ray workers to be active. 1/2 is active"]
    assert len(waits) == 60  # every 5 s for 300 s
    assert "Waiting for all ray workers to be active timed out." in leader
    assert any("Waiting for creating a placement group of specs for" in line for line in leader)
    assert plan.failed and plan.exit_code == 1 and "within 1800 seconds" in (plan.failure or "")
    assert plan.exit_at_s is not None and plan.exit_at_s > 2000


def test_a_model_that_does_not_fit_fails_at_load() -> None:
    setup = setup_for(SEED_MODEL, "--tensor-parallel-size", "8")
    plan = plan_startup(setup.startup)
    assert plan.failed and "CUDA out of memory" in (plan.failure or "")


def test_ray_log_deduplication_collapses_identical_rank_lines() -> None:
    _, leader, _ = _plan("--ray-dedup-logs")
    assert any("[repeated" in line and "x across cluster]" in line for line in leader)
    assert sum(bool(WEIGHTS.search(line)) for line in leader) < 16


def test_multiprocessing_across_nodes_puts_each_nodes_ranks_in_its_own_pod_log() -> None:
    mp = (
        "--tensor-parallel-size",
        "8",
        "--pipeline-parallel-size",
        "2",
        "--distributed-executor-backend",
        "mp",
        "--nnodes",
        "2",
        "--node-rank",
        "0",
        "--master-addr",
        "vllm-0.vllm.default",
        "--profile",
        "latest",
    )
    setup = setup_for(SEED_MODEL, *mp)
    plan = plan_startup(setup.startup)
    assert not plan.failed
    per_pod = {
        pod: [render(e, setup.profile) for e in plan.events if e.pod == pod and WEIGHTS.search(e.message)]
        for pod in (0, 1)
    }
    assert len(per_pod[0]) == 8 and len(per_pod[1]) == 8
    assert all(re.match(r"^\(Worker_PP1_TP\d pid=\d+\) INFO ", line) for line in per_pod[1])
    missing = plan_startup(setup_for(SEED_MODEL, *mp, "--nodes", "1").startup)
    assert missing.failed and "8/16 clients joined" in (missing.failure or "")
    too_old = plan_startup(setup_for(SEED_MODEL, *mp[:-1], "v0.10.1").startup)
    assert too_old.failed and "world_size (16)" in (too_old.failure or "")
