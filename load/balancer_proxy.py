"""A small HTTP reverse proxy on 127.0.0.1 that spreads requests over a Service's ready endpoints, as
kube-proxy does for a client inside the cluster: each request goes to an upstream chosen at random.

`kubectl port-forward svc/NAME` resolves the Service to one pod when it starts, so every request through it
reaches one LWS group. This proxy runs in a process of its own (`python -m load.balancer_proxy`), so the load
generator's event loop and clock are not shared with it; the fixture that watches the Service's EndpointSlices
(fixtures/service_balancer.py) starts one `kubectl port-forward pod/<leader>` per ready endpoint and tells the
proxy the current set with `PUT /_balancer/endpoints`.

- any path: to a random upstream; the response (SSE too) streams through chunk by chunk, with the header
  ``x-lws-vllm-endpoint: <pod>``; no upstream: 503 with a JSON error saying so;
- ``GET /_balancer/endpoints``: the current set, ``{"endpoints": [{"pod", "url", "group", "gpus"}, ...]}``;
- ``PUT /_balancer/endpoints``: replace the set (loopback URLs only);
- ``/_balancer/pod/<pod>/<path>``: that one upstream (a leader's own ``/metrics``).

Upstream connections are kept alive for at most KEEPALIVE_S idle: a connection through kubectl port-forward
that sat idle can be dead without a FIN reaching us, and a request written into it then hangs (600 s on
real vLLM before this was set).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from load.balancer_api import ENDPOINT_HEADER, ENDPOINTS_PATH, POD_PREFIX, Upstream, parse_endpoints

KEEPALIVE_S = 2.0
CONNECT_TIMEOUT_S = 30.0
LISTENING = "balancer listening on http://127.0.0.1:{port}"
# RFC 9110 7.6.1 hop-by-hop fields, and what aiohttp sets itself for the response it writes
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)


class Balancer:
    """The endpoint set and the choice among it; `rng` is injectable so tests can seed it."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.upstreams: dict[str, Upstream] = {}
        self.rng = rng or random.Random()

    def replace(self, upstreams: Sequence[Upstream]) -> None:
        self.upstreams = {u.pod: u for u in upstreams}

    def choose(self) -> Upstream | None:
        if not self.upstreams:
            return None
        return self.upstreams[self.rng.choice(sorted(self.upstreams))]

    def listing(self) -> dict[str, object]:
        return {"endpoints": [self.upstreams[p].to_json() for p in sorted(self.upstreams)]}


def make_app(balancer: Balancer) -> web.Application:
    app = web.Application(client_max_size=64 * 1024**2)
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def open_session(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S, limit=0)
        app[session_key] = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close_session(app: web.Application) -> None:
        await app[session_key].close()

    async def endpoints(request: web.Request) -> web.Response:
        if request.method == "PUT":
            try:
                balancer.replace(parse_endpoints(await request.json()))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(balancer.listing())

    async def proxy(request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path_qs
        if request.path.startswith(POD_PREFIX):
            pod, _, rest = request.path.removeprefix(POD_PREFIX).partition("/")
            upstream = balancer.upstreams.get(pod)
            if upstream is None:
                return _error(
                    404, f"no ready endpoint {pod!r}; ready: {sorted(balancer.upstreams) or 'none'}"
                )
            path = (
                "/"
                + rest
                + (f"?{request.rel_url.raw_query_string}" if request.rel_url.raw_query_string else "")
            )
        else:
            upstream = balancer.choose()
            if upstream is None:
                return _error(503, "the Service has no ready endpoints (none to send this request to)")
        return await _forward(app[session_key], request, upstream, path)

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("GET", ENDPOINTS_PATH, endpoints)
    app.router.add_route("PUT", ENDPOINTS_PATH, endpoints)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


async def _forward(
    session: aiohttp.ClientSession, request: web.Request, upstream: Upstream, path: str
) -> web.StreamResponse:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = await request.read()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    try:
        async with session.request(
            request.method, upstream.url + path, headers=headers, data=body or None, timeout=timeout
        ) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for key, value in answer.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            response.headers[ENDPOINT_HEADER] = upstream.pod
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        error = _error(502, f"upstream {upstream.pod} ({upstream.url}): {type(exc).__name__}: {exc}")
        error.headers[ENDPOINT_HEADER] = upstream.pod
        return error


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "BalancerError", "code": status}}, status=status
    )


async def serve(port: int, initial: Sequence[Upstream] = ()) -> None:
    balancer = Balancer()
    balancer.replace(initial)
    runner = web.AppRunner(make_app(balancer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(LISTENING.format(port=bound), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.balancer_proxy", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one, printed)"
    )
    parser.add_argument(
        "--endpoints", default=None, help='initial endpoint set as JSON ({"endpoints": [...]})'
    )
    args = parser.parse_args(argv)
    try:
        initial = parse_endpoints(json.loads(args.endpoints)) if args.endpoints else []
    except ValueError as exc:
        print(f"--endpoints: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(args.port, initial))
    return 0


if __name__ == "__main__":
    from plumbing.exit_codes import run_cli

    sys.exit(run_cli(main, "python -m load.balancer_proxy"))
