"""The yardstick of ``load.bench.capacity``: the least an aiohttp client can do per streamed event.

    python -m load.bench.minimal --url http://127.0.0.1:PORT --concurrency 64 --requests 1000 \\
        --input-len 16 --output-len 256

One session with ``TCPConnector(limit=0)``, a closed loop of ``--concurrency`` tasks, each reading its
response with ``iter_any()``, noting ``perf_counter()`` per chunk, splitting it into SSE frames and
decoding each frame's JSON (orjson, as ``load run`` uses): the least a client that reads the tokens
does, and the minimal loop the capacity figures of issue 14 were measured with. No timeouts, no
error handling, no records, no read clock. Prints one JSON line: requests done, chunks read, events
decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from time import perf_counter

import aiohttp
from orjson import loads

MODEL = "reference-model"


async def run(url: str, concurrency: int, requests: int, input_len: int, output_len: int) -> dict[str, int]:
    prompt = " ".join(["hello"] * input_len)
    body = json.dumps(
        {
            "model": MODEL,
            "prompt": prompt,
            "max_tokens": output_len,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    counts = {"requests": 0, "chunks": 0, "events": 0}
    remaining = requests
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, read_bufsize=4 * 1024 * 1024) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                times: list[float] = []
                events: list[object] = []
                rest = b""
                async with session.post(url + "/v1/completions", data=body, headers=headers) as response:
                    async for chunk in response.content.iter_any():
                        times.append(perf_counter())
                        *frames, rest = (rest + chunk).split(b"\n\n")
                        for frame in frames:
                            if frame.startswith(b"data: {"):
                                events.append(loads(frame[6:]))
                counts["requests"] += 1
                counts["chunks"] += len(times)
                counts["events"] += len(events)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench.minimal", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--input-len", type=int, default=16)
    parser.add_argument("--output-len", type=int, default=256)
    args = parser.parse_args(argv)
    counts = asyncio.run(run(args.url, args.concurrency, args.requests, args.input_len, args.output_len))
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
