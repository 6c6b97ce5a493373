"""The server's view of a level beside the client's, and what cannot be.

vLLM times a request from its arrival in the API server to the first token leaving the engine; the client
from before it writes the request to the first chunk read. The client's span contains the server's, so
per request ``client TTFT >= server TTFT``, and it exceeds it by the network (request there, chunk back)
and the server's HTTP work outside its timer. Hence, for the same n requests:

- **lower bound** (cannot be): the client's TTFT percentile below the lower edge of the server's bucket
  for it (``load/server_histograms.py``: the bounds of the linear percentile from the order statistics);
  the client's mean TTFT below the server's (exact: its ``_sum`` / ``_count``, so no bucket blurs it; the
  sharpest check when the buckets are wide, as vLLM's are above 100 ms); and at any bucket edge e, more
  client TTFTs <= e than server TTFTs <= e.
- **upper bound** (a warning, not impossible): the client's percentile above the server's upper edge plus
  the network allowance, its mean above the server's plus the allowance, or at an edge e fewer client
  TTFTs <= e + allowance than server TTFTs <= e: the client added more than the network (its own queue,
  a slow read), so its latencies are not the server's.
- **request span**: the server's HTTP middleware times each generate request from its arrival until the
  application returns (``http_request_duration_seconds``, exact sum and count). The client's send to end of
  stream contains all of that but the tail after the last byte has left: the middleware reads its clock in
  a ``finally`` after ``await app(...)`` (prometheus_fastapi_instrumentator's ``middleware.py``), and
  Starlette's ``StreamingResponse`` first cancels its disconnect listener and runs any background task, a
  turn or more of a busy event loop. On real vLLM 0.32 (CPU build, 2 cores) that tail put the client's mean
  0.5 to 1.0 ms below the server's over 30 requests. So a client mean more than ``TAIL_MS`` below the
  server's cannot be. The other gap is only the network and the HTTP parsing, so this catches a clock
  error of a few ms where the TTFT gap (tokenization and queueing in the API server, outside vLLM's TTFT
  timer) is larger than the error.
- **counts**: the server's finished requests and tokens against the client's (``server_metrics.reconcile``).

The allowance for the upper bounds is ``network_ms`` (the round trip of ``GET /health`` measured before
the level, ``measure_round_trip``) plus ``SLACK_MS``, and for TTFT also ``http_overhead_ms``: the server's
mean HTTP duration minus its mean ``e2e_request_latency`` (exact means), the API server's own time outside
vLLM's request timers (parsing, tokenizing, queueing for the engine), measured rather than guessed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import numpy as np

from load.metrics import samples
from load.records import RequestRecord
from load.server_histograms import (
    E2EL,
    ITL,
    ITL_BEFORE_0_10,
    TTFT,
    Buckets,
    bucket_delta,
    percentile_bounds,
    total,
)
from load.server_metrics import ClientCounts, Snapshot, reconcile, scrape, server_delta
from reports.schema import Distribution, LevelMetrics, ServerLatency, ServerPercentile, ServerView

# the server's HTTP parsing and SSE framing outside its own timers (loopback, small prompts)
SLACK_MS = 2.0
# the server's HTTP timer after its last byte has left: Starlette's stream teardown and the middleware's return
TAIL_MS = 2.0
SETTLE_S = 2.0  # vLLM may count a finished request just after its last chunk has left
POLL_S = 0.05


def latency(
    name: str, before: Snapshot | None, after: Snapshot, client: Distribution
) -> ServerLatency | None:
    """One histogram's change over the level, its percentiles' bounds beside the client's (ms)."""
    buckets = _delta(name, before, after)
    if buckets is None:
        return None
    n = total(buckets)
    s = after.values.get(name + "_sum")
    s0 = (before.values.get(name + "_sum") if before else None) or 0.0
    mean = (s - s0) / n * 1e3 if s is not None and n else None

    def at(q: int) -> ServerPercentile | None:
        b = percentile_bounds(buckets, q)
        if b is None:
            return None
        seen = getattr(client, f"p{q}")
        est = b.estimate * 1e3 if b.estimate is not None else None
        return ServerPercentile(
            lower_ms=b.lower * 1e3,
            upper_ms=None if math.isinf(b.upper) else b.upper * 1e3,
            estimate_ms=est,
            client_ms=seen,
            difference_ms=seen - est if seen is not None and est is not None else None,
        )

    return ServerLatency(metric=name, count=n, mean_ms=mean, p50=at(50), p90=at(90), p99=at(99))


def _delta(name: str, before: Snapshot | None, after: Snapshot) -> Buckets | None:
    if name not in after.buckets:
        return None
    return bucket_delta(before.buckets.get(name) if before else None, after.buckets[name])


def ttft_checks(
    server: Buckets, client_ttft_ms: np.ndarray, allowance_ms: float, view: ServerLatency
) -> tuple[list[str], list[str]]:
    """(problems, warnings): where the client's TTFTs cannot be the server's (below its lower bounds), and
    where they hold more than the network allowance (above its upper bounds)."""
    problems: list[str] = []
    warnings: list[str] = []
    if total(server) != client_ttft_ms.size or client_ttft_ms.size == 0:
        # the bounds hold request by request: with other requests on either side they bound nothing
        return [], [
            f"TTFT: the server timed {total(server)} first tokens, the client {client_ttft_ms.size}: not the "
            "same requests, so the client's TTFTs are not bounded by the server's"
        ]
    for q in (50, 90, 99):
        p: ServerPercentile | None = getattr(view, f"p{q}")
        if p is None or p.client_ms is None:
            continue
        if p.client_ms < p.lower_ms:
            problems.append(
                f"TTFT p{q}: client {p.client_ms:.2f} ms is below the server's lower bound {p.lower_ms:g} ms "
                "(cannot be: the client's span contains the server's; its clock or send time is wrong)"
            )
        elif p.upper_ms is not None and p.client_ms > p.upper_ms + allowance_ms:
            warnings.append(
                f"TTFT p{q}: client {p.client_ms:.2f} ms exceeds the server's upper bound {p.upper_ms:g} ms "
                f"+ {allowance_ms:.2f} ms network allowance: the client added its own delay"
            )
    if view.mean_ms is not None:
        client_mean = float(client_ttft_ms.mean())
        if client_mean < view.mean_ms:
            problems.append(
                f"TTFT mean: client {client_mean:.2f} ms is below the server's {view.mean_ms:.2f} ms (exact, "
                "from its _sum and _count; cannot be: the client's span contains the server's)"
            )
        elif client_mean > view.mean_ms + allowance_ms:
            warnings.append(
                f"TTFT mean: client {client_mean:.2f} ms exceeds the server's {view.mean_ms:.2f} ms by more "
                f"than the {allowance_ms:.2f} ms network allowance"
            )
    edges = [(e * 1e3, c) for e, c in server.items() if not math.isinf(e)]
    for ms, count in edges:
        below = int(np.count_nonzero(client_ttft_ms <= ms))
        if below > count:
            problems.append(
                f"TTFT: client saw {below} requests <= {ms:g} ms, the server only {count:g} (cannot be: "
                f"at least {below - count:g} client TTFTs are shorter than the server's)"
            )
            break
    for ms, count in edges:
        within = int(np.count_nonzero(client_ttft_ms <= ms + allowance_ms))
        if within < count:
            warnings.append(
                f"TTFT: server had {count:g} requests <= {ms:g} ms, the client only {within} within "
                f"{ms + allowance_ms:.2f} ms: the client added more than the network allowance"
            )
            break
    return problems, warnings


def span_checks(
    before: Snapshot, after: Snapshot, records: Sequence[RequestRecord], allowance_ms: float
) -> tuple[float | None, float | None, list[str], list[str]]:
    """(client mean span ms, server mean span ms, problems, warnings) of the generate requests' spans."""
    if after.request_spans is None:
        return None, None, [], []
    # a labelled series appears with its first request: none before the level is none yet, not unknown
    first = before.request_spans or (0.0, 0.0)
    seconds = after.request_spans[0] - first[0]
    count = after.request_spans[1] - first[1]
    spans = [r.finished - r.sent for r in records if r.sent is not None and r.finished is not None]
    if count <= 0 or not spans:
        return None, None, [], []
    server, client = seconds / count * 1e3, float(np.mean(spans)) * 1e3
    if round(count) != len(spans):
        return client, server, [], []  # not the same requests: no bound
    if client < server - TAIL_MS:
        return client, server, [
            f"request span: client mean send-to-end {client:.2f} ms is below the server's mean HTTP duration "
            f"{server:.2f} ms by more than the server's {TAIL_MS:g} ms tail after its last byte "
            "(http_request_duration_seconds; cannot be: the client's clock or send time is wrong)"
        ], []  # fmt: skip
    if client > server + allowance_ms:
        return client, server, [], [
            f"request span: client mean send-to-end {client:.2f} ms exceeds the server's mean HTTP duration "
            f"{server:.2f} ms by more than the {allowance_ms:.2f} ms network allowance"
        ]  # fmt: skip
    return client, server, [], []


def server_view(
    metrics: LevelMetrics,
    records: Sequence[RequestRecord],
    before: Snapshot | None,
    after: Snapshot | None,
    network_ms: float | None,
) -> ServerView | None:
    """The server's histograms and counters over the level beside the client's; None without scrapes."""
    if before is None or after is None:
        return None
    ttft = latency(TTFT, before, after, metrics.ttft_ms)
    e2el = latency(E2EL, before, after, metrics.e2el_ms)
    itl_name = ITL if ITL in after.buckets else ITL_BEFORE_0_10
    counts = server_delta(before, after)
    problems = reconcile(ClientCounts.from_records(records), counts)
    network = (network_ms or 0.0) + SLACK_MS
    client_span, server_span, impossible, warnings = span_checks(before, after, records, network)
    problems += impossible
    overhead = server_span - e2el.mean_ms if server_span is not None and e2el and e2el.mean_ms else None
    ttft_buckets = _delta(TTFT, before, after)
    if ttft is not None and ttft_buckets is not None:
        allowance = network + max(0.0, overhead or 0.0)
        impossible, too_slow = ttft_checks(ttft_buckets, samples(records).ttft_ms, allowance, ttft)
        problems += impossible
        warnings += too_slow
    elif ttft_buckets is None and TTFT in after.buckets:
        problems.append(f"{TTFT} went down between the scrapes (a restart): TTFT not reconciled")
    return ServerView(
        ttft_ms=ttft,
        itl_ms=latency(itl_name, before, after, metrics.itl_ms),
        e2el_ms=e2el,
        requests_finished=_int(counts.request_success),
        generation_tokens=_int(counts.generation_tokens),
        prompt_tokens=_int(counts.prompt_tokens),
        network_ms=network_ms,
        request_span_ms=server_span,
        client_request_span_ms=client_span,
        http_overhead_ms=overhead,
        problems=problems,
        warnings=warnings,
    )


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


async def measure_round_trip(
    session: aiohttp.ClientSession, base_url: str, timeout_s: float, tries: int = 5
) -> float | None:
    """Median round trip of ``GET /health`` in ms (the network allowance); None when it does not answer."""
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        try:
            async with session.get(
                base_url + "/health", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                await response.read()
                if response.status != 200:
                    return None
        except (aiohttp.ClientError, TimeoutError):
            return None
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


async def scrape_settled(
    session: aiohttp.ClientSession,
    base_url: str,
    timeout_s: float,
    before: Snapshot,
    completed: int,
    scraper: Callable[[], Awaitable[Snapshot | None]] | None = None,
) -> Snapshot | None:
    """Scrape until the server has counted the client's ``completed`` requests, for at most SETTLE_S.
    ``scraper``: how to scrape instead of ``GET <base_url>/metrics`` (e.g. every leader behind a balancer)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        after = await (scraper() if scraper is not None else scrape(session, base_url, timeout_s))
        if after is None:
            return None
        finished = server_delta(before, after).request_success
        if finished is None or finished >= completed or time.monotonic() >= deadline:
            return after
        await asyncio.sleep(POLL_S)  # polling the server's counter under a deadline, not a fixed wait
