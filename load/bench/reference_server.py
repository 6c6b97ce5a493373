"""A streaming OpenAI-compatible server with exactly known timing and chosen faults.

The measuring stick for the client: the self-tests and the capacity benchmark run it in a separate
process. It is not a model of vLLM's speed (that is the testbed's engine simulator); every request is
answered alike: response headers at once, the first token chunk ``ttft_ms`` after the request arrived,
then one chunk every ``itl_ms`` on an absolute schedule (no drift), each with ``tokens_per_chunk``
tokens; then the usage chunk and ``data: [DONE]``. ``max_tokens`` tokens in all (``ignore_eos`` is
implied). With ``ttft_ms == itl_ms == 0`` the whole stream goes out in one write (capacity mode).

A raw socket on the asyncio loop rather than aiohttp.web, so one core serves far faster than a client
reads and the server's own overhead stays small. For each request (keyed by its ``X-Request-Id``) it
records when the request arrived and when each chunk was written, with ``time.perf_counter``
(CLOCK_MONOTONIC, the client's clock), and serves that truth at ``GET /debug/truth`` (with ``--truth``);
``GET /debug/stats`` counts streams and events; ``POST /debug/reset`` clears both.

Faults, per request by a prompt (or last chat message) that starts with ``@fault=NAME``, or for every
request with ``--fault NAME``: ``500``/``429``/``503`` (an error status and vLLM-shaped JSON body),
``close`` (connection closed before any response), ``reset`` (TCP RST after the first chunk),
``malformed`` (a frame that is not JSON after the first chunk), ``truncated`` (the stream ends inside a
frame), ``no_done`` (no ``[DONE]``), ``no_usage`` (no usage chunk), ``error_event`` (an ``{"error":
...}`` frame mid-stream), ``hang`` (headers, then silence until the client gives up); and ``big``, not a
fault: the first chunk's text is 2 MiB in one SSE line (a client with a line-length limit fails it).

    python -m load.bench.reference_server --port 0 --ttft-ms 50 --itl-ms 20   # prints: listening http://...

This module is the CLI and the accept loop; reference_config holds the options and faults,
reference_handlers the routes, reference_stream one streamed response, reference_http the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import sys

from load.bench.reference_config import FAULTS, ServerConfig
from load.bench.reference_handlers import ReferenceServer
from load.bench.reference_http import SO_TIMESTAMPNS, Connection


async def serve(config: ServerConfig, ready: asyncio.Future[int] | None = None) -> None:
    """Serve until cancelled; ``ready`` receives the bound port (else it is printed on stdout)."""
    app = ReferenceServer(config)
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # inherited by accepted sockets
    listener.bind((config.host, config.port))
    listener.listen(4096)
    listener.setblocking(False)
    connections: set[Connection] = set()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            connections.add(Connection(app, sock))

    loop.add_reader(listener.fileno(), accept)
    port = listener.getsockname()[1]
    if ready is not None:
        ready.set_result(port)
    else:
        print(f"listening http://{config.host}:{port}", flush=True)
    gc.collect()
    gc.freeze()
    gc.disable()  # a collector pause would stall every stream at once; the server makes little garbage
    try:
        await asyncio.Event().wait()
    finally:
        loop.remove_reader(listener.fileno())
        listener.close()
        for conn in connections:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench.reference_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--model", default="reference-model")
    parser.add_argument("--fault", choices=FAULTS)
    parser.add_argument("--truth", action="store_true", help="record per-request timing for GET /debug/truth")
    parser.add_argument("--announce", action="store_true", help='print "arrived <id>" for every request')
    parser.add_argument("--barrier", type=int, default=0, help="hold first tokens until N streams are open")
    args = parser.parse_args(argv)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        tokens_per_chunk=args.tokens_per_chunk,
        model=args.model,
        fault=args.fault,
        record_truth=args.truth,
        announce=args.announce,
        barrier=args.barrier,
    )
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
