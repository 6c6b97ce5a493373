"""`python -m testbed.bridge.relay --netns NAME --listen-port P --target ADDR:PORT`: accept TCP on 127.0.0.1:P
of the host, connect to ADDR:PORT inside the network namespace NAME, and copy bytes both ways.

The listening socket is opened first, in the host's namespace; then the process joins NAME (setns), so
every connection it makes afterwards is made inside. One thread, asyncio: setns moves only the calling
thread, so nothing runs on another. Prints `ready` once listening. Needs root (setns). Started and stopped
by the bridge (testbed/bridge/real_pods.py), one per pod port the host must reach.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


def setns(fd: int, name: str) -> None:
    """Move the calling thread into the network namespace open at ``fd`` (``name`` for the error)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({name}): {os.strerror(err)}")


def join_netns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns(fd, name)
    finally:
        os.close(fd)


async def splice(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, host: str, port: int
) -> None:
    """Carry one client connection to host:port and back; a refused dial closes the client's connection (the
    client sees it closed, as when nothing listens)."""
    try:
        upstream_r, upstream_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _serve(listener: socket.socket, host: str, port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await splice(client_r, client_w, host, port)  # nothing listens there yet: the client sees it closed

    server = await asyncio.start_server(handle, sock=listener)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bridge.relay")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target", required=True, help="ADDR:PORT inside the namespace")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen_port))
    listener.listen(128)
    listener.setblocking(False)
    join_netns(args.netns)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(listener, host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
