"""How many tokens per second one engine process streams with pacing off: the simulator's own ceiling.

`measure_capacity()` starts `python -m testbed.engine ... --time-scale 0` (one process, so one core for
the engine), waits for its status file to say ready, then runs a small aiohttp client in another process
(`python -m testbed.engine.capacity --client ...`) that keeps `concurrency` streaming completions open for
`seconds`, reads the raw SSE, and checks every stream: frames well formed, `[DONE]` last, the usage equal
to the tokens received. Only 127.0.0.1 is dialled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from plumbing.processes import end_process
from plumbing.wait import NotYet, still_running, wait_for

MODEL = "facebook/opt-125m"


@dataclass(frozen=True)
class CapacityResult:
    tokens: int
    requests: int
    errors: int
    seconds: float
    tokens_per_s: float
    first_error: str | None


async def _one(session, url: str, max_tokens: int) -> tuple[int, str | None]:  # type: ignore[no-untyped-def]
    body = {
        "model": MODEL,
        "prompt": "hello world",
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            return 0, f"HTTP {resp.status}: {(await resp.text())[:200]}"
        raw = await resp.read()
    frames = raw.split(b"\n\n")
    if frames[-1] != b"":
        return 0, "stream does not end with a blank line"
    frames = frames[:-1]
    if frames[-1] != b"data: [DONE]":
        return 0, f"last frame is not [DONE]: {frames[-1][:80]!r}"
    tokens = 0
    usage = None
    for f in frames[:-1]:
        if not f.startswith(b"data: {"):
            return 0, f"malformed frame {f[:80]!r}"
        chunk = json.loads(f[6:])
        if chunk["choices"]:
            tokens += 1
        else:
            usage = chunk["usage"]
    if usage is None or usage["completion_tokens"] != tokens or tokens != max_tokens:
        return tokens, f"usage {usage} does not match {tokens} tokens received (max_tokens {max_tokens})"
    return tokens, None


async def _client(port: int, concurrency: int, seconds: float, max_tokens: int) -> CapacityResult:
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/completions"
    tokens = requests = errors = 0
    first_error: str | None = None
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal tokens, requests, errors, first_error
            while time.perf_counter() < deadline:
                try:
                    n, err = await _one(session, url, max_tokens)
                except (aiohttp.ClientError, json.JSONDecodeError, KeyError) as exc:
                    n, err = 0, f"{type(exc).__name__}: {exc}"
                tokens += n
                requests += 1
                if err is not None:
                    errors += 1
                    first_error = first_error or err

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return CapacityResult(tokens, requests, errors, elapsed, tokens / elapsed, first_error)


def _wait_ready(status: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The engine's bound port once its status file says ready (the suite's one wait helper)."""

    def ready() -> int:
        try:
            st = json.loads(status.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            st = {}
        if st.get("state") == "ready":
            return int(st["port"])
        still_running(proc, "the engine", lambda: f"before it was ready; status: {st}")
        raise NotYet(f"status {st or 'not written yet'}")

    return wait_for(ready, what="the engine to be ready", timeout=timeout, interval=0.05)


def measure_capacity(*, concurrency: int = 64, seconds: float = 3.0, max_tokens: int = 256) -> CapacityResult:
    with tempfile.TemporaryDirectory() as tmp:
        status = Path(tmp) / "status.json"
        engine = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "testbed.engine",
                MODEL,
                "--port",
                "0",
                "--time-scale",
                "0",
                "--startup-seconds",
                "0",
                "--status-file",
                str(status),
                "--quiet",
                "--disable-uvicorn-access-log",
                "--max-num-seqs",
                "256",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            port = _wait_ready(status, engine, timeout=30)
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "testbed.engine.capacity",
                    "--client",
                    "--port",
                    str(port),
                    "--concurrency",
                    str(concurrency),
                    "--seconds",
                    str(seconds),
                    "--max-tokens",
                    str(max_tokens),
                ],
                capture_output=True,
                text=True,
                timeout=seconds + 60,
                check=True,
            )
            return CapacityResult(**json.loads(out.stdout))
        finally:
            end_process(engine)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--client", action="store_true", help="run only the client against --port")
    p.add_argument("--port", type=int)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--max-tokens", type=int, default=256)
    a = p.parse_args()
    if a.client:
        res = asyncio.run(_client(a.port, a.concurrency, a.seconds, a.max_tokens))
    else:
        res = measure_capacity(concurrency=a.concurrency, seconds=a.seconds, max_tokens=a.max_tokens)
    print(json.dumps(asdict(res)))
    return 0 if res.errors == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
