"""Helpers for the engine tests: an in-process server on 127.0.0.1, a strict SSE reader, an engine process,
and the log-evidence comparison of a simulated start-up with a real one."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer

from plumbing.wait import NotYet, still_running, wait_for
from suite.conformance.checks import log_evidence
from testbed.engine.app import EngineSetup, build_setup, create_server
from testbed.engine.cli import parse_args
from testbed.engine.fidelity import line_shape_differences, line_shapes, value_differences
from testbed.engine.server import SimServer

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]
# A two-node Ray world as the LWS leader's command gives it: the cluster size and both nodes' IPs.
TWO_RAY_NODES = ("--ray-cluster-size", "2", "--node-ip", "10.244.1.5", "--node-ip", "10.244.2.7")


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
            still_running(
                self.proc,
                "engine",
                lambda: f"in state {seen}; stderr: {self.proc.stderr.read() if self.proc.stderr else ''}",
            )
            raise NotYet(f"status {seen or 'not written yet'}")

        return wait_for(reached, what=f"engine status {' or '.join(states)}", timeout=timeout, interval=0.02)

    def stop(self, grace: float = 20.0) -> tuple[int, str, str]:
        """SIGTERM, then SIGKILL after `grace` seconds, as a kubelet stops a container (an engine with streams in
        flight does not end on SIGTERM, as vLLM 0.32's does not)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


# --- the start-up lines the log-evidence check reads ----------------------------------------------------


def check_patterns() -> tuple[dict[str, re.Pattern[str]], dict[str, re.Pattern[str]]]:
    """The log-evidence check's patterns, read from its module (a pattern it adds is compared too): those
    it reads on any line, and those it reads only on a weight or rank line (the process prefix, Ray's
    repeat count)."""
    found = {n: p for n, p in vars(log_evidence).items() if isinstance(p, re.Pattern)}
    on_rank_lines = {n: found.pop(n) for n in ("ACTOR", "REPEATED") if n in found}
    return found, on_rank_lines


def startup_lines(text: str) -> list[str]:
    """A log up to the server's `Application startup complete.` (requests and shutdown come after)."""
    lines = [log_evidence._strip_cri(line) for line in text.splitlines()]
    end = next((i for i, line in enumerate(lines) if "Application startup complete" in line), len(lines) - 1)
    return lines[: end + 1]


def log_evidence_differences(
    real: dict[str, list[str]], sim: dict[str, list[str]], *, tp: int, pp: int
) -> list[str]:
    """What the log-evidence check concludes from each group's logs (pod -> lines), and, pod by pod, the
    wording of every line it reads (digits folded): differences of the simulator's from the real ones."""

    def conclusions(logs: dict[str, list[str]]) -> dict[str, Any]:
        ev = log_evidence.gather({pod: "\n".join(lines) for pod, lines in logs.items()})
        return {
            "ranks": ev.ranks,
            "nodes": ev.nodes,
            "tp": sorted(ev.tp),
            "pp": sorted(ev.pp),
            "server_started": ev.server_started,
            "ray_ready": ev.ray_ready,
            "errors": ev.errors,
            f"problems (tp {tp}, pp {pp}, {len(logs)} pod(s))": ev.problems(tp=tp, pp=pp, size=len(logs)),
        }

    out = value_differences(conclusions(real), conclusions(sim), "log evidence")
    anywhere, on_rank_lines = check_patterns()
    rank_patterns = [anywhere[n] for n in ("WEIGHTS", "RANK") if n in anywhere]

    def rank_lines(lines: list[str]) -> list[str]:
        return [line for line in lines if any(p.search(line) for p in rank_patterns)]

    for pod in sorted(real.keys() | sim.keys()):
        r, s = real.get(pod, []), sim.get(pod, [])
        out += line_shape_differences(line_shapes(r, anywhere), line_shapes(s, anywhere), f"{pod} log")
        out += line_shape_differences(
            line_shapes(rank_lines(r), on_rank_lines),
            line_shapes(rank_lines(s), on_rank_lines),
            f"{pod} log (weight and rank lines)",
        )
    return out
