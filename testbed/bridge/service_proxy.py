"""`python -m testbed.bridge.service_proxy --netns NAME`: the kube-proxy of one suite pod (suite_pods.py).

It reads its table from stdin, one JSON line at a time, each the whole table:
`[{"address": A, "port": P, "backends": [["127.0.0.1", L], ...]}, ...]`, and keeps a listener on A:P
*inside* the network namespace NAME for every entry: the pod's Service addresses (its hosts file names them)
and the API server (KUBERNETES_SERVICE_HOST). Each connection goes to the next of the entry's backends, round
robin, dialled in the host's namespace, on loopback only; an entry with no backend closes the connection at
once, as a Service with no ready endpoint refuses it. Prints `ready` after applying each table.

Each listener is opened after joining NAME (setns moves only the calling thread; this process has one) and
the process returns to the host's namespace at once, so every connection it dials is dialled there. Needs
root (setns). Never listens on the host: every listener is in the pod's namespace, which has only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from testbed.bridge.relay import join_netns, setns, splice


class Proxy:
    def __init__(self, netns: str) -> None:
        self._netns = netns
        self._host = os.open("/proc/self/ns/net", os.O_RDONLY)
        self._servers: dict[tuple[str, int], asyncio.Server] = {}
        self._backends: dict[tuple[str, int], list[tuple[str, int]]] = {}
        self._turn = itertools.count()

    def _listen_inside(self, address: str, port: int) -> socket.socket:
        join_netns(self._netns)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock
        finally:
            setns(self._host, "the host's namespace")

    async def apply(self, table: list[dict[str, Any]]) -> None:
        wanted = {(e["address"], int(e["port"])): [(b[0], int(b[1])) for b in e["backends"]] for e in table}
        for key in set(self._servers) - set(wanted):
            self._servers.pop(key).close()
        self._backends = wanted
        for key in wanted:
            if key not in self._servers:
                try:
                    sock = self._listen_inside(*key)
                except OSError as exc:
                    print(f"service-proxy: cannot listen on {key[0]}:{key[1]}: {exc}", file=sys.stderr)
                    continue
                self._servers[key] = await asyncio.start_server(self._handler(key), sock=sock)

    def _handler(
        self, key: tuple[str, int]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(key, reader, writer)

        return handle

    async def _handle(
        self, key: tuple[str, int], client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        backends = self._backends.get(key) or []
        if not backends:
            client_w.close()
            return
        await splice(client_r, client_w, *backends[next(self._turn) % len(backends)])


async def _run(netns: str) -> None:
    proxy = Proxy(netns)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        await proxy.apply(json.loads(line))
        print("ready", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bridge.service_proxy")
    parser.add_argument("--netns", required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args.netns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
