"""SIGTERM to a serving engine, as vLLM 0.32's API server takes it (measured on its CPU build; its handler cancels
the uvicorn server task and waits for open connections: vllm/entrypoints/launcher.py serve_http): with a stream
in flight, new requests get 500 "cannot schedule new futures after shutdown", the stream gets no more tokens and
never ends, the listener closes and the process runs on until SIGKILL. With nothing in flight it exits 0."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

from engine_testkit import EngineProc, run, serving

from plumbing.wait import NotYet, wait_for
from testbed.engine.server import SHUTDOWN_MESSAGE

SLOW = ["facebook/opt-125m", "--port", "0", "--startup-seconds", "0", "--time-scale", "1"]


def test_after_shut_down_new_requests_get_500_and_the_stream_in_flight_gets_no_more_tokens() -> None:
    async def scenario() -> None:
        async with serving(*SLOW) as (client, server):
            body = {"prompt": "hello", "max_tokens": 1000, "ignore_eos": True, "stream": True}
            stream = await client.post("/v1/completions", json=body)
            assert stream.status == 200
            await stream.content.readline()  # the first token has arrived
            assert server.shut_down() == 1
            refused = await client.post("/v1/completions", json={"prompt": "new", "max_tokens": 2})
            assert refused.status == 500
            assert SHUTDOWN_MESSAGE in json.dumps(await refused.json())
            assert server.runner.core.num_running == 0  # the engine steps no more: nothing reaches the stream
            stream.close()

    run(scenario())


def _connect_refused(port: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            raise NotYet(f"127.0.0.1:{port} still accepts connections")
    except ConnectionRefusedError:
        return


def test_sigterm_with_a_stream_in_flight_closes_the_listener_and_hangs_until_sigkill(tmp_path: Path) -> None:
    eng = EngineProc(tmp_path, *SLOW)
    out = ""
    try:
        port = eng.wait_state("ready")["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            body = json.dumps({"prompt": "hi", "max_tokens": 1000, "ignore_eos": True, "stream": True})
            conn.sendall(
                f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            assert b" 200 " in conn.recv(4096).split(b"\r\n")[0]  # streaming has begun
            eng.proc.send_signal(signal.SIGTERM)
            status = eng.wait_state("stopping", timeout=20)
            assert "1 stream(s) in flight" in status["message"]
            wait_for(lambda: _connect_refused(port), what="the listener to close", timeout=10, interval=0.05)
            assert eng.proc.poll() is None, "the engine exited although a stream was in flight"
        eng.proc.kill()
        assert eng.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        _, out, _ = eng.stop()
    assert "Shutting down FastAPI HTTP server." in out
    assert "Waiting for connections to close." in out


def test_sigterm_with_nothing_in_flight_exits_0(tmp_path: Path) -> None:
    eng = EngineProc(tmp_path, *SLOW)
    eng.wait_state("ready")
    eng.proc.send_signal(signal.SIGTERM)
    assert eng.proc.wait(timeout=20) == 0
    code, out, _ = eng.stop()
    assert code == 0 and "Shutting down FastAPI HTTP server." in out
