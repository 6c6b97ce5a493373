"""Before a sweep's load: does the endpoint answer and serve the model (``probe_endpoint``), and a level's
connections opened ahead of its first burst (``warm_connections``)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from load.config import SweepConfig


class EndpointUnreachable(RuntimeError):
    """No connection to the endpoint (refused, timed out, unresolvable)."""


class ModelNotServed(ValueError):
    """The endpoint answers but does not serve the model asked for."""


async def probe_endpoint(session: aiohttp.ClientSession, config: SweepConfig) -> str | None:
    """Check the endpoint answers and serves the model; return the vLLM version if it says."""
    timeout = aiohttp.ClientTimeout(total=config.timeouts.probe_s)
    try:
        async with session.get(
            config.base_url + "/v1/models", headers=dict(config.headers), timeout=timeout
        ) as r:
            models = await r.json(content_type=None) if r.status == 200 else None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise EndpointUnreachable(
            f"cannot reach {config.endpoint} ({type(exc).__name__}: {exc}); is the server up and the port forwarded?"
        ) from None
    except ValueError:
        models = None
    served = _model_ids(models)
    if served is not None and config.model not in served:
        raise ModelNotServed(
            f"{config.endpoint} does not serve model {config.model!r}; it serves: {', '.join(served) or 'nothing'}"
        )
    try:
        async with session.get(config.base_url + "/version", timeout=timeout) as r:
            body = await r.json(content_type=None) if r.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, str) else None


async def warm_connections(session: aiohttp.ClientSession, config: SweepConfig, count: int) -> int:
    """Open ``count`` pooled connections (concurrent GET /v1/models, each held until all have
    answered) so the level's first burst does not pay for connects inside its measured TTFT.
    Returns how many failed."""
    settled = 0
    failures = 0
    all_in = asyncio.Event()
    timeout_s = config.timeouts.probe_s

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == count:
            all_in.set()

    async def one() -> None:
        nonlocal failures
        counted = False
        try:
            async with session.get(
                config.base_url + "/v1/models",
                headers=dict(config.headers),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                settle()
                counted = True
                await asyncio.wait_for(all_in.wait(), timeout_s)
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
            if not counted:
                settle()

    await asyncio.gather(*(one() for _ in range(count)))
    return failures


def _model_ids(models: Any) -> list[str] | None:
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list):
        return None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
