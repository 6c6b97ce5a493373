"""Per LWS group, how many of a level's requests it served, through the loopback balancer (load/balancer_proxy.py).

Client side: each response's ``x-lws-vllm-endpoint`` header names the leader pod that served it. Server side:
each leader's own ``/metrics``, read through the balancer's ``/_balancer/pod/<pod>/metrics`` (that leader, never
a random one), before and after the level: the increase of its ``vllm:request_success_total``. The level's
server delta is the sum over the leaders (a scrape of the Service itself would read one leader at random).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from load.balancer_api import ENDPOINTS_PATH, POD_PREFIX, Upstream, parse_endpoints
from load.records import RequestRecord
from load.server_histograms import Buckets
from load.server_metrics import REQUEST_SUCCESS, Snapshot, delta, scrape
from reports.schema import GroupLoad


async def upstreams(session: aiohttp.ClientSession, balancer: str, timeout_s: float) -> list[Upstream] | None:
    """The balancer's endpoint set; None when it cannot be read."""
    try:
        async with session.get(
            balancer.rstrip("/") + ENDPOINTS_PATH, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            if response.status != 200:
                return None
            return parse_endpoints(await response.json())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


@dataclass
class LeaderScrapes:
    """Each leader's snapshot at one moment (None: its /metrics could not be read)."""

    by_pod: dict[str, Snapshot | None] = field(default_factory=dict)

    def combined(self) -> Snapshot | None:
        """The leaders' snapshots as one server's (None if any leader could not be read)."""
        if not self.by_pod or any(s is None for s in self.by_pod.values()):
            return None
        return combine([s for s in self.by_pod.values() if s is not None])


async def scrape_leaders(
    session: aiohttp.ClientSession, balancer: str, pods: Iterable[str], timeout_s: float
) -> LeaderScrapes:
    base = balancer.rstrip("/") + POD_PREFIX
    return LeaderScrapes({pod: await scrape(session, base + pod, timeout_s) for pod in sorted(set(pods))})


def combine(snapshots: Sequence[Snapshot]) -> Snapshot:
    """Several servers' snapshots as one: counters, histogram sums and counts and buckets added; gauges added
    too (requests running or waiting add up across servers), but a ``_perc`` gauge (a usage fraction) is the
    largest of them."""
    values: dict[str, float] = {}
    kinds: dict[str, str] = {}
    buckets: dict[str, Buckets] = {}
    spans: tuple[float, float] | None = None
    for snap in snapshots:
        for name, value in snap.values.items():
            kinds[name] = snap.kinds[name]
            if name in values and snap.kinds[name] == "gauge" and name.endswith("_perc"):
                values[name] = max(values[name], value)
            else:
                values[name] = values.get(name, 0.0) + value
        for family, edges in snap.buckets.items():
            into = buckets.setdefault(family, {})
            for edge, count in edges.items():
                into[edge] = into.get(edge, 0.0) + count
        if snap.request_spans is not None:
            spans = (
                snap.request_spans
                if spans is None
                else (spans[0] + snap.request_spans[0], spans[1] + snap.request_spans[1])
            )
    return Snapshot(values, kinds, buckets, spans)


def group_loads(
    records: Sequence[RequestRecord],
    known: Sequence[Upstream],
    before: LeaderScrapes | None,
    after: LeaderScrapes | None,
) -> list[GroupLoad]:
    """One GroupLoad per leader the level could have reached (the balancer's set before and after, and every
    pod a response named), ordered by group index."""
    by_pod: dict[str, Upstream] = {u.pod: u for u in known}
    client = Counter(r.endpoint for r in records if r.ok and r.endpoint is not None)
    headers_seen = any(r.endpoint is not None for r in records)
    pods = sorted(set(by_pod) | set(client))
    out = []
    for pod in pods:
        upstream = by_pod.get(pod)
        out.append(
            GroupLoad(
                group=upstream.group if upstream is not None else None,
                pod=pod,
                client_requests=client.get(pod, 0) if headers_seen else None,
                server_requests=_served(pod, before, after),
                gpus=upstream.gpus if upstream is not None else None,
            )
        )
    return sorted(out, key=lambda g: (_index(g.group), g.pod))


def _served(pod: str, before: LeaderScrapes | None, after: LeaderScrapes | None) -> int | None:
    if after is None or after.by_pod.get(pod) is None:
        return None
    end = after.by_pod[pod]
    assert end is not None
    start = before.by_pod.get(pod) if before is not None else None
    if start is None and before is not None and pod in before.by_pod:
        return None  # it was there before but unreadable: no baseline
    # a leader that joined during the level (not in `before`): everything it counted is from this level
    changes: Mapping[str, float] = delta(start, end) if start is not None else end.values
    value = changes.get(REQUEST_SUCCESS)
    return None if value is None else round(value)


def _index(group: str | None) -> int:
    return int(group) if group is not None and group.isdigit() else 1 << 30


class BalancedScrapes:
    """A level's scrapes through the balancer: the endpoint set and each leader's /metrics before, the same
    after (``now``, called until the counters settle), and then the level's GroupLoads."""

    def __init__(
        self, session: aiohttp.ClientSession, balancer: str, timeout_s: float, metrics: bool
    ) -> None:
        self.session = session
        self.balancer = balancer
        self.timeout_s = timeout_s
        self.metrics = metrics  # False: the endpoint set only (--no-server-metrics)
        self.known: dict[str, Upstream] = {}
        self.start: LeaderScrapes | None = None
        self.end: LeaderScrapes | None = None

    async def _refresh(self) -> None:
        for upstream in await upstreams(self.session, self.balancer, self.timeout_s) or []:
            self.known[upstream.pod] = upstream

    async def before(self) -> Snapshot | None:
        """Before the level: the leaders' snapshots, combined (None: not scraped, or a leader unreadable)."""
        await self._refresh()
        if not self.metrics or not self.known:
            return None
        self.start = await scrape_leaders(self.session, self.balancer, self.known, self.timeout_s)
        return self.start.combined()

    async def now(self) -> Snapshot | None:
        """After the level: every leader known before or now (one that left keeps its last count unknown)."""
        await self._refresh()
        if not self.metrics or not self.known:
            return None
        self.end = await scrape_leaders(self.session, self.balancer, self.known, self.timeout_s)
        return self.end.combined()

    def groups(self, records: Sequence[RequestRecord]) -> list[GroupLoad]:
        return group_loads(records, list(self.known.values()), self.start, self.end)
