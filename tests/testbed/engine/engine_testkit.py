"""Helpers for the engine tests: an in-process server on 127.0.0.1, a strict SSE reader, an engine process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer

from testbed.engine.app import EngineSetup, build_setup, create_server
from testbed.engine.cli import parse_args
from testbed.engine.server import SimServer
from testbed.wait import NotYet, wait_for

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]


def setup_for(*argv: str) -> EngineSetup:
    return build_setup(parse_args(list(argv)))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def serving(*argv: str) -> AsyncIterator[tuple[TestClient, SimServer]]:
    """The simulator's app behind a test server on 127.0.0.1 (no start-up phase: it serves at once)."""
    server = create_server(setup_for(*argv))
    client = TestClient(TestServer(server.app(), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, server
    finally:
        await client.close()


def parse_sse(raw: bytes) -> list[Any]:
    """Strictly split a raw SSE body: every frame `data: <json>` and the last exactly `data: [DONE]`."""
    assert raw.endswith(b"\n\n"), f"stream does not end with a blank line: {raw[-40:]!r}"
    frames = raw[:-2].split(b"\n\n")
    out: list[Any] = []
    for i, f in enumerate(frames):
        assert f.startswith(b"data: "), f"frame {i} is not an SSE data frame: {f[:60]!r}"
        payload = f[len(b"data: ") :]
        if payload == b"[DONE]":
            assert i == len(frames) - 1, "[DONE] is not the last frame"
            out.append("[DONE]")
        else:
            out.append(json.loads(payload))
    assert out and out[-1] == "[DONE]", "the stream has no [DONE] frame"
    return out


class EngineProc:
    """`python -m testbed.engine ...` as a subprocess, with its status file for readiness."""

    def __init__(self, tmp: Path, *argv: str) -> None:
        self.status = tmp / "status.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.engine", *argv, "--status-file", str(self.status)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_state(self, *states: str, timeout: float = 30.0) -> dict[str, Any]:
        """The status once it is one of `states`; fails at once if the process exits in another state."""

        def reached() -> dict[str, Any]:
            seen = self.read_status()
            if seen.get("state") in states:
                return seen
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(
                    f"engine exited {self.proc.returncode} in state {seen}; stderr: {stderr}"
                )
            raise NotYet(f"status {seen or 'not written yet'}")

        return wait_for(reached, what=f"engine status {' or '.join(states)}", timeout=timeout, interval=0.02)

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err
