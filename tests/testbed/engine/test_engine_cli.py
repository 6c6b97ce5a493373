"""The engine as a process: vllm-serve flags, bad input, CRI logs for leader and worker, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from engine_testkit import REPO, TWO_RAY_NODES, EngineProc

from plumbing.wait import NotYet, wait_for
from testbed.engine.signals import PEER_LOST_SIGNAL

SEED = [
    "meta-llama/Meta-Llama-3.1-405B-Instruct",
    "--port",
    "0",
    "--tensor-parallel-size",
    "8",
    "--pipeline_parallel_size",
    "2",
    "--launch-script",
    "/vllm-workspace/examples/online_serving/multi-node-serving.sh",
    *TWO_RAY_NODES,
    "--time-scale",
    "0.001",
    "--quiet",
]
CRI = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F (.*)$")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed.engine", *argv], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def _cri_lines(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        m = CRI.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append(m.group(1))
    return out


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(port: int, path: str, body: dict[str, object]) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["nobody/unknown-model"], "unknown model 'nobody/unknown-model'"),
        (["facebook/opt-125m", "--time-scale", "fast"], "--time-scale"),
        (["--port", "1"], "no model given"),
        (["facebook/opt-125m", "--gpu", "B300"], "unknown GPU 'B300'; known: H100, H200, A100"),
        (["facebook/opt-125m", "--interconnect", "carrier-pigeon"], "unknown interconnect"),
        (["facebook/opt-125m", "--gpu-memory-utilization", "1.5"], "fraction"),
        (["facebook/opt-125m", "--profile", "v-next"], "cannot read a vLLM version"),
        (["facebook/opt-125m", "--log-file", "/proc/nope/leader.log"], "cannot open a log or status file"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv: list[str], fragment: str) -> None:
    res = _run(*argv)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_seed_on_its_era_serves_and_writes_cri_logs_for_leader_and_worker(tmp_path: Path) -> None:
    leader_log, worker_log = tmp_path / "vllm-0.log", tmp_path / "vllm-0-1.log"
    eng = EngineProc(
        tmp_path,
        *SEED,
        "--image",
        "vllm/vllm-openai:v0.10.1",
        "--log-file",
        str(leader_log),
        "--worker-log-file",
        str(worker_log),
        "--some-future-vllm-flag",
        "7",
    )
    try:
        port = eng.wait_state("ready")["port"]
        assert _get(port, "/health") == (200, b"")
        status, body = _post(
            port,
            "/v1/completions",
            {
                "model": "meta-llama/Meta-Llama-3.1-405B-Instruct",
                "prompt": "San Francisco is a",
                "max_tokens": 7,
            },
        )
        assert status == 200 and json.loads(body)["usage"]["completion_tokens"] >= 1
    finally:
        code, _, err = eng.stop()
    assert code == 0
    assert "warning: ignoring vLLM flag the simulator does not model: --some-future-vllm-flag" in err
    leader = _cri_lines(leader_log)
    weights = [
        line
        for line in leader
        if re.search(r"(Loading model weights took|Model loading took) [0-9.]+ Gi?B", line)
    ]
    assert len(weights) == 16 and sum("ip=10.244.2.7" in w for w in weights) == 8
    assert any('"POST /v1/completions HTTP/1.1" 200 OK' in line for line in leader)
    assert leader[-1].endswith("INFO:     Finished server process [" + leader[-1].split("[")[-1])
    assert "Ray runtime started." in _cri_lines(worker_log)


def test_seed_as_written_on_latest_exits_1_with_vllms_message(tmp_path: Path) -> None:
    leader_log = tmp_path / "vllm-0.log"
    eng = EngineProc(
        tmp_path, *SEED, "--image", "docker.io/vllm/vllm-openai:latest", "--log-file", str(leader_log)
    )
    eng.proc.wait(timeout=60)  # start-up failures end the process on their own
    code, _, _ = eng.stop()
    assert code == 1
    status = eng.read_status()
    assert status["state"] == "failed" and status["exit_code"] == 1 and "World size (16)" in status["message"]
    text = "\n".join(_cri_lines(leader_log))
    assert "No such file or directory" in text
    assert "World size (16) is larger than the number of available GPUs (8) in this node." in text


def test_an_engine_that_dies_on_a_request_turns_unhealthy_and_exits_1(tmp_path: Path) -> None:
    eng = EngineProc(
        tmp_path,
        "facebook/opt-125m",
        "--port",
        "0",
        "--time-scale",
        "0",
        "--startup-seconds",
        "0",
        "--fail-after-requests",
        "2",
    )
    port = eng.wait_state("ready")["port"]
    assert _post(port, "/v1/completions", {"prompt": "ok", "max_tokens": 2})[0] == 200
    status, body = _post(port, "/v1/completions", {"prompt": "boom", "max_tokens": 2})
    assert status == 500 and b"EngineCore encountered an issue" in body
    assert eng.wait_state("failed")["exit_code"] == 1
    code, out, _ = eng.stop()
    assert code == 1
    assert "EngineCore encountered a fatal error." in out and "EngineDeadError" in out
    assert _get_refused(port)


def _get_refused(port: int) -> bool:
    try:
        _get(port, "/health")
    except OSError:
        return True
    return False


def _request_fails(port: int) -> bool:
    """A completion fails as real vLLM's do once its engine is dead: 500 EngineDeadError, or no server."""
    try:
        status, body = _post(port, "/v1/completions", {"prompt": "after", "max_tokens": 2})
    except OSError:
        return True
    return status == 500 and b"EngineCore encountered an issue" in body


def test_an_engine_that_loses_a_node_of_its_group_stops_serving_and_exits_0(tmp_path: Path) -> None:
    """The bridge signals a lost peer (a worker pod deleted or crashed). As real vLLM's leader (CPU build,
    tests/testbed/engine/test_fidelity_peer_loss.py), the engine does not notice until a model step needs the lost
    ranks: /health still answers 200, the next request waits out the execute-model timeout, then the engine core
    dies, requests fail with EngineDeadError and the server stops itself: exit 0, as vLLM's did."""
    leader_log = tmp_path / "vllm-0.log"
    eng = EngineProc(
        tmp_path, *SEED, "--image", "vllm/vllm-openai:v0.10.1", "--log-file", str(leader_log),
        "--execute-model-timeout", "1",
    )  # fmt: skip
    try:
        port = eng.wait_state("ready")["port"]
        assert _post(port, "/v1/completions", {"prompt": "before", "max_tokens": 2})[0] == 200
        eng.proc.send_signal(PEER_LOST_SIGNAL)

        def told() -> None:  # the signal is taken on the engine's event loop, a moment later
            if "a node of the group went away" not in str(eng.read_status().get("message")):
                raise NotYet(f"status {eng.read_status()}")

        wait_for(told, what="the engine to take the lost peer", timeout=10, interval=0.02)
        assert _get(port, "/health")[0] == 200
        sent = time.monotonic()
        assert _request_fails(port)
        assert time.monotonic() - sent >= 1.0, "the request failed before the execute-model timeout"
        eng.proc.wait(timeout=20)
    finally:
        code, _, _ = eng.stop()
    assert code == 0
    text = "\n".join(_cri_lines(leader_log))
    assert "EngineCore encountered a fatal error." in text and "execute_model timed out" in text
    assert _get_refused(port)


def test_an_engine_that_loses_a_node_during_start_up_fails_its_start_up(tmp_path: Path) -> None:
    argv = [a if a != "0.001" else "0.05" for a in SEED]  # a start-up slow enough to interrupt
    eng = EngineProc(tmp_path, *argv, "--image", "vllm/vllm-openai:v0.10.1")
    eng.wait_state("starting")
    eng.proc.send_signal(PEER_LOST_SIGNAL)
    eng.proc.wait(timeout=20)
    code, _, _ = eng.stop()
    assert code == 1
    assert "a node of the group went away" in eng.read_status()["message"]
